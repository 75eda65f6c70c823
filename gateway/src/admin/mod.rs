//! The admin API: JSON under `/coffer/admin/v1/` on the S3 port, signed with SigV4 like any S3
//! request and authorised by `admin:*` actions in the caller's policies.
//!
//! Routes (paths below the prefix):
//! - `users` GET (list), POST `{"name", "policies"?}` (creates the user and its first key)
//! - `users/NAME` GET, DELETE; `users/NAME/enable|disable` POST
//! - `users/NAME/keys` GET, POST (another key); `users/NAME/service-accounts` POST `{"policy"?, "description"?}`
//! - `keys/ACCESS_KEY` DELETE; `keys/ACCESS_KEY/enable|disable` POST
//! - `policies` GET, POST `{"name", "document"}`; `policies/NAME` GET, DELETE;
//!   `policies/NAME/attach|detach` POST `{"user"}` or `{"group"}`
//! - `groups` GET, POST `{"name", "members"?}`; `groups/NAME` GET, DELETE;
//!   `groups/NAME/members` POST `{"add"?, "remove"?}`; `groups/NAME/enable|disable` POST
//! - `info` GET: nodes, disks, capacity and repair status
//! - `buckets/BUCKET/compression` GET, PUT `{"enabled", "content_types"?}`, DELETE: transparent
//!   compression of the bucket's new objects
//!
//! Errors are `{"Code", "Message"}` with IAM's codes (NoSuchEntity, EntityAlreadyExists,
//! DeleteConflict, MalformedPolicyDocument, InvalidArgument, AccessDenied).

mod compression;
mod error;
mod groups;
mod info;
pub mod minio;
mod policies;
mod users;

use bytes::Bytes;
use hyper::{HeaderMap, Method, StatusCode};
use s3s::{Body, S3Request, S3Response, S3Result};
use serde::Serialize;

pub use error::AdminError;

use coffer_iam::authorize::Signer;

use crate::authz::Authorizer;
use crate::dataplane::DataPlane;
use crate::iam_sync::IamSync;

pub const PREFIX: &str = "/coffer/admin/v1/";
/// Admin request bodies are small JSON documents (a policy is at most 20 KiB).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything an admin handler may use.
pub struct Admin {
    pub iam: IamSync,
    pub authorizer: Authorizer,
    pub plane: DataPlane,
}

/// One admin request, already authenticated.
pub struct Call<'a> {
    pub method: &'a Method,
    /// Path segments after the prefix, percent-decoded.
    pub segments: Vec<String>,
    pub body: Bytes,
    pub caller: Signer,
    /// Query parameters, decoded (the MinIO-compatible routes take their arguments there).
    pub query: Vec<(String, String)>,
}

impl Call<'_> {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, AdminError> {
        if self.body.is_empty() {
            return serde_json::from_slice(b"{}").map_err(|e| AdminError::invalid(format!("request body: {e}")));
        }
        serde_json::from_slice(&self.body).map_err(|e| AdminError::invalid(format!("request body: {e}")))
    }
}

pub type AdminResult = Result<(StatusCode, serde_json::Value), AdminError>;

pub fn ok<T: Serialize>(value: T) -> AdminResult {
    serde_json::to_value(value)
        .map(|v| (StatusCode::OK, v))
        .map_err(|e| AdminError::internal(format!("cannot encode the response: {e}")))
}

fn segments(path: &str) -> Vec<String> {
    path.strip_prefix(PREFIX)
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

impl Admin {
    async fn dispatch(&self, call: &Call<'_>) -> AdminResult {
        let first = call.segments.first().map(String::as_str).unwrap_or_default();
        match first {
            "users" | "keys" => users::handle(self, call).await,
            "policies" => policies::handle(self, call).await,
            "groups" => groups::handle(self, call).await,
            "info" => info::handle(self, call).await,
            "buckets" => compression::handle(self, call).await,
            _ => Err(AdminError::not_found(format!("no admin endpoint {first:?}"))),
        }
    }

    /// Refuses the call unless the caller's policies allow `action`.
    pub fn require(&self, call: &Call<'_>, action: &str) -> Result<(), AdminError> {
        if self.authorizer.allows_admin(&call.caller, action) { Ok(()) } else { Err(AdminError::access_denied(action)) }
    }

    /// Makes this gateway see a change it just wrote at once (others within `--iam-refresh`).
    pub async fn refresh(&self) {
        if let Err(e) = self.iam.reload(false).await {
            tracing::warn!(error = %e, "cannot reload IAM state after a change");
        }
    }
}

fn respond(result: AdminResult) -> S3Response<Body> {
    let (status, value) = match result {
        Ok(ok) => ok,
        Err(e) => e.into_response(),
    };
    let text = serde_json::to_vec(&value).unwrap_or_default();
    let mut response = S3Response::with_status(Body::from(Bytes::from(text)), status);
    if let Ok(value) = "application/json".parse() {
        response.headers.insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Verifies the declared payload hash, since s3s leaves custom routes' bodies unchecked.
fn check_payload(headers: &HeaderMap, body: &[u8]) -> Result<(), AdminError> {
    use sha2::{Digest, Sha256};
    let Some(declared) = headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    if declared == "UNSIGNED-PAYLOAD" || declared.starts_with("STREAMING-") {
        return Ok(());
    }
    if hex::encode(Sha256::digest(body)) != declared.to_ascii_lowercase() {
        return Err(AdminError::invalid("the body does not match x-amz-content-sha256".into()));
    }
    Ok(())
}

impl Admin {
    pub async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let caller = match self.authorizer.signer_of(&req) {
            Ok(signer) => signer,
            Err(_) => return Ok(respond(Err(AdminError::access_denied("a signed request by a valid identity")))),
        };
        let body = match req.input.store_all_limited(MAX_BODY_BYTES).await {
            Ok(body) => body,
            Err(e) => return Ok(respond(Err(AdminError::invalid(format!("request body: {e}"))))),
        };
        if let Err(e) = check_payload(&req.headers, &body) {
            return Ok(respond(Err(e)));
        }
        let path = req.uri.path();
        let query = req.uri.query().map(|q| crate::authz::url_pairs(q).collect()).unwrap_or_default();
        let minio = minio::PREFIXES.iter().find_map(|prefix| path.strip_prefix(prefix));
        let segments = match minio {
            Some(rest) => rest.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            None => segments(path),
        };
        let call = Call { method: &req.method, segments, body, caller, query };
        let span = tracing::info_span!("admin", path = %req.uri.path(), method = %req.method);
        let result = if minio.is_some() {
            tracing::Instrument::instrument(minio::handle(self, &call), span).await
        } else {
            tracing::Instrument::instrument(self.dispatch(&call), span).await
        };
        Ok(respond(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_split_and_decoded() {
        assert_eq!(segments("/coffer/admin/v1/users/a%40b/keys/"), vec!["users", "a@b", "keys"]);
        assert!(segments("/coffer/admin/v1/").is_empty());
    }
}
