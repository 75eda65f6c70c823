//! What the HTTP edge does to S3 requests and responses around s3s, where s3s is stricter or
//! terser than S3: lenient HTTP dates in headers that no signature covers, the SigV2 clock check,
//! and the `<Message>` of error documents.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::BodyExt;
use md5::{Digest, Md5};
use s3s::dto::{Timestamp, TimestampFormat};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// How far a SigV2 request's Date may be from the server's clock (AWS: 15 minutes).
pub const MAX_SIGV2_SKEW_SECS: i64 = 15 * 60;

/// Date headers s3s parses strictly as IMF-fixdate and answers with 400 when they are not.
const DATE_HEADERS: [&str; 5] = [
    "if-modified-since",
    "if-unmodified-since",
    "x-amz-copy-source-if-modified-since",
    "x-amz-copy-source-if-unmodified-since",
    "expires",
];

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/// Parses an HTTP date in any of the forms RFC 9110 §5.6.7 says a recipient must accept
/// (IMF-fixdate, RFC 850, asctime), plus RFC 2822's numeric zones (`-0000`, `+0200`), which
/// Python's `email.utils.formatdate()` writes. Returns seconds since the epoch.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let cleaned = text.replace(',', " ");
    let mut tokens: Vec<&str> = cleaned.split_whitespace().collect();
    // A leading day name ("Sun", "Sunday") says nothing the date does not.
    if tokens.first().is_some_and(|t| t.chars().all(|c| c.is_ascii_alphabetic()) && month(t).is_none()) {
        tokens.remove(0);
    }
    let (day, month_index, year, clock, zone) = match tokens.as_slice() {
        // RFC 850: 06-Nov-94 08:49:37 GMT
        [dmy, clock, zone] if dmy.contains('-') => {
            let mut parts = dmy.split('-');
            let (d, m, y_text) = (parts.next()?, parts.next()?, parts.next()?);
            let y: i32 = y_text.parse().ok()?;
            // RFC 850's two-digit years (RFC 9110: one that looks more than 50 years ahead is in the past).
            let y = match (y_text.len(), y) {
                (2, y) if y >= 70 => 1900 + y,
                (2, y) => 2000 + y,
                (_, y) => y,
            };
            (d.parse().ok()?, month(m)?, y, *clock, Some(*zone))
        }
        // asctime: Nov  6 08:49:37 1994
        [m, d, clock, y] if month(m).is_some() => (d.parse().ok()?, month(m)?, y.parse().ok()?, *clock, None),
        // IMF-fixdate / RFC 2822: 06 Nov 1994 08:49:37 GMT|+0000
        [d, m, y, clock, zone] => (d.parse().ok()?, month(m)?, y.parse().ok()?, *clock, Some(*zone)),
        _ => return None,
    };
    let offset_secs = match zone {
        None => 0,
        Some(z) if ["gmt", "ut", "utc", "z"].contains(&z.to_ascii_lowercase().as_str()) => 0,
        Some(z) => {
            let (sign, digits) = match z.as_bytes().first()? {
                b'+' => (1, &z[1..]),
                b'-' => (-1, &z[1..]),
                _ => return None,
            };
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hours: i64 = digits[..2].parse().ok()?;
            let minutes: i64 = digits[2..].parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let mut hms = clock.split(':');
    let (h, m, s) = (hms.next()?.parse().ok()?, hms.next()?.parse().ok()?, hms.next()?.parse().ok()?);
    if hms.next().is_some() {
        return None;
    }
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month_index).ok()?, day).ok()?;
    let time_of_day = time::Time::from_hms(h, m, s).ok()?;
    Some(date.with_time(time_of_day).assume_utc().unix_timestamp() - offset_secs)
}

fn month(name: &str) -> Option<u8> {
    let lower = name.to_ascii_lowercase();
    MONTHS.iter().position(|m| *m == lower).map(|i| i as u8 + 1)
}

fn imf_fixdate(unix_secs: i64) -> Option<String> {
    let ts: Timestamp = time::OffsetDateTime::from_unix_timestamp(unix_secs).ok()?.into();
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

/// The header names a request's signature covers, lower-case; `None` for an unsigned request.
fn signed_headers(headers: &HeaderMap, uri: &Uri) -> Option<Vec<String>> {
    let auth = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256") {
        let list = rest.split(',').find_map(|p| p.trim().strip_prefix("SignedHeaders="))?;
        return Some(list.split(';').map(str::to_ascii_lowercase).collect());
    }
    let query = uri.query().unwrap_or_default();
    let pairs = || crate::authz::url_pairs(query);
    if let Some((_, list)) = pairs().find(|(n, _)| n == "X-Amz-SignedHeaders") {
        return Some(list.split(';').map(str::to_ascii_lowercase).collect());
    }
    if auth.starts_with("AWS ") || pairs().any(|(n, _)| n == "Signature") {
        // SigV2 signs Content-MD5, Content-Type, Date and every x-amz-* header.
        let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_string()).collect();
        names.retain(|n| n.starts_with("x-amz-") || ["content-md5", "content-type", "date"].contains(&n.as_str()));
        return Some(names);
    }
    None
}

/// An `Expires` header that is no date, taken off the request (s3s would refuse it) and stored
/// as given, as S3 does (a request extension).
#[derive(Debug, Clone)]
pub struct RawExpires(pub String);

/// Makes the date headers s3s would reject with 400 acceptable, where no signature covers them:
/// a date in another HTTP-date form is rewritten as IMF-fixdate, and a value that is no date at
/// all is dropped (RFC 9110 §13.1.3-4: a recipient MUST ignore an invalid If-Modified-Since or
/// If-Unmodified-Since), or for Expires kept aside in [`RawExpires`] (S3 does not validate it).
/// A signed header cannot be changed without breaking its signature; s3s then answers as before.
pub fn normalize_date_headers(headers: &mut HeaderMap, extensions: &mut http::Extensions, uri: &Uri) {
    let needs_fix =
        |v: &HeaderValue| v.to_str().map_or(true, |s| Timestamp::parse(TimestampFormat::HttpDate, s).is_err());
    let bad: Vec<&str> = DATE_HEADERS.into_iter().filter(|name| headers.get(*name).is_some_and(needs_fix)).collect();
    if bad.is_empty() {
        return;
    }
    let signed = signed_headers(headers, uri).unwrap_or_default();
    for name in bad {
        if signed.iter().any(|s| s == name) {
            continue;
        }
        let fixed = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
            .and_then(imf_fixdate)
            .and_then(|s| HeaderValue::from_str(&s).ok());
        match fixed {
            Some(value) => {
                headers.insert(name, value);
            }
            None => {
                if let Some(raw) = headers.remove(name)
                    && name == "expires"
                {
                    extensions.insert(RawExpires(String::from_utf8_lossy(raw.as_bytes()).into_owned()));
                }
            }
        }
    }
}

/// The MD5 of a request body, computed while s3s reads it (a request extension).
#[derive(Clone, Default)]
pub struct BodyMd5(Arc<Mutex<Md5>>);

impl BodyMd5 {
    /// The digest of what was read so far: the whole body once s3s has parsed it.
    pub fn digest(&self) -> Option<[u8; 16]> {
        self.0.lock().ok().map(|h| h.clone().finalize().into())
    }
}

/// DeleteObjects must check Content-MD5 (a corrupted key list would delete the wrong keys), but
/// s3s parses the body without keeping it. So its bytes are hashed as they stream past, with no
/// copy; the handler compares once s3s has read it all. aws-chunked bodies are left alone (their
/// raw bytes are not the payload).
pub fn hash_delete_objects_body<B>(req: Request<B>) -> Request<s3s::Body>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    s3s::StdError: From<B::Error>,
{
    let is_delete = req.method() == Method::POST
        && req.uri().query().is_some_and(|q| crate::authz::url_pairs(q).any(|(name, _)| name == "delete"));
    let streaming = req
        .headers()
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"));
    if !is_delete || streaming || !req.headers().contains_key("content-md5") {
        return req.map(s3s::Body::http_body);
    }
    let md5 = BodyMd5::default();
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(md5.clone());
    let hashed = body.map_frame(move |frame| {
        if let (Some(data), Ok(mut h)) = (frame.data_ref(), md5.0.lock()) {
            h.update(data);
        }
        frame
    });
    Request::from_parts(parts, s3s::Body::http_body(hashed))
}

/// A SigV4 header-signed request without any date: s3s answers 400, S3 403 AccessDenied.
pub fn missing_sigv4_date(headers: &HeaderMap) -> Option<S3Error> {
    let auth = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let empty = |name: &str| headers.get(name).is_none_or(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace));
    (auth.starts_with("AWS4-HMAC-SHA256") && empty("x-amz-date") && empty("date")).then(access_denied_no_date)
}

/// An S3 error document for an answer the edge gives itself.
pub fn error_document(code: &str, message: &str) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
        escape(code),
        escape(message)
    )
}

fn access_denied_no_date() -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, "AWS authentication requires a valid Date or x-amz-date header")
}

/// SigV2 header authentication has no expiry of its own: without this check a captured request
/// could be replayed forever. Like S3, the request time is x-amz-date when present, else Date;
/// a missing or unparseable one is AccessDenied, one more than 15 minutes off RequestTimeTooSkewed.
/// Presigned SigV2 URLs carry `Expires` instead, which s3s checks.
pub fn check_sigv2_time(headers: &HeaderMap, now_unix_secs: i64) -> S3Result<()> {
    let auth = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !auth.starts_with("AWS ") {
        return Ok(());
    }
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let Some(date) = value("x-amz-date").or_else(|| value("date")) else {
        return Err(access_denied_no_date());
    };
    let request_secs = parse_http_date(date).ok_or_else(access_denied_no_date)?;
    if (request_secs - now_unix_secs).abs() > MAX_SIGV2_SKEW_SECS {
        return Err(S3Error::with_message(
            S3ErrorCode::RequestTimeTooSkewed,
            "The difference between the request time and the current time is too large.",
        ));
    }
    Ok(())
}

/// S3's message for an error code, for error documents s3s wrote without one.
pub fn default_message(code: &str) -> &'static str {
    match code {
        "AccessDenied" => "Access Denied",
        "BadDigest" => "The Content-MD5 you specified did not match what we received.",
        "BucketAlreadyExists" => "The requested bucket name is not available.",
        "BucketAlreadyOwnedByYou" => {
            "Your previous request to create the named bucket succeeded and you already own it."
        }
        "BucketNotEmpty" => "The bucket you tried to delete is not empty",
        "EntityTooLarge" => "Your proposed upload exceeds the maximum allowed size",
        "EntityTooSmall" => "Your proposed upload is smaller than the minimum allowed object size.",
        "IncompleteBody" => "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        "InternalError" => "We encountered an internal error. Please try again.",
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "InvalidArgument" => "Invalid Argument",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidDigest" => "The Content-MD5 you specified is not valid.",
        "InvalidPart" => {
            "One or more of the specified parts could not be found. The part may not have been uploaded, or the \
             specified entity tag may not match the part's entity tag."
        }
        "InvalidPartOrder" => "The list of parts was not in ascending order. Parts must be ordered by part number.",
        "InvalidRange" => "The requested range is not satisfiable",
        "InvalidRequest" => "Invalid Request",
        "InvalidURI" => "Couldn't parse the specified URI.",
        "KeyTooLongError" => "Your key is too long",
        "MalformedXML" => "The XML you provided was not well-formed or did not validate against our published schema",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "NoSuchBucket" => "The specified bucket does not exist",
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchUpload" => {
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted \
             or completed."
        }
        "NotImplemented" => "A header you provided implies functionality that is not implemented",
        "PreconditionFailed" => "At least one of the pre-conditions you specified did not hold",
        "RequestTimeTooSkewed" => "The difference between the request time and the current time is too large.",
        "ServiceUnavailable" => "Please reduce your request rate.",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and \
             signing method."
        }
        _ => "The request could not be processed.",
    }
}

/// Adds `<Message>` after `<Code>` to an S3 error document that has none (s3s omits it when the
/// error carries no message). Returns `None` when the document needs no change.
pub fn with_message(doc: &str) -> Option<String> {
    if doc.contains("<Message>") || doc.contains("<Message/>") {
        return None;
    }
    let start = doc.find("<Code>")? + "<Code>".len();
    let end = start + doc[start..].find("</Code>")?;
    let code = &doc[start..end];
    let close = end + "</Code>".len();
    Some(format!("{}<Message>{}</Message>{}", &doc[..close], default_message(code), &doc[close..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn every_http_date_form_parses() {
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 -0000",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "Sun, 06 Nov 1994 09:49:37 +0100",
            "Sun, 06 Nov 1994 07:19:37 -0130",
            "06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(text), Some(T), "{text}");
        }
        for text in [
            "",
            "garbage",
            "a valid HTTP-date timestamp",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 +01",
        ] {
            assert_eq!(parse_http_date(text), None, "{text}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    #[test]
    fn unsigned_date_headers_are_normalised_or_dropped() {
        let uri: Uri = "/b/k".parse().expect("uri");
        let mut ext = http::Extensions::new();
        let mut h = headers(&[
            ("authorization", "AWS key:sig"),
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 -0000"),
            ("if-unmodified-since", "garbage"),
            ("expires", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("x-amz-copy-source-if-modified-since", "garbage"),
        ]);
        normalize_date_headers(&mut h, &mut ext, &uri);
        assert_eq!(h.get("if-modified-since").map(|v| v.as_bytes()), Some(&b"Sun, 06 Nov 1994 08:49:37 GMT"[..]));
        assert!(h.get("if-unmodified-since").is_none());
        assert!(h.get("expires").is_some(), "a valid date is left alone");
        // SigV2 signs x-amz-* headers: changing one would break the signature.
        assert!(h.get("x-amz-copy-source-if-modified-since").is_some());

        let mut h = headers(&[
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host;if-modified-since;x-amz-date, Signature=x",
            ),
            ("if-modified-since", "garbage"),
            ("expires", "garbage"),
        ]);
        normalize_date_headers(&mut h, &mut ext, &uri);
        assert!(h.get("if-modified-since").is_some(), "signed: left for s3s");
        assert!(h.get("expires").is_none(), "not signed: taken off");
        assert_eq!(ext.get::<RawExpires>().map(|r| r.0.as_str()), Some("garbage"), "and kept to be stored");
    }

    #[test]
    fn sigv2_requests_need_a_recent_date() {
        let now = T;
        let ok = |pairs: &[(&'static str, &str)]| check_sigv2_time(&headers(pairs), now);
        let code = |r: S3Result<()>| r.err().map(|e| e.code().as_str().to_string());
        assert!(ok(&[("authorization", "AWS k:s"), ("date", "Sun, 06 Nov 1994 08:49:37 GMT")]).is_ok());
        assert!(ok(&[("authorization", "AWS k:s"), ("date", "Sun, 06 Nov 1994 09:00:00 GMT")]).is_ok());
        assert_eq!(
            code(ok(&[("authorization", "AWS k:s"), ("date", "Sun, 06 Nov 1994 09:05:00 GMT")])).as_deref(),
            Some("RequestTimeTooSkewed")
        );
        // x-amz-date wins over Date.
        assert_eq!(
            code(ok(&[
                ("authorization", "AWS k:s"),
                ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("x-amz-date", "Wed, 30 Nov 2016 21:36:57 GMT"),
            ]))
            .as_deref(),
            Some("RequestTimeTooSkewed")
        );
        for bad in [
            vec![("authorization", "AWS k:s")],
            vec![("authorization", "AWS k:s"), ("date", ""), ("x-amz-date", "")],
            vec![("authorization", "AWS k:s"), ("date", "garbage")],
        ] {
            assert_eq!(code(ok(&bad)).as_deref(), Some("AccessDenied"), "{bad:?}");
        }
        assert!(missing_sigv4_date(&headers(&[("authorization", "AWS4-HMAC-SHA256 x"), ("x-amz-date", "")])).is_some());
        assert!(
            missing_sigv4_date(&headers(&[
                ("authorization", "AWS4-HMAC-SHA256 x"),
                ("x-amz-date", "20261128T000000Z")
            ]))
            .is_none()
        );
        assert!(missing_sigv4_date(&headers(&[("authorization", "AWS k:s")])).is_none());
        // SigV4 and unsigned requests are not this check's business.
        assert!(ok(&[("authorization", "AWS4-HMAC-SHA256 Credential=x")]).is_ok());
        assert!(ok(&[]).is_ok());
    }

    #[test]
    fn error_documents_get_a_message() {
        let doc = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code></Error>";
        let patched = with_message(doc).expect("patched");
        assert!(patched.contains("</Code><Message>The request signature we calculated"), "{patched}");
        assert!(with_message("<Error><Code>NoSuchKey</Code><Message>x</Message></Error>").is_none());
        assert!(with_message("not xml").is_none());
    }
}
