//! Coffer's repair worker (`coffer repair`, also inside `coffer server`): rebuilds columns of
//! shards — unwritten by a write that met only its quorum, reported damaged by a scrubber, or
//! stranded on a disk that is lost or a node being drained — from the rest of their stripes, and
//! has the metadata service switch each rebuilt column over atomically. Several workers may run:
//! the metadata service leases each column to one of them. The worker keeps no state of its own.

pub mod config;
mod error;
mod pace;
mod rebuild;
mod worker;

use std::future::Future;

use coffer_proto::blobnode_client::BlobnodePool;
use coffer_proto::metadata_client::{ClientConfig, MetadataClient};

pub use config::RepairConfig;
pub use error::RepairError;
pub use worker::Worker;

fn client_config(config: &RepairConfig) -> Result<ClientConfig, RepairError> {
    let tls = coffer_proto::grpc_tls::GrpcTls::load(&config.grpc_tls)?;
    Ok(ClientConfig { timeout: config.rpc_timeout, tls, ..ClientConfig::default() })
}

/// Connects to the metadata service and repairs until `shutdown` completes.
pub async fn run(config: RepairConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), RepairError> {
    config.validate().map_err(RepairError::BadTask)?;
    let client = client_config(&config)?;
    let metadata = MetadataClient::connect(&config.metadata, &client)?;
    serve_with(metadata, config, shutdown).await;
    Ok(())
}

/// Repairs through an existing metadata client (`coffer server` passes its in-process one).
pub async fn serve_with(metadata: MetadataClient, config: RepairConfig, shutdown: impl Future<Output = ()> + Send) {
    let client = match client_config(&config) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "repair worker not started");
            return;
        }
    };
    let worker = Worker::new(metadata, BlobnodePool::new(client), config);
    tokio::select! {
        _ = worker.run() => {}
        _ = shutdown => tracing::info!("repair worker stopped"),
    }
}
