//! STS `AssumeRole` on the S3 endpoint (POST `/`, form-encoded, signed for service `sts`): the
//! caller gets temporary credentials with its own rights, optionally narrowed by a session policy.
//! `RoleArn` is accepted and not interpreted: there are no roles, a session acts as its caller.

use bytes::Bytes;
use coffer_iam::policy::Policy;
use coffer_iam::session::{DEFAULT_DURATION_SECS, MAX_DURATION_SECS, SessionClaims};
use hyper::StatusCode;
use s3s::{Body, S3Request, S3Response};

use crate::authz::{Authorizer, url_pairs};

/// AWS's limit on a packed session policy is 2048 characters; plain JSON gets some room.
const MAX_SESSION_POLICY_BYTES: usize = 16 * 1024;
const MAX_FORM_BYTES: usize = 64 * 1024;
const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

struct StsError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> StsError {
    StsError { status, code, message: message.into() }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn xml_response(status: StatusCode, body: String) -> S3Response<Body> {
    let mut response = S3Response::with_status(Body::from(Bytes::from(body)), status);
    if let Ok(value) = "text/xml".parse() {
        response.headers.insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn iso8601(unix_s: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix_s).ok().and_then(|t| t.format(&format).ok()).unwrap_or_default()
}

pub async fn handle(authorizer: &Authorizer, min_duration_secs: u64, mut req: S3Request<Body>) -> S3Response<Body> {
    match assume_role(authorizer, min_duration_secs, &mut req).await {
        Ok(body) => xml_response(StatusCode::OK, body),
        Err(e) => xml_response(
            e.status,
            format!(
                "<ErrorResponse xmlns=\"{STS_NS}\"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error></ErrorResponse>",
                e.code,
                escape(&e.message)
            ),
        ),
    }
}

async fn assume_role(
    authorizer: &Authorizer,
    min_duration: u64,
    req: &mut S3Request<Body>,
) -> Result<String, StsError> {
    let signer = authorizer.signer_of(req).map_err(|e| {
        error(StatusCode::FORBIDDEN, "AccessDenied", e.message().unwrap_or("Access Denied").to_string())
    })?;
    let form = match req.input.bytes() {
        Some(bytes) => bytes,
        None => req
            .input
            .store_all_limited(MAX_FORM_BYTES)
            .await
            .map_err(|e| error(StatusCode::BAD_REQUEST, "InvalidParameterValue", format!("request body: {e}")))?,
    };
    let form = String::from_utf8_lossy(&form).into_owned();
    let field = |name: &str| url_pairs(&form).find(|(n, _)| n == name).map(|(_, v)| v);
    match field("Action").as_deref() {
        Some("AssumeRole") => {}
        other => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                format!("unsupported STS action {}", other.unwrap_or("(none)")),
            ));
        }
    }
    if signer.session {
        return Err(error(StatusCode::FORBIDDEN, "AccessDenied", "session credentials cannot start another session"));
    }
    if !signer.narrowed_by.is_empty() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "a service account with a policy cannot start a session",
        ));
    }
    let duration = match field("DurationSeconds") {
        None => DEFAULT_DURATION_SECS,
        Some(text) => {
            text.parse::<u64>().ok().filter(|d| (min_duration..=MAX_DURATION_SECS).contains(d)).ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "ValidationError",
                    format!("DurationSeconds must be between {min_duration} and {MAX_DURATION_SECS}"),
                )
            })?
        }
    };
    let policy = field("Policy").filter(|p| !p.is_empty());
    if let Some(text) = &policy {
        if text.len() > MAX_SESSION_POLICY_BYTES {
            return Err(error(StatusCode::BAD_REQUEST, "PackedPolicyTooLarge", "the session policy is too large"));
        }
        Policy::parse(text).map_err(|e| error(StatusCode::BAD_REQUEST, "MalformedPolicyDocument", e.to_string()))?;
    }
    let key = authorizer.session_key().ok_or_else(|| {
        error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "the STS signing key is not loaded yet")
    })?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = SessionClaims {
        access_key: String::new(),
        parent: signer.name.clone(),
        parent_is_root: signer.root,
        expires_unix_s: now.saturating_add(duration as i64),
        policy,
    };
    let credentials = key.issue(claims);
    let session_name = field("RoleSessionName").unwrap_or_else(|| "coffer".into());
    let arn =
        format!("arn:aws:sts::{}:assumed-role/{}/{}", coffer_iam::authorize::ACCOUNT_ID, signer.name, session_name);
    Ok(format!(
        "<AssumeRoleResponse xmlns=\"{STS_NS}\"><AssumeRoleResult><Credentials>\
         <AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken>\
         <Expiration>{}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>{}:{}</AssumedRoleId>\
         <Arn>{}</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>",
        credentials.access_key,
        escape(&credentials.secret_key),
        escape(&credentials.token),
        iso8601(credentials.expires_unix_s),
        escape(&credentials.access_key),
        escape(&session_name),
        escape(&arn)
    ))
}
