//! The web console's port (`--console-address`): unsigned GETs of `/` and of `/_console/…` are
//! the console's embedded assets (`coffer-console`); every other request goes to the very same
//! edge as the S3 port, so the browser's SigV4-signed S3, STS and admin API calls are same-origin
//! (no CORS). Bucket names cannot contain `_`, so the asset prefix never hides a bucket.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use s3s::Body;

/// Where the console's assets live on its port.
pub const PREFIX: &str = "/_console/";
/// Served by the gateway itself: what the browser needs to sign (region) and to build share links.
const CONFIG_PATH: &str = "/_console/config.json";

/// Scripts and styles only from the console's own files; images also from `blob:` (previews).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   connect-src 'self'; font-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";
/// Objects opened on the console's origin (share links, downloads) never run as part of it: an
/// uploaded HTML file gets an opaque origin and cannot read the console's session.
const SANDBOX_CSP: &str =
    "sandbox; default-src 'none'; img-src 'self' data: blob:; style-src 'unsafe-inline'; media-src 'self'";

pub struct Console {
    config: Bytes,
}

/// Query parameters that make a request a presigned one (SigV4 and SigV2).
const SIGNED_QUERY: [&str; 4] = ["X-Amz-Signature", "X-Amz-Credential", "Signature", "AWSAccessKeyId"];

fn is_signed<B>(req: &Request<B>) -> bool {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return true;
    }
    req.uri().query().unwrap_or_default().split('&').any(|pair| {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        SIGNED_QUERY.contains(&name)
    })
}

impl Console {
    /// `region` signs every request; `s3_port` and `s3_tls` let the console offer the S3
    /// endpoint for share links.
    pub fn new(region: &str, s3_port: u16, s3_tls: bool) -> Console {
        let config = serde_json::json!({
            "region": region,
            "s3_port": s3_port,
            "s3_scheme": if s3_tls { "https" } else { "http" },
        });
        Console { config: Bytes::from(config.to_string()) }
    }

    /// The console's own answer to `req`, or `None` when the request is for the S3 edge.
    pub fn respond<B>(&self, req: &Request<B>) -> Option<Response<Body>> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) || is_signed(req) {
            return None;
        }
        let path = req.uri().path();
        let (bytes, content_type) = if path == "/" {
            coffer_console::asset(coffer_console::INDEX)?
        } else if path == CONFIG_PATH {
            return Some(self.file(req.method(), self.config.clone(), "application/json", StatusCode::OK));
        } else if let Some(name) = path.strip_prefix(PREFIX) {
            match coffer_console::asset(name) {
                Some(found) => found,
                None => {
                    let body = Bytes::from_static(b"no such console asset\n");
                    return Some(self.file(req.method(), body, "text/plain; charset=utf-8", StatusCode::NOT_FOUND));
                }
            }
        } else {
            return None;
        };
        Some(self.file(req.method(), Bytes::from_static(bytes), content_type, StatusCode::OK))
    }

    fn file(&self, method: &Method, bytes: Bytes, content_type: &'static str, status: StatusCode) -> Response<Body> {
        let length = bytes.len();
        let body = if method == Method::HEAD { Body::empty() } else { Body::from(bytes) };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        response
    }
}

/// Headers added to every S3 answer on the console's port (see [`SANDBOX_CSP`]).
pub fn harden(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(SANDBOX_CSP));
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str) -> Request<()> {
        Request::builder().method(Method::GET).uri(uri).body(()).expect("request")
    }

    fn console() -> Console {
        Console::new("us-east-1", 9000, false)
    }

    #[test]
    fn unsigned_gets_of_the_root_and_assets_are_the_console() {
        let c = console();
        let index = c.respond(&get("/")).expect("index");
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(index.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(
            index.headers()[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").contains("script-src 'self'")
        );
        assert_eq!(index.headers()[header::X_FRAME_OPTIONS], "DENY");
        let js = c.respond(&get("/_console/js/app.js")).expect("app.js");
        assert_eq!(js.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        let missing = c.respond(&get("/_console/js/nope.js")).expect("404");
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let config = c.respond(&get("/_console/config.json")).expect("config");
        assert_eq!(config.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn signed_requests_and_other_paths_go_to_s3() {
        let c = console();
        assert!(c.respond(&get("/bucket")).is_none());
        assert!(c.respond(&get("/bucket/key")).is_none());
        let mut signed = get("/");
        signed.headers_mut().insert(header::AUTHORIZATION, HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=x"));
        assert!(c.respond(&signed).is_none(), "ListBuckets");
        assert!(c.respond(&get("/?X-Amz-Credential=a&X-Amz-Signature=b")).is_none(), "presigned");
        assert!(c.respond(&get("/?AWSAccessKeyId=a&Signature=b")).is_none(), "presigned v2");
        let post = Request::builder().method(Method::POST).uri("/").body(()).expect("request");
        assert!(c.respond(&post).is_none(), "STS");
    }

    #[test]
    fn s3_answers_are_sandboxed() {
        let mut headers = HeaderMap::new();
        harden(&mut headers);
        assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").starts_with("sandbox"));
    }
}
