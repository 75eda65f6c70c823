//! The blobnode's one error type. Callers inside the crate tell cases apart by variant; the gRPC edge maps
//! each variant to a typed wire code once, in [`BlobnodeError::code`].

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use coffer_proto::{ErrorCode, RemoteError};

#[derive(Debug, thiserror::Error)]
pub enum BlobnodeError {
    /// The request itself is malformed: bad lengths, ranges, ids or message order.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The bytes received do not match the CRC32C the sender computed over them.
    #[error("checksum mismatch: sender said crc32c {expected:#010x}, received bytes have {actual:#010x}")]
    ChecksumMismatch { expected: u32, actual: u32 },

    #[error("no disk with id {0:?} on this node")]
    NoSuchDisk(String),

    #[error("no such shard: {0}")]
    NoSuchShard(String),

    /// The disk takes no new data (full, faulty or missing); other disks must be chosen.
    #[error("disk {disk_id} is {state}")]
    DiskUnavailable { disk_id: String, state: &'static str },

    /// Stored bytes failed verification; they are never served.
    #[error("corrupt shard {path}: {detail}")]
    CorruptShard { path: PathBuf, detail: String },

    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Startup refused: a flag or an on-disk identity file is unusable.
    #[error("configuration: {0}")]
    Config(String),

    /// The client's request stream failed (cancelled, undecodable, too large).
    #[error("request stream: {}", .0.message())]
    RequestStream(tonic::Status),

    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },

    #[error("metadata client: {0}")]
    Metadata(#[source] RemoteError),

    #[error("gRPC server: {0}")]
    Serve(#[source] tonic::transport::Error),

    /// A bug or a runtime failure (a panicked blocking task, a closed semaphore), not a disk or client fault.
    #[error("internal: {0}")]
    Internal(String),
}

impl BlobnodeError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        BlobnodeError::Io { what, path: path.into(), source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        BlobnodeError::CorruptShard { path: path.into(), detail: detail.into() }
    }

    /// The same error for another waiter of a failed group commit (io::Error is not Clone).
    pub(crate) fn clone_for_reply(&self) -> Self {
        match self {
            BlobnodeError::Io { what, path, source } => BlobnodeError::Io {
                what,
                path: path.clone(),
                source: match source.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(source.kind(), source.to_string()),
                },
            },
            BlobnodeError::DiskUnavailable { disk_id, state } => {
                BlobnodeError::DiskUnavailable { disk_id: disk_id.clone(), state }
            }
            BlobnodeError::CorruptShard { path, detail } => {
                BlobnodeError::CorruptShard { path: path.clone(), detail: detail.clone() }
            }
            BlobnodeError::InvalidArgument(m) => BlobnodeError::InvalidArgument(m.clone()),
            other => BlobnodeError::Internal(other.to_string()),
        }
    }

    /// The code a remote caller sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            BlobnodeError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            BlobnodeError::ChecksumMismatch { .. } => ErrorCode::ChecksumMismatch,
            BlobnodeError::NoSuchDisk(_) => ErrorCode::NoSuchDisk,
            BlobnodeError::NoSuchShard(_) => ErrorCode::NoSuchShard,
            BlobnodeError::CorruptShard { .. } => ErrorCode::CorruptShard,
            BlobnodeError::DiskUnavailable { state, .. } if *state == "read-only" => ErrorCode::InsufficientCapacity,
            BlobnodeError::DiskUnavailable { .. } => ErrorCode::Unavailable,
            // A full disk is a capacity problem the caller can route around, unlike other I/O failures.
            BlobnodeError::RequestStream(status) => RemoteError::from(status.clone()).code,
            BlobnodeError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                ErrorCode::InsufficientCapacity
            }
            BlobnodeError::Io { .. }
            | BlobnodeError::Config(_)
            | BlobnodeError::Bind { .. }
            | BlobnodeError::Metadata(_)
            | BlobnodeError::Serve(_)
            | BlobnodeError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn into_remote(self) -> RemoteError {
        RemoteError::new(self.code(), self.to_string())
    }
}

impl From<BlobnodeError> for tonic::Status {
    fn from(e: BlobnodeError) -> Self {
        e.into_remote().into_status()
    }
}

impl From<tokio::task::JoinError> for BlobnodeError {
    fn from(e: tokio::task::JoinError) -> Self {
        BlobnodeError::Internal(format!("blocking I/O task failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes() {
        let corrupt = BlobnodeError::corrupt("/d/x", "block 3 crc");
        assert_eq!(tonic::Status::from(corrupt).code(), tonic::Code::DataLoss);
        let full = BlobnodeError::io("write", "/d", io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(full.code(), ErrorCode::InsufficientCapacity);
        let mismatch = BlobnodeError::ChecksumMismatch { expected: 1, actual: 2 };
        assert_eq!(RemoteError::from(tonic::Status::from(mismatch)).code, ErrorCode::ChecksumMismatch);
    }
}
