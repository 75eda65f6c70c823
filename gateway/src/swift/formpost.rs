//! FormPost (Swift's formpost middleware): a browser form, `POST`ed as `multipart/form-data` to
//! `/v1/AUTH_acct/container[/prefix]`, uploads each of its files as the object `prefix +
//! filename`, with no token. The form's `signature` is the HMAC (as TempURL's, under the
//! container's or the account's TempURL keys) of `path\nredirect\nmax_file_size\nmax_file_count\n
//! expires`; the answers are Swift's, word for word (`FormPost: Invalid Signature`, a 303 to
//! `redirect?status=201&message=`, …).
//!
//! Attributes must come before the files they apply to, as in Swift. A file is read through
//! [`form_parts`] as it arrives and held until its length is known (in memory up to
//! [`SPOOL_IN_MEMORY`], in an unnamed temporary file beyond, at most its `max_file_size`): Swift
//! writes it chunked, but the object layer takes a declared length.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use coffer_iam::authorize::Signer;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, BodyStream};
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::StreamingBlob;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::form_parts::{self, FormError, FormParts};
use super::response::{self, SwiftResponse};
use super::{SwiftApi, Target, bulk, header, tempurl, upload};

/// Swift's `MAX_VALUE_LENGTH`: an attribute's value is cut there.
const MAX_VALUE_LENGTH: usize = 4096;
/// Distinct attribute names kept; later new names are ignored.
const MAX_ATTRIBUTES: usize = 256;
/// A file up to this size is held in memory before its write; a larger one in a temporary file.
pub const SPOOL_IN_MEMORY: usize = 1 << 20;
/// How long the rest of a refused form is read (and dropped) so the client gets its answer.
const DRAIN_TIME: Duration = Duration::from_secs(10);
/// What Python's `urllib.parse.quote` leaves alone (for the redirect's `message`).
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~').remove(b'/');

/// The boundary, when the request is a form post (`Content-Type: multipart/form-data; boundary=…`).
pub fn boundary(headers: &HeaderMap) -> Option<String> {
    let (kind, attributes) = form_parts::parse_attributes(header(headers, "content-type")?);
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    attributes.into_iter().find(|(name, _)| name == "boundary").map(|(_, value)| value)
}

/// Why a form is refused before its files are all written (Swift's exceptions).
enum Refusal {
    /// 400 `FormPost: …` (Swift's `FormInvalid` and `EOFError`).
    Invalid(String),
    /// 401 `FormPost: …`, in title case.
    Unauthorized(&'static str),
    /// Any other answer (the key lookup failed).
    Answer(SwiftResponse),
}

impl From<FormError> for Refusal {
    fn from(e: FormError) -> Refusal {
        match e {
            FormError::InvalidBoundary => Refusal::Invalid("invalid starting boundary".into()),
            FormError::HeadersTooLarge => Refusal::Invalid("part headers too large".into()),
            FormError::Read(why) => Refusal::Invalid(why),
        }
    }
}

/// `POST` of a form to `path` (decoded, `/v1/AUTH_acct/container[/prefix]`).
pub async fn handle(api: &SwiftApi, req: Request<Incoming>, path: &str, boundary: &str) -> SwiftResponse {
    let body = BodyStream::new(req.into_body())
        .filter_map(|frame| futures::future::ready(frame.map(|f| f.into_data().ok()).transpose()));
    let mut form = FormParts::new(body, boundary);
    let answer = match keys(api, path).await {
        Ok(keys) => translate(api, &mut form, path, &keys).await,
        Err(refused) => Err(refused),
    };
    let answer = answer.unwrap_or_else(|refusal| match refusal {
        Refusal::Invalid(why) => response::body(StatusCode::BAD_REQUEST, "text/plain", format!("FormPost: {why}")),
        Refusal::Unauthorized(why) => {
            response::body(StatusCode::UNAUTHORIZED, "text/html; charset=UTF-8", format!("FormPost: {}", title(why)))
        }
        Refusal::Answer(answer) => answer,
    });
    let _ = tokio::time::timeout(DRAIN_TIME, form.drain()).await;
    answer
}

/// The account's and the container's TempURL keys; none without a container (Swift's
/// `_get_keys`). Another account's container of that name is, for this account, no container.
async fn keys(api: &SwiftApi, path: &str) -> Result<Vec<String>, Refusal> {
    let (account, container, _) = split(path);
    let Some(container) = container.filter(|c| !c.is_empty()) else { return Ok(Vec::new()) };
    let container_metadata = match api.authorizer.owners.facts(container).await {
        Ok(Some(facts)) if facts.owner == account => facts.metadata.as_ref().clone(),
        _ => HashMap::new(),
    };
    tempurl::keys(api, account, &container_metadata).await.map_err(Refusal::Answer)
}

/// `/v1/ACCOUNT/CONTAINER/OBJECT` into its account, container and object.
fn split(path: &str) -> (&str, Option<&str>, Option<&str>) {
    let mut parts = path.trim_start_matches('/').splitn(4, '/');
    let _version = parts.next();
    (parts.next().unwrap_or_default(), parts.next(), parts.next())
}

/// Swift's `_translate_form`: attributes, then each file as it comes; the answer.
async fn translate<S, E>(
    api: &SwiftApi,
    form: &mut FormParts<S>,
    path: &str,
    keys: &[String],
) -> Result<SwiftResponse, Refusal>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut attributes: HashMap<String, String> = HashMap::new();
    // The last write's status, and its answer's body when it failed.
    let mut outcome: Option<(StatusCode, Bytes)> = None;
    let mut message = "";
    let mut file_count: i64 = 0;
    while let Some(part) = form.next_part().await? {
        let (kind, disposition) = part.disposition();
        let attribute = |name: &str| disposition.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let filename = attribute("filename").filter(|f| kind == "form-data" && !f.is_empty());
        let Some(filename) = filename else {
            let value = read_value(form).await?;
            if let Some(name) = attribute("name").map(|n| n.to_lowercase())
                && (attributes.len() < MAX_ATTRIBUTES || attributes.contains_key(&name))
            {
                attributes.insert(name, value.trim_end_matches(['\r', '\n', '-']).to_string());
            }
            continue;
        };
        file_count += 1;
        if file_count > integer(&attributes, "max_file_count", "max_file_count not an integer")? {
            outcome = Some((StatusCode::BAD_REQUEST, Bytes::new()));
            message = "max file count exceeded";
            break;
        }
        let mut file_attributes = attributes.clone();
        for name in ["content-type", "content-encoding"] {
            if let (false, Some(value)) = (attributes.contains_key(name), part.header(name)) {
                let value = if value.is_empty() && name == "content-type" { "application/octet-stream" } else { value };
                file_attributes.insert(name.to_string(), value.to_string());
            }
        }
        let (status, body) = write_file(api, form, path, keys, &file_attributes, &filename).await?;
        outcome = Some((status, body));
        if !status.is_success() {
            break;
        }
    }
    let (status, failure_body) = outcome.unwrap_or_else(|| {
        message = "no files to process";
        (StatusCode::BAD_REQUEST, Bytes::new())
    });
    Ok(answer(status, message, failure_body, attributes.get("redirect").filter(|r| !r.is_empty())))
}

/// The form's answer, as Swift's: a 303 to the redirect with `status` and `message` added, or
/// the status as text (the failed write's own answer, if it had one).
fn answer(status: StatusCode, message: &str, failure_body: Bytes, redirect: Option<&String>) -> SwiftResponse {
    let Some(redirect) = redirect else {
        let mut text = bulk::status_line(status);
        if !message.is_empty() {
            text.push_str(&format!("\r\nFormPost: {}", title(message)));
        }
        let body = if !status.is_success() && !failure_body.is_empty() { failure_body } else { Bytes::from(text) };
        let mut answer = http::Response::new(s3s::Body::from(body));
        *answer.status_mut() = status;
        response::set(&mut answer, "content-type", "text/plain");
        return answer;
    };
    let separator = if redirect.contains('?') { '&' } else { '?' };
    let message = percent_encoding::utf8_percent_encode(message, QUOTE);
    let location = format!("{redirect}{separator}status={}&message={message}", status.as_u16());
    let body = format!("<html><body><p><a href=\"{location}\">Click to continue...</a></p></body></html>");
    let mut answer = http::Response::new(s3s::Body::from(body));
    *answer.status_mut() = StatusCode::SEE_OTHER;
    response::set(&mut answer, "location", &location);
    answer
}

/// Swift's `_perform_subrequest`: the checks in its order, then the write, on the account's
/// behalf (the signature is the authority). The write's status and, when it failed, its body.
async fn write_file<S, E>(
    api: &SwiftApi,
    form: &mut FormParts<S>,
    path: &str,
    keys: &[String],
    attributes: &HashMap<String, String>,
    filename: &str,
) -> Result<(StatusCode, Bytes), Refusal>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if keys.is_empty() {
        return Err(Refusal::Unauthorized("invalid signature"));
    }
    let max_file_size = integer(attributes, "max_file_size", "max_file_size not an integer")?;
    let mut object_path = path.to_string();
    if !object_path.ends_with('/') && object_path.matches('/').count() < 4 {
        object_path.push('/');
    }
    object_path.push_str(filename);
    let mut headers = HeaderMap::new();
    for (attribute, header_name, why) in [
        ("x_delete_at", "x-delete-at", "x_delete_at not an integer: Unix timestamp required."),
        ("x_delete_after", "x-delete-after", "x_delete_after not an integer: Number of seconds required."),
    ] {
        if let Some(value) = attributes.get(attribute) {
            let value = python_int(value).ok_or_else(|| Refusal::Invalid(why.into()))?;
            headers.insert(header_name, HeaderValue::from(value));
        }
    }
    for name in ["content-type", "content-encoding"] {
        if let Some(value) = attributes.get(name) {
            let value = if value.is_empty() && name == "content-type" { "application/octet-stream" } else { value };
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
    }
    let expires = integer(attributes, "expires", "expired not an integer")?;
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    if i128::from(expires) * 1000 < now_ms {
        return Err(Refusal::Unauthorized("form expired"));
    }
    if !signature_valid(path, attributes, keys) {
        return Err(Refusal::Unauthorized("invalid signature"));
    }
    let (account, container, object) = split(&object_path);
    let (container, object) = (container.unwrap_or_default(), object.unwrap_or_default());
    let target = Target {
        signer: Signer::default(),
        identity: None,
        admin_here: false,
        referrer: None,
        tempurl: None,
        method: Method::PUT.to_string(),
        path: object_path.clone(),
        account: account.to_string(),
        container: Some(container.to_string()),
        object: Some(object.to_string()),
    };
    // Only a container of the path's account takes the write (another account's is none).
    let owner = api.authorizer.owners.owner(container).await.ok().flatten();
    if container.is_empty() || owner.as_deref() != Some(account) {
        return failed(response::error(StatusCode::NOT_FOUND, "The resource could not be found.")).await;
    }
    let limit = u64::try_from(max_file_size).unwrap_or(0).min(crate::s3::convert::MAX_PUT_BYTES);
    let (body, length) = spool(form, limit).await?;
    match upload::put(api, &target, &headers, body, length).await {
        Ok(status) => Ok((status, Bytes::new())),
        Err(refused) => failed(refused).await,
    }
}

/// A failed write's status and body, for the form's answer.
async fn failed(answer: SwiftResponse) -> Result<(StatusCode, Bytes), Refusal> {
    let status = answer.status();
    let body = BodyExt::collect(answer.into_body()).await.map(|c| c.to_bytes()).unwrap_or_default();
    Ok((status, body))
}

/// Whether the form's signature is the HMAC of its path and limits under one of `keys`.
fn signature_valid(path: &str, attributes: &HashMap<String, String>, keys: &[String]) -> bool {
    let field = |name: &str, default: &'static str| {
        attributes.get(name).map(String::as_str).filter(|v| !v.is_empty()).unwrap_or(default).to_string()
    };
    let message = format!(
        "{path}\n{}\n{}\n{}\n{}",
        field("redirect", ""),
        field("max_file_size", "0"),
        field("max_file_count", "0"),
        field("expires", "0")
    );
    let signature = attributes.get("signature").map(String::as_str).unwrap_or_default();
    keys.iter().any(|key| tempurl::signature_matches(signature, key, message.as_bytes()))
}

/// An attribute as Python's `int(value or 0)` reads it.
fn integer(attributes: &HashMap<String, String>, name: &str, why: &str) -> Result<i64, Refusal> {
    match attributes.get(name).filter(|v| !v.is_empty()) {
        None => Ok(0),
        Some(value) => python_int(value).ok_or_else(|| Refusal::Invalid(why.to_string())),
    }
}

/// Python's `int(str)`: surrounding whitespace, a sign, and `_` between digits allowed.
fn python_int(value: &str) -> Option<i64> {
    let value = value.trim();
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    value.replace('_', "").parse().ok()
}

/// Python's `str.title()`: each run of letters capitalised.
fn title(text: &str) -> String {
    let mut previous_is_letter = false;
    text.chars()
        .map(|c| {
            let shown = if previous_is_letter { c.to_ascii_lowercase() } else { c.to_ascii_uppercase() };
            previous_is_letter = c.is_alphabetic();
            shown
        })
        .collect()
}

/// An attribute's value: its first [`MAX_VALUE_LENGTH`] bytes, the rest read and dropped.
async fn read_value<S, E>(form: &mut FormParts<S>) -> Result<String, FormError>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut value = Vec::new();
    while let Some(chunk) = form.chunk().await? {
        let room = MAX_VALUE_LENGTH - value.len();
        value.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(String::from_utf8_lossy(&value).into_owned())
}

/// Reads the current file whole (at most `limit` bytes, else Swift's `max_file_size exceeded`):
/// a body of known length for its write.
async fn spool<S, E>(form: &mut FormParts<S>, limit: u64) -> Result<(StreamingBlob, u64), Refusal>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let failed = |e: io::Error| {
        tracing::warn!(error = %e, "cannot spool a form post's file");
        Refusal::Answer(response::error(StatusCode::INTERNAL_SERVER_ERROR, "cannot hold the file"))
    };
    let mut memory: Vec<Bytes> = Vec::new();
    let mut file: Option<tokio::fs::File> = None;
    let mut length: u64 = 0;
    while let Some(chunk) = form.chunk().await? {
        length += chunk.len() as u64;
        if length > limit {
            return Err(Refusal::Invalid("max_file_size exceeded".into()));
        }
        match &mut file {
            Some(spooled) => spooled.write_all(&chunk).await.map_err(failed)?,
            None if length <= SPOOL_IN_MEMORY as u64 => memory.push(chunk),
            None => {
                let created = tokio::task::spawn_blocking(tempfile::tempfile).await.map_err(io::Error::other);
                let mut spooled = tokio::fs::File::from_std(created.and_then(|r| r).map_err(failed)?);
                for held in memory.drain(..).chain([chunk]) {
                    spooled.write_all(&held).await.map_err(failed)?;
                }
                file = Some(spooled);
            }
        }
    }
    let Some(mut spooled) = file else {
        let chunks = futures::stream::iter(memory.into_iter().map(Ok::<_, io::Error>));
        return Ok((StreamingBlob::wrap(chunks), length));
    };
    spooled.flush().await.map_err(failed)?;
    spooled.seek(io::SeekFrom::Start(0)).await.map_err(failed)?;
    Ok((stream_file(spooled), length))
}

/// A spooled file as a body, read through a bounded channel.
fn stream_file(mut file: tokio::fs::File) -> StreamingBlob {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let sent = match file.read(&mut buffer).await {
                Ok(0) => return,
                Ok(n) => tx.send(Ok(Bytes::copy_from_slice(&buffer[..n]))).await,
                Err(e) => tx.send(Err(e)).await,
            };
            if sent.is_err() {
                return;
            }
        }
    });
    StreamingBlob::wrap(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::hmac;

    fn attributes(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn signatures_cover_the_path_and_limits_under_any_key() {
        let path = "/v1/AUTH_test/c/prefix";
        let message = format!("{path}\nhttp://x/done\n1024\n3\n2000000000");
        let sign = |algorithm, key: &str| {
            hex::encode(hmac::sign(&hmac::Key::new(algorithm, key.as_bytes()), message.as_bytes()).as_ref())
        };
        let mut form = attributes(&[
            ("redirect", "http://x/done"),
            ("max_file_size", "1024"),
            ("max_file_count", "3"),
            ("expires", "2000000000"),
        ]);
        let keys = ["container-key".to_string(), "account-key".to_string()];
        for (algorithm, key) in [
            (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, "container-key"),
            (hmac::HMAC_SHA256, "account-key"),
            (hmac::HMAC_SHA512, "account-key"),
        ] {
            form.insert("signature".into(), sign(algorithm, key));
            assert!(signature_valid(path, &form, &keys));
            assert!(!signature_valid("/v1/AUTH_test/c/other", &form, &keys));
            assert!(!signature_valid(path, &form, &["wrong".to_string()]));
        }
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, b"account-key"), message.as_bytes());
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        form.insert("signature".into(), format!("sha512:{b64}"));
        assert!(signature_valid(path, &form, &keys));
        form.insert("max_file_count".into(), "4".into());
        assert!(!signature_valid(path, &form, &keys), "the limits are signed");
    }

    #[test]
    fn numbers_and_messages_read_as_python_writes_them() {
        assert_eq!(python_int(" 12 "), Some(12));
        assert_eq!(python_int("-3"), Some(-3));
        assert_eq!(python_int("1_000"), Some(1000));
        assert_eq!(python_int("1.5"), None);
        assert_eq!(python_int("_1"), None);
        assert_eq!(title("max file count exceeded"), "Max File Count Exceeded");
        assert_eq!(title("invalid signature"), "Invalid Signature");
        let form = attributes(&[("max_file_size", "x")]);
        assert!(matches!(integer(&form, "max_file_size", "no"), Err(Refusal::Invalid(_))));
        assert_eq!(integer(&form, "missing", "no").ok(), Some(0));
    }

    #[test]
    fn paths_split_into_account_container_and_object() {
        assert_eq!(split("/v1/AUTH_a/c/pre/fix"), ("AUTH_a", Some("c"), Some("pre/fix")));
        assert_eq!(split("/v1/AUTH_a"), ("AUTH_a", None, None));
    }

    #[tokio::test]
    async fn answers_are_swifts() {
        let body = |answer: SwiftResponse| async move {
            let status = answer.status();
            let location = answer.headers().get("location").map(|v| v.to_str().unwrap().to_string());
            let bytes = BodyExt::collect(answer.into_body()).await.unwrap().to_bytes();
            (status, location, String::from_utf8(bytes.to_vec()).unwrap())
        };
        let (status, _, text) = body(answer(StatusCode::CREATED, "", Bytes::new(), None)).await;
        assert_eq!((status, text.as_str()), (StatusCode::CREATED, "201 Created"));
        let (status, _, text) =
            body(answer(StatusCode::BAD_REQUEST, "max file count exceeded", Bytes::new(), None)).await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::BAD_REQUEST, "400 Bad Request\r\nFormPost: Max File Count Exceeded")
        );
        let redirect = "http://x/done?a=1".to_string();
        let (status, location, _) =
            body(answer(StatusCode::BAD_REQUEST, "max file count exceeded", Bytes::new(), Some(&redirect))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("http://x/done?a=1&status=400&message=max%20file%20count%20exceeded"));
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "multipart/form-data; boundary=----x1".parse().unwrap());
        assert_eq!(boundary(&headers).as_deref(), Some("----x1"));
        headers.insert("content-type", "text/plain".parse().unwrap());
        assert_eq!(boundary(&headers), None);
    }
}
