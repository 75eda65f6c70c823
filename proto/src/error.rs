//! Typed error codes carried across gRPC in the `x-coffer-error` status metadata entry, so the
//! gateway can map a remote failure to the right S3 error without parsing messages.

use std::fmt;

const ERROR_CODE_HEADER: &str = "x-coffer-error";

macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// What went wrong on the far side of a gRPC call.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($(#[$doc])* $name),* }

        impl ErrorCode {
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$name => stringify!($name)),* }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $(stringify!($name) => Some(ErrorCode::$name),)* _ => None }
            }
        }
    };
}

error_codes! {
    NoSuchBucket,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    NoSuchKey,
    NoSuchUpload,
    InvalidPart,
    InvalidPartOrder,
    EntityTooSmall,
    InvalidArgument,
    /// Not enough healthy disks to place k+m shards.
    InsufficientCapacity,
    NoSuchShard,
    /// A stored block failed its checksum; the bytes are not served.
    CorruptShard,
    /// Bytes that crossed the network do not match the checksum sent with them.
    ChecksumMismatch,
    NoSuchDisk,
    /// An IAM user, key, group or policy that does not exist.
    NoSuchEntity,
    EntityAlreadyExists,
    /// An IAM entity still referenced elsewhere (a policy attached to a user).
    DeleteConflict,
    /// A conditional write's precondition (If-Match / If-None-Match) does not hold.
    PreconditionFailed,
    /// Object lock: the version is protected (retention or legal hold), whoever asks.
    AccessDenied,
    /// Object lock: the bucket's state does not allow the change (S3's InvalidBucketState).
    InvalidBucketState,
    /// A metadata range group was asked about a (bucket, key) outside its range: the caller's
    /// range table is stale (refresh it and ask the owning group).
    WrongRange,
    Unavailable,
    Internal,
}

impl ErrorCode {
    fn grpc_code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            ErrorCode::NoSuchBucket | ErrorCode::NoSuchKey | ErrorCode::NoSuchUpload => Code::NotFound,
            ErrorCode::NoSuchShard | ErrorCode::NoSuchDisk | ErrorCode::NoSuchEntity => Code::NotFound,
            ErrorCode::BucketAlreadyOwnedByYou | ErrorCode::EntityAlreadyExists => Code::AlreadyExists,
            ErrorCode::BucketNotEmpty | ErrorCode::DeleteConflict | ErrorCode::PreconditionFailed => {
                Code::FailedPrecondition
            }
            ErrorCode::InvalidPart
            | ErrorCode::InvalidPartOrder
            | ErrorCode::EntityTooSmall
            | ErrorCode::InvalidArgument
            | ErrorCode::ChecksumMismatch => Code::InvalidArgument,
            ErrorCode::InsufficientCapacity => Code::ResourceExhausted,
            ErrorCode::CorruptShard => Code::DataLoss,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::Internal => Code::Internal,
            ErrorCode::AccessDenied => Code::PermissionDenied,
            ErrorCode::InvalidBucketState => Code::FailedPrecondition,
            ErrorCode::WrongRange => Code::OutOfRange,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed gRPC call, with the typed code when the far side sent one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RemoteError {
    pub code: ErrorCode,
    pub message: String,
}

impl RemoteError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RemoteError { code, message: message.into() }
    }

    pub fn into_status(self) -> tonic::Status {
        let mut status = tonic::Status::new(self.code.grpc_code(), self.message);
        if let Ok(value) = self.code.as_str().parse() {
            status.metadata_mut().insert(ERROR_CODE_HEADER, value);
        }
        status
    }
}

impl From<RemoteError> for tonic::Status {
    fn from(e: RemoteError) -> Self {
        e.into_status()
    }
}

impl From<tonic::Status> for RemoteError {
    fn from(status: tonic::Status) -> Self {
        let typed = status.metadata().get(ERROR_CODE_HEADER).and_then(|v| v.to_str().ok()).and_then(ErrorCode::parse);
        let code = typed.unwrap_or(match status.code() {
            // Transport failures, timeouts and shed load all mean "try elsewhere or later".
            tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::ResourceExhausted
            | tonic::Code::Unknown => ErrorCode::Unavailable,
            tonic::Code::DataLoss => ErrorCode::CorruptShard,
            tonic::Code::InvalidArgument => ErrorCode::InvalidArgument,
            _ => ErrorCode::Internal,
        });
        RemoteError { code, message: status.message().to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_survives_a_status_round_trip() {
        for code in [
            ErrorCode::NoSuchKey,
            ErrorCode::CorruptShard,
            ErrorCode::BucketNotEmpty,
            ErrorCode::PreconditionFailed,
            ErrorCode::WrongRange,
        ] {
            let back = RemoteError::from(RemoteError::new(code, "x").into_status());
            assert_eq!(back.code, code);
            assert_eq!(back.message, "x");
        }
    }

    #[test]
    fn untyped_transport_failure_is_unavailable() {
        let back = RemoteError::from(tonic::Status::unavailable("connection refused"));
        assert_eq!(back.code, ErrorCode::Unavailable);
    }
}
