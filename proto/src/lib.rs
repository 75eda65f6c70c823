//! Coffer's wire contract and the client plumbing every service uses to reach the others.
//!
//! Only this crate knows protobuf: the generated messages and services are re-exported from
//! [`pb`], and the typed error codes that cross the wire live in [`error`].

pub mod blobnode_client;
pub mod error;
pub mod group_router;
pub mod grpc_tls;
pub mod in_flight_limit;
pub mod in_process;
pub mod leader_router;
pub mod limits;
pub mod metadata_client;
pub mod range_table;
mod replica_load;
pub mod rpc_metrics;
pub mod stale_reads;
pub mod trace_context;

/// Generated protobuf messages, clients and servers.
pub mod pb {
    pub mod metadata {
        tonic::include_proto!("coffer.metadata.v1");
    }
    pub mod blobnode {
        tonic::include_proto!("coffer.blobnode.v1");
    }
}

pub use error::{ErrorCode, RemoteError};
/// Encoding and decoding of the records above, for the services that store them.
pub use prost::Message;
pub use tonic;
