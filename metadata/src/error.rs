//! The one error type of the metadata service; mapped to a typed [`RemoteError`] at the gRPC edge.

use coffer_proto::{ErrorCode, RemoteError};

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    #[error("bucket {0} already exists")]
    BucketAlreadyOwnedByYou(String),
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    #[error("no object {key} in bucket {bucket}")]
    NoSuchKey { bucket: String, key: String },
    #[error("no upload {0}")]
    NoSuchUpload(String),
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("invalid part order: {0}")]
    InvalidPartOrder(String),
    #[error("entity too small: {0}")]
    EntityTooSmall(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("no such {0}")]
    NoSuchEntity(String),
    #[error("{0} already exists")]
    EntityAlreadyExists(String),
    #[error("{0}")]
    DeleteConflict(String),
    /// A conditional write whose If-Match / If-None-Match does not hold.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// Object lock: a protected version (retention or legal hold), whoever asks.
    #[error("{0}")]
    AccessDenied(String),
    /// Object lock: the bucket's state does not allow the change.
    #[error("{0}")]
    InvalidBucketState(String),
    /// A range group asked about a (bucket, key) outside its range (or about state that group 0
    /// keeps): never applied, never answered from this group. `epoch` is the group's range epoch.
    #[error("wrong metadata range (group range epoch {epoch}): {detail}")]
    WrongRange { epoch: u64, detail: String },
    #[error("insufficient capacity: {0}")]
    InsufficientCapacity(String),
    #[error("database error while {context}: {source}")]
    Db {
        context: &'static str,
        #[source]
        source: rocksdb::Error,
    },
    /// A stored record that does not decode: never served, never silently skipped.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// The write path is stopped (shutdown, or a failed WAL sync made it unsafe to go on).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// This replica does not lead its Raft group; `leader` is the leader's URL when known.
    #[error("not the metadata leader (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader { leader: Option<String> },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl MetadataError {
    pub(crate) fn db(context: &'static str) -> impl FnOnce(rocksdb::Error) -> MetadataError {
        move |source| MetadataError::Db { context, source }
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: impl ToString) -> MetadataError {
        MetadataError::Corrupt { what: what.into(), detail: detail.to_string() }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            MetadataError::NoSuchBucket(_) => ErrorCode::NoSuchBucket,
            MetadataError::BucketAlreadyOwnedByYou(_) => ErrorCode::BucketAlreadyOwnedByYou,
            MetadataError::BucketNotEmpty(_) => ErrorCode::BucketNotEmpty,
            MetadataError::NoSuchKey { .. } => ErrorCode::NoSuchKey,
            MetadataError::NoSuchUpload(_) => ErrorCode::NoSuchUpload,
            MetadataError::InvalidPart(_) => ErrorCode::InvalidPart,
            MetadataError::InvalidPartOrder(_) => ErrorCode::InvalidPartOrder,
            MetadataError::EntityTooSmall(_) => ErrorCode::EntityTooSmall,
            MetadataError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            MetadataError::InsufficientCapacity(_) => ErrorCode::InsufficientCapacity,
            MetadataError::NoSuchEntity(_) => ErrorCode::NoSuchEntity,
            MetadataError::EntityAlreadyExists(_) => ErrorCode::EntityAlreadyExists,
            MetadataError::DeleteConflict(_) => ErrorCode::DeleteConflict,
            MetadataError::PreconditionFailed(_) => ErrorCode::PreconditionFailed,
            MetadataError::AccessDenied(_) => ErrorCode::AccessDenied,
            MetadataError::InvalidBucketState(_) => ErrorCode::InvalidBucketState,
            MetadataError::WrongRange { .. } => ErrorCode::WrongRange,
            MetadataError::Unavailable(_) | MetadataError::NotLeader { .. } => ErrorCode::Unavailable,
            MetadataError::Db { .. }
            | MetadataError::Corrupt { .. }
            | MetadataError::Bind { .. }
            | MetadataError::Transport(_)
            | MetadataError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<MetadataError> for RemoteError {
    fn from(e: MetadataError) -> Self {
        RemoteError::new(e.code(), e.to_string())
    }
}

impl From<MetadataError> for tonic::Status {
    fn from(e: MetadataError) -> Self {
        if e.code() == ErrorCode::Internal {
            tracing::error!(error = %e, "metadata request failed");
        }
        let hint = match &e {
            MetadataError::NotLeader { leader } => Some(leader.clone().unwrap_or_default()),
            _ => None,
        };
        let mut status = RemoteError::from(e).into_status();
        // Clients follow this to the leader (see coffer_proto::metadata_client).
        if let Some(value) = hint.and_then(|h| h.parse().ok()) {
            status.metadata_mut().insert(coffer_proto::metadata_client::NOT_LEADER_HEADER, value);
        }
        status
    }
}
