//! Bucket CORS: Put/Get/DeleteBucketCors, the preflight `OPTIONS` answer and the CORS headers of
//! actual requests. The rules are stored as JSON in `BucketRecord.configs["cors"]`; every
//! per-request lookup reads them from the cached `BucketFacts`, never from the metadata service.
//!
//! s3s routes no `OPTIONS`, so the edge answers preflights itself, unauthenticated (browsers send
//! no credentials with them), before s3s sees the request.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use s3s::dto::*;
use s3s::{Body, S3Error, S3ErrorCode, S3Result};
use serde::{Deserialize, Serialize};

use super::CofferS3;
use super::bucket_config::names;
use crate::owners::BucketOwners;

/// AWS's limit on the rules of one configuration.
pub const MAX_RULES: usize = 100;
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];
const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";
const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually because the evalution of \
                           Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers \
                           are not whitelisted by the resource's CORS spec.";

/// One CORS rule as stored (AWS's `CORSRule`, validated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub origins: Vec<String>,
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub expose: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i32>,
}

/// A bucket's CORS configuration: its rules in the order given (the first match wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub rules: Vec<Rule>,
}

fn malformed_xml() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

fn invalid_request(message: String) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, message)
}

/// Matches `value` against `pattern`, in which one `*` stands for any run of characters.
fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| if ignore_case { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.is_char_boundary(prefix.len())
                && value.is_char_boundary(value.len() - suffix.len())
                && eq(prefix, &value[..prefix.len()])
                && eq(suffix, &value[value.len() - suffix.len()..])
        }
    }
}

impl Config {
    /// Validates a configuration as AWS does: 1 to 100 rules, each with at least one origin and
    /// method, only GET/PUT/POST/DELETE/HEAD, at most one `*` per origin and per header.
    pub fn from_dto(config: CORSConfiguration) -> S3Result<Config> {
        let rules = config.cors_rules;
        if rules.is_empty() || rules.len() > MAX_RULES {
            return Err(malformed_xml());
        }
        let mut out = Vec::with_capacity(rules.len());
        for rule in rules {
            if rule.allowed_methods.is_empty() || rule.allowed_origins.is_empty() {
                return Err(malformed_xml());
            }
            for method in &rule.allowed_methods {
                if !METHODS.contains(&method.as_str()) {
                    return Err(invalid_request(format!(
                        "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
                    )));
                }
            }
            for origin in &rule.allowed_origins {
                if origin.matches('*').count() > 1 {
                    return Err(invalid_request(format!(
                        "AllowedOrigin \"{origin}\" can not have more than one wildcard."
                    )));
                }
            }
            let headers = rule.allowed_headers.unwrap_or_default();
            for header in &headers {
                if header.matches('*').count() > 1 {
                    return Err(invalid_request(format!(
                        "AllowedHeader \"{header}\" can not have more than one wildcard."
                    )));
                }
            }
            out.push(Rule {
                id: rule.id,
                origins: rule.allowed_origins,
                methods: rule.allowed_methods,
                headers,
                expose: rule.expose_headers.unwrap_or_default(),
                max_age: rule.max_age_seconds,
            });
        }
        Ok(Config { rules: out })
    }

    pub fn to_dto(&self) -> CORSRules {
        self.rules
            .iter()
            .map(|r| CORSRule {
                id: r.id.clone(),
                allowed_origins: r.origins.clone(),
                allowed_methods: r.methods.clone(),
                allowed_headers: (!r.headers.is_empty()).then(|| r.headers.clone()),
                expose_headers: (!r.expose.is_empty()).then(|| r.expose.clone()),
                max_age_seconds: r.max_age,
            })
            .collect()
    }

    /// The stored form; `None` when the bytes are not a configuration (then nothing is allowed).
    pub fn parse(bytes: &[u8]) -> Option<Config> {
        match serde_json::from_slice(bytes) {
            Ok(config) => Some(config),
            Err(e) => {
                tracing::error!(error = %e, "stored CORS configuration does not parse; ignored");
                None
            }
        }
    }

    /// The first rule that allows `origin` to use `method` with `headers` (lower-case names).
    pub fn find(&self, origin: &str, method: &str, headers: &[String]) -> Option<&Rule> {
        self.rules.iter().find(|rule| {
            rule.origins.iter().any(|o| wildcard_match(o, origin, false))
                && rule.methods.iter().any(|m| m == method)
                && headers.iter().all(|h| rule.headers.iter().any(|p| wildcard_match(p, h, true)))
        })
    }
}

impl Rule {
    /// The headers every answer matched by this rule carries; `Access-Control-Allow-Origin` is
    /// `*` only when the rule allows every origin, and then no credentials are allowed.
    fn headers(&self, origin: &str) -> Vec<(&'static str, String)> {
        let any = self.origins.iter().any(|o| o == "*");
        let mut out = vec![("access-control-allow-origin", if any { "*".to_string() } else { origin.to_string() })];
        if !any {
            out.push(("access-control-allow-credentials", "true".to_string()));
        }
        out.push(("access-control-allow-methods", self.methods.join(", ")));
        if !self.expose.is_empty() {
            out.push(("access-control-expose-headers", self.expose.join(", ")));
        }
        if let Some(age) = self.max_age {
            out.push(("access-control-max-age", age.to_string()));
        }
        out.push(("vary", VARY.to_string()));
        out
    }
}

/// The bucket a request on the S3 port names (path style or virtual-hosted), and whether it
/// names an object; `None` for the service itself and for the admin API.
pub fn target(path: &str, host_bucket: Option<&str>) -> Option<(String, bool)> {
    if path.starts_with(crate::admin::PREFIX) || crate::admin::minio::PREFIXES.iter().any(|p| path.starts_with(p)) {
        return None;
    }
    let path = path.trim_start_matches('/');
    if let Some(bucket) = host_bucket {
        return Some((bucket.to_string(), !path.is_empty()));
    }
    let (bucket, rest) = path.split_once('/').unwrap_or((path, ""));
    (!bucket.is_empty()).then(|| (bucket.to_string(), !rest.is_empty()))
}

/// [`target`] of a request, with the bucket of a virtual-hosted `Host`.
pub fn target_of<B>(req: &http::Request<B>, domains: Option<&crate::host::Domains>) -> Option<(String, bool)> {
    use s3s::host::S3Host;
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let host_bucket = domains.and_then(|d| d.parse_host_header(host).ok().and_then(|v| v.bucket().map(str::to_string)));
    target(req.uri().path(), host_bucket.as_deref())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The header names of `Access-Control-Request-Headers`, lower-case.
fn requested_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("access-control-request-headers")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn error_response(status: StatusCode, code: &str, message: &str, extra: &str) -> Response<Body> {
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{}</Message>{extra}</Error>",
        xml_escape(message)
    );
    let mut response = Response::new(Body::from(doc));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

fn forbidden(message: &str, method: &str, object: bool) -> Response<Body> {
    let kind = if object { "OBJECT" } else { "BUCKET" };
    let extra = format!("<Method>{}</Method><ResourceType>{kind}</ResourceType>", xml_escape(method));
    error_response(StatusCode::FORBIDDEN, "AccessForbidden", message, &extra)
}

/// The answer to a preflight `OPTIONS` on `target`, from the bucket's rules.
pub async fn preflight(owners: &BucketOwners, target: Option<(String, bool)>, headers: &HeaderMap) -> Response<Body> {
    let Some(origin) = header(headers, "origin") else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
            "",
        );
    };
    let method = header(headers, "access-control-request-method");
    let shown_method = method.unwrap_or("OPTIONS");
    let Some((bucket, object)) = target else {
        return forbidden("CORSResponse: Bucket not found", shown_method, false);
    };
    let facts = match owners.facts(&bucket).await {
        Ok(Some(facts)) => facts,
        Ok(None) => return forbidden("CORSResponse: Bucket not found", shown_method, object),
        Err(e) => {
            tracing::warn!(%bucket, error = %e, "bucket lookup for a CORS preflight failed");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Please reduce your request rate.",
                "",
            );
        }
    };
    let Some(config) = facts.config(names::CORS).and_then(Config::parse) else {
        return forbidden("CORSResponse: CORS is not enabled for this bucket.", shown_method, object);
    };
    let Some(method) = method else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid Access-Control-Request-Method: null",
            "",
        );
    };
    let requested = requested_headers(headers);
    let Some(rule) = config.find(origin, method, &requested) else {
        return forbidden(NOT_ALLOWED, method, object);
    };
    let mut response = Response::new(Body::empty());
    let out = response.headers_mut();
    for (name, value) in rule.headers(origin) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(HeaderName::from_static(name), value);
        }
    }
    if !requested.is_empty()
        && let Ok(value) = HeaderValue::from_str(&requested.join(", "))
    {
        out.insert("access-control-allow-headers", value);
    }
    out.insert(http::header::CONTENT_LENGTH, HeaderValue::from(0));
    response
}

/// What an actual (non-preflight) request needs for its CORS headers, taken before it is served.
pub struct ActualRequest {
    bucket: String,
    origin: String,
    method: Method,
}

impl ActualRequest {
    /// `None` unless the request carries an `Origin` and names a bucket.
    pub fn of(method: &Method, headers: &HeaderMap, target: Option<(String, bool)>) -> Option<ActualRequest> {
        let origin = header(headers, "origin")?.to_string();
        let (bucket, _) = target?;
        Some(ActualRequest { bucket, origin, method: method.clone() })
    }

    /// Adds the matching rule's headers to `response`, whatever its status (AWS sends them on
    /// errors too). Unmatched requests get none.
    pub async fn decorate(self, owners: &BucketOwners, response: &mut Response<Body>) {
        let Ok(Some(facts)) = owners.facts(&self.bucket).await else { return };
        let Some(config) = facts.config(names::CORS).and_then(Config::parse) else { return };
        let Some(rule) = config.find(&self.origin, self.method.as_str(), &[]) else { return };
        let out = response.headers_mut();
        for (name, value) in rule.headers(&self.origin) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                out.insert(HeaderName::from_static(name), value);
            }
        }
    }
}

impl CofferS3 {
    pub(super) async fn do_put_bucket_cors(&self, input: PutBucketCorsInput) -> S3Result<PutBucketCorsOutput> {
        let config = Config::from_dto(input.cors_configuration)?;
        let bytes = serde_json::to_vec(&config)
            .map_err(|e| S3Error::with_message(S3ErrorCode::InternalError, e.to_string()))?;
        self.set_bucket_config(&input.bucket, names::CORS, Some(bytes)).await?;
        Ok(PutBucketCorsOutput {})
    }

    pub(super) async fn do_get_bucket_cors(&self, input: GetBucketCorsInput) -> S3Result<GetBucketCorsOutput> {
        let config = self.bucket_config(&input.bucket, names::CORS).await?.as_deref().and_then(Config::parse);
        let Some(config) = config else {
            return Err(S3Error::with_message(
                S3ErrorCode::NoSuchCORSConfiguration,
                "The CORS configuration does not exist",
            ));
        };
        Ok(GetBucketCorsOutput { cors_rules: Some(config.to_dto()) })
    }

    pub(super) async fn do_delete_bucket_cors(&self, input: DeleteBucketCorsInput) -> S3Result<DeleteBucketCorsOutput> {
        self.set_bucket_config(&input.bucket, names::CORS, None).await?;
        Ok(DeleteBucketCorsOutput {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CORSRule {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        CORSRule {
            allowed_origins: list(origins),
            allowed_methods: list(methods),
            allowed_headers: (!headers.is_empty()).then(|| list(headers)),
            ..Default::default()
        }
    }

    fn config(rules: Vec<CORSRule>) -> S3Result<Config> {
        Config::from_dto(CORSConfiguration { cors_rules: rules })
    }

    fn code(r: S3Result<Config>) -> String {
        r.err().map(|e| e.code().as_str().to_string()).unwrap_or_default()
    }

    #[test]
    fn configurations_are_validated_as_aws_does() {
        assert!(config(vec![rule(&["*"], &["GET", "HEAD"], &[])]).is_ok());
        assert_eq!(code(config(vec![])), "MalformedXML");
        assert_eq!(code(config(vec![rule(&["*"], &["GET"], &[]); MAX_RULES + 1])), "MalformedXML");
        assert!(config(vec![rule(&["*"], &["GET"], &[]); MAX_RULES]).is_ok());
        assert_eq!(code(config(vec![rule(&["*"], &["PATCH"], &[])])), "InvalidRequest");
        assert_eq!(code(config(vec![rule(&["*"], &["get"], &[])])), "InvalidRequest");
        assert_eq!(code(config(vec![rule(&["http://*.*.com"], &["GET"], &[])])), "InvalidRequest");
        assert_eq!(code(config(vec![rule(&["*"], &["GET"], &["x-*-*"])])), "InvalidRequest");
        assert_eq!(code(config(vec![rule(&[], &["GET"], &[])])), "MalformedXML");
        let stored = config(vec![rule(&["https://a.com"], &["PUT"], &["x-amz-*"])]).unwrap();
        let bytes = serde_json::to_vec(&stored).unwrap();
        assert_eq!(Config::parse(&bytes), Some(stored.clone()));
        assert_eq!(stored.to_dto()[0].allowed_headers.as_deref(), Some(&["x-amz-*".to_string()][..]));
        assert_eq!(Config::parse(b"not json"), None);
    }

    #[test]
    fn origins_methods_and_headers_match_with_one_wildcard() {
        let c = config(vec![
            rule(&["http://*.example.com"], &["GET", "PUT"], &["x-amz-*", "Content-Type"]),
            rule(&["https://exact.org"], &["DELETE"], &[]),
            rule(&["*"], &["HEAD"], &["*"]),
        ])
        .unwrap();
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(c.find("http://www.example.com", "GET", &[]).is_some());
        assert!(c.find("http://a.b.example.com", "PUT", &h(&["x-amz-date", "content-type"])).is_some());
        assert!(c.find("http://www.example.com", "PUT", &h(&["authorization"])).is_none(), "header not allowed");
        assert!(c.find("https://www.example.com", "GET", &[]).is_none(), "scheme differs");
        assert!(c.find("http://.example.com", "GET", &[]).is_some(), "the wildcard may be empty");
        assert!(c.find("http://example.com", "GET", &[]).is_none());
        assert!(c.find("https://exact.org", "DELETE", &[]).is_some());
        assert!(c.find("https://exact.org", "GET", &[]).is_none(), "method not allowed");
        assert!(c.find("https://exact.org", "DELETE", &h(&["x-amz-date"])).is_none(), "no headers allowed");
        assert!(c.find("anything", "HEAD", &h(&["whatever"])).is_some());
        assert!(c.find("anything", "POST", &[]).is_none());
        // The first matching rule wins.
        let r = c.find("https://exact.org", "DELETE", &[]).unwrap();
        assert_eq!(r.methods, ["DELETE"]);
        assert!(!wildcard_match("ab*ba", "aba", false), "prefix and suffix may not overlap");
        assert!(wildcard_match("X-AMZ-*", "x-amz-meta-a", true));
        assert!(!wildcard_match("X-AMZ-*", "x-amz-meta-a", false));
        assert!(wildcard_match("é*", "éa", false));
        assert!(!wildcard_match("a*", "é", false));
    }

    #[test]
    fn answers_name_the_origin_unless_every_origin_is_allowed() {
        let c = config(vec![
            CORSRule {
                expose_headers: Some(vec!["ETag".into(), "x-amz-request-id".into()]),
                max_age_seconds: Some(3000),
                ..rule(&["https://app.example"], &["GET", "PUT"], &[])
            },
            rule(&["*"], &["GET"], &[]),
        ])
        .unwrap();
        let named = c.rules[0].headers("https://app.example");
        let get = |hs: &[(&str, String)], n: &str| hs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        assert_eq!(get(&named, "access-control-allow-origin").as_deref(), Some("https://app.example"));
        assert_eq!(get(&named, "access-control-allow-credentials").as_deref(), Some("true"));
        assert_eq!(get(&named, "access-control-allow-methods").as_deref(), Some("GET, PUT"));
        assert_eq!(get(&named, "access-control-expose-headers").as_deref(), Some("ETag, x-amz-request-id"));
        assert_eq!(get(&named, "access-control-max-age").as_deref(), Some("3000"));
        assert_eq!(get(&named, "vary").as_deref(), Some(VARY));
        let any = c.rules[1].headers("https://other.example");
        assert_eq!(get(&any, "access-control-allow-origin").as_deref(), Some("*"));
        assert_eq!(get(&any, "access-control-allow-credentials"), None);
        assert_eq!(get(&any, "access-control-max-age"), None);
    }

    #[test]
    fn targets_come_from_the_path_or_the_host() {
        assert_eq!(target("/b/k/x", None), Some(("b".to_string(), true)));
        assert_eq!(target("/b", None), Some(("b".to_string(), false)));
        assert_eq!(target("/b/", None), Some(("b".to_string(), false)));
        assert_eq!(target("/", None), None);
        assert_eq!(target("/k", Some("vb")), Some(("vb".to_string(), true)));
        assert_eq!(target("/", Some("vb")), Some(("vb".to_string(), false)));
        assert_eq!(target("/coffer/admin/v1/users", None), None);
    }
}
