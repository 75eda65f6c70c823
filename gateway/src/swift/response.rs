//! Swift responses: status codes and short text bodies as Swift sends them, and the mapping of
//! S3 and gateway failures onto Swift's statuses.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use s3s::{Body, S3Error, S3ErrorCode};

pub type SwiftResponse = Response<Body>;

/// An HTTP date (IMF-fixdate) of a Unix time in milliseconds.
pub fn http_date(unix_ms: i64) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

pub fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn status(code: StatusCode) -> SwiftResponse {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}

/// A status with Swift's short HTML-ish explanation, as its proxy server answers errors.
pub fn error(code: StatusCode, explanation: &str) -> SwiftResponse {
    let reason = code.canonical_reason().unwrap_or("Error");
    let text = format!("<html><h1>{reason}</h1><p>{}</p></html>", escape_xml(explanation));
    let mut response = Response::new(Body::from(Bytes::from(text)));
    *response.status_mut() = code;
    set(&mut response, "content-type", "text/html; charset=UTF-8");
    response
}

pub fn body(code: StatusCode, content_type: &str, text: String) -> SwiftResponse {
    let mut response = Response::new(Body::from(Bytes::from(text)));
    *response.status_mut() = code;
    set(&mut response, "content-type", content_type);
    response
}

/// Sets a header; UTF-8 values go out as raw bytes, as Swift sends them (control characters
/// cannot, and the header is then left out).
pub fn set(response: &mut SwiftResponse, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
        response.headers_mut().insert(name, value);
    }
}

/// The Swift status for an S3 failure of the operation underneath.
pub fn from_s3(e: &S3Error) -> SwiftResponse {
    let code = match e.code() {
        S3ErrorCode::NoSuchKey | S3ErrorCode::NoSuchBucket | S3ErrorCode::NoSuchUpload => StatusCode::NOT_FOUND,
        S3ErrorCode::AccessDenied | S3ErrorCode::InvalidAccessKeyId => StatusCode::FORBIDDEN,
        S3ErrorCode::BucketNotEmpty | S3ErrorCode::BucketAlreadyExists => StatusCode::CONFLICT,
        S3ErrorCode::BadDigest | S3ErrorCode::InvalidDigest => StatusCode::UNPROCESSABLE_ENTITY,
        S3ErrorCode::InvalidRange => StatusCode::RANGE_NOT_SATISFIABLE,
        S3ErrorCode::EntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        S3ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        S3ErrorCode::IncompleteBody => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        S3ErrorCode::ServiceUnavailable | S3ErrorCode::SlowDown => StatusCode::SERVICE_UNAVAILABLE,
        S3ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => e.status_code().unwrap_or(StatusCode::BAD_REQUEST),
    };
    error(code, e.message().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_failures_become_swift_statuses() {
        let cases = [
            (S3ErrorCode::NoSuchKey, 404),
            (S3ErrorCode::BucketNotEmpty, 409),
            (S3ErrorCode::BadDigest, 422),
            (S3ErrorCode::AccessDenied, 403),
        ];
        for (code, want) in cases {
            assert_eq!(from_s3(&S3Error::new(code)).status().as_u16(), want);
        }
    }
}
