//! Browser form uploads (POST object, `multipart/form-data` to a bucket). s3s parses the form,
//! verifies its SigV4/SigV2 signature and checks the policy (expiration, conditions, that every
//! field is covered, content-length-range) before `put_object` runs. The edge adds what S3 does
//! around that: the `${filename}` variable of the `key` field (the form's own file name, which
//! s3s does not substitute), and S3's error codes and messages for refused policies
//! (AccessDenied "Invalid according to Policy: ...", where s3s answers InvalidPolicyDocument).

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use s3s::dto::PutObjectInput;
use s3s::dto::PutObjectOutput;
use s3s::{S3Request, S3Response};

type StdError = Box<dyn std::error::Error + Send + Sync>;
type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, StdError>> + Send + Sync>>;

/// How much of a form is read ahead looking for the file part's headers. The fields before it
/// are small (s3s bounds them at 20 MiB in all, S3 at 20 KiB for the policy); a form whose file
/// starts later keeps its key as sent.
const MAX_FIELDS_BYTES: usize = 1024 * 1024;

/// The largest file a form upload may carry. s3s reads a form's file whole into memory before the
/// policy is checked (its content-length-range needs the size), so this bounds the memory of every
/// form upload in flight; S3's own limit (5 GB) would let one anonymous form hold gigabytes.
/// Larger files are refused with EntityTooLarge; they belong in PUT or multipart uploads.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The s3s settings of the S3 service: its defaults, with form files bounded (see `MAX_FILE_BYTES`).
pub fn s3s_config() -> std::sync::Arc<dyn s3s::config::S3ConfigProvider> {
    let mut config = s3s::config::S3Config::default();
    config.post_object_max_file_size = MAX_FILE_BYTES;
    std::sync::Arc::new(s3s::config::StaticConfigProvider::new(std::sync::Arc::new(config)))
}

/// The boundary of a POST form request; `None` for any other request.
pub fn form_boundary(req: &Request<s3s::Body>) -> Option<String> {
    if req.method() != Method::POST {
        return None;
    }
    let content_type = req.headers().get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let mut params = content_type.split(';').map(str::trim);
    if !params.next()?.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim().eq_ignore_ascii_case("boundary").then(|| value.trim().trim_matches('"').to_string())
    })
}

/// Where the `key` and `x-amz-security-token` fields' values are in the form's first bytes, and
/// the file part's file name.
#[derive(Debug, PartialEq)]
struct FormHead {
    key: Option<std::ops::Range<usize>>,
    token: Option<std::ops::Range<usize>>,
    filename: Option<String>,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

/// A `name="value"` parameter of a Content-Disposition header.
fn disposition_param(header: &str, param: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(&format!("{param}=\"")) {
        let start = from + at;
        // `filename=` must not match inside `name=`'s neighbours and the other way round.
        let boundary_ok = start == 0 || matches!(lower.as_bytes()[start - 1], b' ' | b';' | b'\t');
        let value_start = start + param.len() + 2;
        if boundary_ok {
            let end = header[value_start..].find('"')? + value_start;
            return Some(header[value_start..end].to_string());
        }
        from = value_start;
    }
    None
}

/// Reads the parts before the file part; `None` until the file part's headers are complete.
fn parse_head(buf: &[u8], boundary: &str) -> Option<FormHead> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut at = find(buf, delimiter, 0)?;
    let mut key = None;
    let mut token = None;
    loop {
        let headers_start = at + delimiter.len() + 2;
        let headers_end = find(buf, b"\r\n\r\n", headers_start)?;
        let headers = String::from_utf8_lossy(buf.get(headers_start..headers_end)?);
        let disposition = headers
            .split("\r\n")
            .find(|line| line.to_ascii_lowercase().starts_with("content-disposition:"))
            .unwrap_or_default();
        let name = disposition_param(disposition, "name").unwrap_or_default();
        if name.eq_ignore_ascii_case("file") {
            let filename = disposition_param(disposition, "filename").map(|f| {
                // S3 keeps only what follows the last slash or backslash of a path a browser sent.
                f.rsplit(['/', '\\']).next().unwrap_or_default().to_string()
            });
            return Some(FormHead { key, token, filename });
        }
        let value_start = headers_end + 4;
        let mut next = Vec::with_capacity(delimiter.len() + 2);
        next.extend_from_slice(b"\r\n");
        next.extend_from_slice(delimiter);
        let value_end = find(buf, &next, value_start)?;
        if name.eq_ignore_ascii_case("key") {
            key = Some(value_start..value_end);
        } else if name.eq_ignore_ascii_case("x-amz-security-token") {
            token = Some(value_start..value_end);
        }
        at = value_end + 2;
    }
}

/// Replaces `${filename}` in the form's `key` field with the uploaded file's name, as S3 does,
/// before s3s reads the form, and hands a session token sent as a form field to authorisation
/// as the `x-amz-security-token` header it reads (the form's signature covers only the policy,
/// and the token is verified on its own). Reads ahead at most `MAX_FIELDS_BYTES`; the body is
/// otherwise passed through untouched.
pub async fn prepare_form(req: Request<s3s::Body>, boundary: &str) -> Request<s3s::Body> {
    let (mut parts, mut body) = req.into_parts();
    let mut head = BytesMut::new();
    let mut failed: Option<StdError> = None;
    let plan = loop {
        if let Some(plan) = parse_head(&head, boundary) {
            break Some(plan);
        }
        if head.len() > MAX_FIELDS_BYTES {
            break None;
        }
        match body.frame().await {
            None => break None,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    head.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                failed = Some(e);
                break None;
            }
        }
    };
    let mut head = head.freeze();
    if let Some(range) = plan.as_ref().and_then(|p| p.token.clone())
        && !parts.headers.contains_key("x-amz-security-token")
        && let Some(value) = head.get(range).and_then(|v| HeaderValue::from_bytes(v).ok())
    {
        parts.headers.insert("x-amz-security-token", value);
    }
    if let Some(FormHead { key: Some(range), filename: Some(filename), .. }) = plan
        && let Some(value) = head.get(range.clone()).map(|v| String::from_utf8_lossy(v).into_owned())
        && value.contains("${filename}")
    {
        let replaced = value.replace("${filename}", &filename);
        let mut edited = BytesMut::with_capacity(head.len() + replaced.len());
        edited.extend_from_slice(&head[..range.start]);
        edited.extend_from_slice(replaced.as_bytes());
        edited.extend_from_slice(&head[range.end..]);
        let grown = edited.len() as i64 - head.len() as i64;
        head = edited.freeze();
        let length = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<i64>().ok());
        if let Some(length) = length {
            parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from((length + grown).max(0)));
        }
    }
    let first = futures::stream::iter([Ok::<_, StdError>(Frame::data(head))]);
    let rest: FrameStream = match failed {
        Some(e) => Box::pin(futures::stream::iter([Err(e)])),
        None => Box::pin(BodyStream::new(body)),
    };
    let stream: FrameStream = Box::pin(first.chain(rest));
    Request::from_parts(parts, s3s::Body::http_body(StreamBody::new(stream)))
}

/// The S3 answer for a refused POST policy, from the error s3s gave (`None`: leave it).
fn aws_policy_error(code: &str, message: &str) -> Option<(StatusCode, String, String)> {
    let invalid = |detail: String| {
        Some((StatusCode::FORBIDDEN, "AccessDenied".to_string(), format!("Invalid according to Policy: {detail}")))
    };
    match code {
        "AccessDenied" if message == "Request has expired" => invalid("Policy expired.".into()),
        "AccessDenied" if message.starts_with("Each form field that you specify") => {
            let field = message.split('"').nth(1).unwrap_or_default();
            invalid(format!("Extra input fields: {field}"))
        }
        "InvalidRequest" if message == "missing key" => Some((
            StatusCode::BAD_REQUEST,
            "InvalidArgument".to_string(),
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields."
                .to_string(),
        )),
        "InvalidPolicyDocument" => {
            // s3s: Policy condition 'eq' for field 'key' failed: expected 'a', got 'b'
            let rest = message.strip_prefix("Policy condition '")?;
            let (op, rest) = rest.split_once('\'')?;
            let rest = rest.strip_prefix(" for field '")?;
            let (field, rest) = rest.split_once('\'')?;
            let rest = rest.strip_prefix(" failed: expected ")?;
            let rest = rest.strip_prefix("prefix ").unwrap_or(rest);
            let rest = rest.strip_prefix('\'')?;
            let expected = &rest[..rest.rfind("', got '").unwrap_or(rest.len().saturating_sub(1))];
            invalid(format!("Policy Condition failed: [\"{op}\", \"${field}\", \"{expected}\"]"))
        }
        _ => None,
    }
}

fn xml_text<'a>(doc: &'a str, element: &str) -> Option<&'a str> {
    let open = format!("<{element}>");
    let start = doc.find(&open)? + open.len();
    let end = start + doc[start..].find(&format!("</{element}>"))?;
    Some(&doc[start..end])
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// Rewrites a POST form's policy refusal as S3 words it; other answers pass unchanged.
pub async fn policy_errors_as_s3(response: Response<s3s::Body>) -> Response<s3s::Body> {
    if !response.status().is_client_error() {
        return response;
    }
    let small = http_body::Body::size_hint(response.body()).upper().is_some_and(|n| n <= 64 * 1024);
    if !small {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match BodyExt::collect(body).await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Response::from_parts(parts, s3s::Body::empty()),
    };
    let text = String::from_utf8_lossy(&bytes);
    let remapped = xml_text(&text, "Code").and_then(|code| {
        let message = unescape(xml_text(&text, "Message").unwrap_or_default());
        aws_policy_error(code, &message)
    });
    let Some((status, code, message)) = remapped else {
        return Response::from_parts(parts, s3s::Body::from(bytes));
    };
    let doc = super::edge::error_document(&code, &message);
    parts.status = status;
    parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(doc.len()));
    Response::from_parts(parts, s3s::Body::from(doc))
}

/// A form upload reaches `put_object` through s3s's default `post_object`, as a POST. Its file's
/// length is known (s3s read it whole to check the policy), but left unset when zero.
pub fn file_length(req: &S3Request<PutObjectInput>) -> Option<u64> {
    (req.method == Method::POST).then(|| req.input.content_length.and_then(|l| u64::try_from(l).ok()).unwrap_or(0))
}

/// The bucket and key of a form upload, for its answer's headers.
pub fn target(req: &S3Request<PutObjectInput>) -> Option<(String, String)> {
    (req.method == Method::POST).then(|| (req.input.bucket.clone(), req.input.key.clone()))
}

/// S3 answers a form upload with its ETag as a header, whatever the status. (Not Location: these
/// headers are added after s3s's, and a redirect's Location is s3s's.)
pub fn with_headers(
    mut response: S3Response<PutObjectOutput>,
    form: Option<(String, String)>,
) -> S3Response<PutObjectOutput> {
    if form.is_none() {
        return response;
    }
    if let Some(etag) =
        response.output.e_tag.as_ref().and_then(|e| HeaderValue::from_str(&format!("\"{}\"", e.value())).ok())
    {
        response.headers.insert(http::header::ETAG, etag);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &str = "--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/${filename}\r\n--XyZ\r\n\
                        Content-Disposition: form-data; name=\"policy\"\r\n\r\neyJ9\r\n--XyZ\r\n\
                        Content-Disposition: form-data; name=\"X-Amz-Security-Token\"\r\n\r\ntok3n\r\n--XyZ\r\n\
                        Content-Disposition: form-data; name=\"file\"; filename=\"C:\\\\docs\\\\a b.txt\"\r\n\
                        Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n";

    #[test]
    fn the_form_head_names_the_key_and_the_file() {
        let head = parse_head(FORM.as_bytes(), "XyZ").expect("complete head");
        let key = head.key.expect("key field");
        assert_eq!(&FORM[key], "uploads/${filename}");
        assert_eq!(head.filename.as_deref(), Some("a b.txt"));
        // Cut before the file part's headers end: not yet.
        let cut = FORM.find("Content-Type: text/plain").expect("file headers");
        assert_eq!(parse_head(&FORM.as_bytes()[..cut], "XyZ"), None);
    }

    #[tokio::test]
    async fn filename_is_substituted_and_the_length_follows() {
        let mut req = Request::new(s3s::Body::from(FORM.to_string()));
        *req.method_mut() = Method::POST;
        req.headers_mut()
            .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("multipart/form-data; boundary=XyZ"));
        req.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(FORM.len()));
        let boundary = form_boundary(&req).expect("a form");
        let req = prepare_form(req, &boundary).await;
        let parts_token = req.headers().get("x-amz-security-token").and_then(|v| v.to_str().ok()).map(str::to_string);
        let length: usize =
            req.headers()[http::header::CONTENT_LENGTH].to_str().expect("ascii").parse().expect("number");
        let body = BodyExt::collect(req.into_body()).await.expect("body").to_bytes();
        assert_eq!(body.len(), length);
        assert!(String::from_utf8_lossy(&body).contains("\r\n\r\nuploads/a b.txt\r\n"));
        assert_eq!(parts_token.as_deref(), Some("tok3n"));
    }

    #[test]
    fn policy_refusals_read_as_s3s() {
        let (status, code, message) = aws_policy_error(
            "InvalidPolicyDocument",
            "Policy condition 'starts-with' for field 'key' failed: expected prefix 'user/', got 'other'",
        )
        .expect("remapped");
        assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "AccessDenied"));
        assert_eq!(
            message,
            "Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"$key\", \"user/\"]"
        );
        let expired = aws_policy_error("AccessDenied", "Request has expired").expect("remapped");
        assert_eq!(expired.2, "Invalid according to Policy: Policy expired.");
        assert_eq!(aws_policy_error("NoSuchBucket", "x"), None);
    }
}
