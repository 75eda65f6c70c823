//! The gateway's one error type, and its single mapping to S3 error codes.

use coffer_proto::{ErrorCode, RemoteError};
use s3s::{S3Error, S3ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("stripe {stripe}: only {available} of the {needed} shards needed could be read")]
    NotEnoughShards { stripe: u64, available: usize, needed: usize },
    #[error("stripe {stripe}: only {landed} shards could be stored, {needed} are needed")]
    WriteQuorum { stripe: u32, landed: usize, needed: usize },
    #[error("erasure coding failed: {0}")]
    Codec(String),
    #[error("the Content-MD5 you specified did not match what we received")]
    BadDigest,
    #[error("the Content-MD5 you specified is not valid")]
    InvalidDigest,
    #[error("you did not provide the number of bytes specified by the Content-Length HTTP header")]
    IncompleteBody,
    #[error("your proposed upload exceeds the maximum allowed size")]
    EntityTooLarge,
    #[error("reading the request body failed: {0}")]
    Body(String),
    #[error("{0}")]
    Internal(String),
}

impl From<GatewayError> for S3Error {
    fn from(e: GatewayError) -> S3Error {
        let code = match &e {
            GatewayError::Remote(remote) => remote_code(remote.code),
            GatewayError::NotEnoughShards { .. } | GatewayError::WriteQuorum { .. } => S3ErrorCode::ServiceUnavailable,
            GatewayError::Codec(_) | GatewayError::Internal(_) => S3ErrorCode::InternalError,
            GatewayError::BadDigest => S3ErrorCode::BadDigest,
            GatewayError::InvalidDigest => S3ErrorCode::InvalidDigest,
            GatewayError::IncompleteBody => S3ErrorCode::IncompleteBody,
            GatewayError::EntityTooLarge => S3ErrorCode::EntityTooLarge,
            GatewayError::Body(_) => S3ErrorCode::IncompleteBody,
        };
        if code == S3ErrorCode::InternalError || code == S3ErrorCode::ServiceUnavailable {
            tracing::error!(error = %e, "request failed");
        }
        S3Error::with_message(code, e.to_string())
    }
}

fn remote_code(code: ErrorCode) -> S3ErrorCode {
    match code {
        ErrorCode::NoSuchBucket => S3ErrorCode::NoSuchBucket,
        ErrorCode::BucketAlreadyOwnedByYou => S3ErrorCode::BucketAlreadyOwnedByYou,
        ErrorCode::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
        ErrorCode::NoSuchKey => S3ErrorCode::NoSuchKey,
        ErrorCode::NoSuchUpload => S3ErrorCode::NoSuchUpload,
        ErrorCode::InvalidPart => S3ErrorCode::InvalidPart,
        ErrorCode::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        ErrorCode::EntityTooSmall => S3ErrorCode::EntityTooSmall,
        ErrorCode::InvalidArgument => S3ErrorCode::InvalidArgument,
        ErrorCode::PreconditionFailed => S3ErrorCode::PreconditionFailed,
        ErrorCode::AccessDenied => S3ErrorCode::AccessDenied,
        ErrorCode::InvalidBucketState => S3ErrorCode::InvalidBucketState,
        // WrongRange: the gateway does not route to range groups yet; when it does, it refreshes
        // its range table and retries, and one that still fails is a retryable 503.
        ErrorCode::InsufficientCapacity | ErrorCode::Unavailable | ErrorCode::WrongRange => {
            S3ErrorCode::ServiceUnavailable
        }
        // IAM's own codes, as the admin API and AWS IAM name them.
        ErrorCode::NoSuchEntity | ErrorCode::EntityAlreadyExists | ErrorCode::DeleteConflict => {
            S3ErrorCode::Custom(code.as_str().into())
        }
        ErrorCode::NoSuchShard
        | ErrorCode::CorruptShard
        | ErrorCode::ChecksumMismatch
        | ErrorCode::NoSuchDisk
        | ErrorCode::Internal => S3ErrorCode::InternalError,
    }
}

pub type GatewayResult<T> = Result<T, GatewayError>;
