//! Admin API errors: an HTTP status and an IAM-style code, rendered as `{"Code", "Message"}`.

use coffer_proto::{ErrorCode, RemoteError};
use hyper::StatusCode;

#[derive(Debug)]
pub struct AdminError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AdminError {
    pub fn invalid(message: String) -> AdminError {
        AdminError { status: StatusCode::BAD_REQUEST, code: "InvalidArgument", message }
    }

    pub fn malformed_policy(message: String) -> AdminError {
        AdminError { status: StatusCode::BAD_REQUEST, code: "MalformedPolicyDocument", message }
    }

    pub fn not_found(message: String) -> AdminError {
        AdminError { status: StatusCode::NOT_FOUND, code: "NoSuchEntity", message }
    }

    pub fn access_denied(what: &str) -> AdminError {
        AdminError { status: StatusCode::FORBIDDEN, code: "AccessDenied", message: format!("access denied: {what}") }
    }

    pub fn method() -> AdminError {
        AdminError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "MethodNotAllowed",
            message: "method not allowed here".into(),
        }
    }

    pub fn internal(message: String) -> AdminError {
        tracing::error!(%message, "admin request failed");
        AdminError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "InternalError", message }
    }

    pub fn into_response(self) -> (StatusCode, serde_json::Value) {
        (self.status, serde_json::json!({ "Code": self.code, "Message": self.message }))
    }
}

impl From<RemoteError> for AdminError {
    fn from(e: RemoteError) -> AdminError {
        let (status, code) = match e.code {
            ErrorCode::NoSuchEntity => (StatusCode::NOT_FOUND, "NoSuchEntity"),
            ErrorCode::EntityAlreadyExists => (StatusCode::CONFLICT, "EntityAlreadyExists"),
            ErrorCode::DeleteConflict => (StatusCode::CONFLICT, "DeleteConflict"),
            ErrorCode::InvalidArgument => (StatusCode::BAD_REQUEST, "InvalidArgument"),
            ErrorCode::Unavailable | ErrorCode::InsufficientCapacity => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
            }
            _ => return AdminError::internal(e.to_string()),
        };
        AdminError { status, code, message: e.message }
    }
}

impl From<tonic::Status> for AdminError {
    fn from(status: tonic::Status) -> AdminError {
        RemoteError::from(status).into()
    }
}
