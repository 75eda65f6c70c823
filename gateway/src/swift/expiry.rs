//! Swift object expiry: `X-Delete-At` (Unix seconds) and `X-Delete-After` (seconds from now) on
//! PUT, POST and COPY, stored as a reserved metadata name that the metadata service indexes and
//! acts on (`metadata/src/expiry.rs`). From the expiry time on, GET and HEAD answer 404 at once,
//! as Swift does, even before the metadata service has deleted the object.

use std::collections::HashMap;

use http::{HeaderMap, StatusCode};

use super::header;
use super::response::{self, SwiftResponse};

/// The reserved metadata name (Unix seconds), shared with the metadata service.
pub const DELETE_AT: &str = "x-delete-at";

/// The expiry a request asks for, in Unix seconds; 400 as Swift answers malformed or past times.
/// `X-Delete-After` wins over `X-Delete-At`, as in Swift (it is turned into one).
pub fn requested(headers: &HeaderMap, now_secs: i64) -> Result<Option<i64>, SwiftResponse> {
    if let Some(after) = header(headers, "x-delete-after") {
        let after: i64 =
            after.trim().parse().map_err(|_| response::error(StatusCode::BAD_REQUEST, "Non-integer X-Delete-After"))?;
        if after < 0 {
            return Err(response::error(StatusCode::BAD_REQUEST, "X-Delete-After in past"));
        }
        return Ok(Some(now_secs.saturating_add(after)));
    }
    let Some(at) = header(headers, "x-delete-at") else { return Ok(None) };
    // Swift accepts a float timestamp and keeps its whole seconds.
    let at = at
        .trim()
        .parse::<i64>()
        .ok()
        .or_else(|| at.trim().parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f as i64))
        .ok_or_else(|| response::error(StatusCode::BAD_REQUEST, "Non-integer X-Delete-At"))?;
    if at < now_secs {
        return Err(response::error(StatusCode::BAD_REQUEST, "X-Delete-At in past"));
    }
    Ok(Some(at))
}

/// The expiry time stored with an object, if any.
pub fn stored(metadata: Option<&HashMap<String, String>>) -> Option<i64> {
    metadata?.get(DELETE_AT)?.trim().parse().ok()
}

/// 404 for an object whose expiry time has come.
pub fn refuse_expired(metadata: Option<&HashMap<String, String>>, now_secs: i64) -> Result<(), SwiftResponse> {
    match stored(metadata) {
        Some(at) if at <= now_secs => Err(response::error(StatusCode::NOT_FOUND, "The resource could not be found.")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(n, v)| (http::HeaderName::from_static(n), v.parse().unwrap())).collect()
    }

    #[test]
    fn requests_are_read_and_refused_as_swift_does() {
        assert_eq!(requested(&headers(&[]), 100).ok(), Some(None));
        assert_eq!(requested(&headers(&[("x-delete-after", "5")]), 100).ok(), Some(Some(105)));
        assert_eq!(requested(&headers(&[("x-delete-at", "200")]), 100).ok(), Some(Some(200)));
        assert_eq!(requested(&headers(&[("x-delete-at", "200.7")]), 100).ok(), Some(Some(200)));
        assert_eq!(requested(&headers(&[("x-delete-at", "200"), ("x-delete-after", "1")]), 100).ok(), Some(Some(101)));
        for bad in [("x-delete-at", "soon"), ("x-delete-at", "99"), ("x-delete-after", "x"), ("x-delete-after", "-1")] {
            let refused = requested(&headers(&[bad]), 100).err().map(|r| r.status());
            assert_eq!(refused, Some(StatusCode::BAD_REQUEST), "{bad:?}");
        }
    }

    #[test]
    fn expired_objects_are_not_found() {
        let meta: HashMap<String, String> = [(DELETE_AT.to_string(), "100".to_string())].into();
        assert!(refuse_expired(Some(&meta), 99).is_ok());
        assert!(refuse_expired(Some(&meta), 100).is_err());
        assert!(refuse_expired(None, 1_000).is_ok());
    }
}
