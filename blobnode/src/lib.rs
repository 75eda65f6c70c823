//! Coffer's blobnode: stores erasure-coded shards on local disks and serves them over gRPC (blobnode.proto).
//!
//! Each disk is a storage engine: shard records appended to large chunk files with direct I/O, a RocksDB index of
//! where each shard lives, and a committer (writer and syncer threads) that group-commits concurrent puts under a
//! single fdatasync.
//! Every 64 KiB block carries a CRC32C checked on every read, so a corrupt block is an error and never wrong bytes;
//! a scrubber re-reads everything at a bounded rate and reports damage to the metadata service. The node announces
//! itself and its disks (with their state: ok, read-only, faulty, missing) and heartbeats; it never calls the
//! metadata service on the read or write path.
//!
//! Code map: `config` (flags), `error`, `aligned` (direct-I/O buffers and their pool), `slab` (huge-page memory
//! for large buffers), `record`, `pack` and `chunk` (the on-disk formats), `index` (shard id → location), `engine`
//! (one disk: reads, state, the job queue), `committer` (group commit, deletes, chunk roll-over), `doorbell` (how
//! the writer sleeps while puts queue up), `staging` (contiguous memory for the device), `recovery` (index vs
//! chunks at start), `scrub`, `compact`, `pace` (their rate limit), `fsutil` (durability primitives), `disk`
//! (identity, layout, capacity), `budget` (memory bound), `store` (the node's disks), `service` (gRPC),
//! `heartbeat`.

mod aligned;
mod budget;
mod chunk;
mod committer;
mod compact;
mod config;
mod disk;
mod doorbell;
mod engine;
mod error;
mod fsutil;
mod heartbeat;
mod index;
mod key;
mod pace;
mod pack;
mod record;
mod recovery;
mod scrub;
mod service;
mod slab;
mod staging;
mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use coffer_proto::limits::MAX_MESSAGE_BYTES;
use coffer_proto::metadata_client::MetadataClient;
use coffer_proto::pb::blobnode::blobnode_server::BlobnodeServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use aligned::{ALIGN, AlignedBuf, BufferPool};
pub use config::{BlobnodeConfig, DEFAULT_IO_MEMORY_BYTES};
pub use disk::Disk;
pub use engine::{DiskState, Engine, EngineConfig, EngineCounters};
pub use error::BlobnodeError;
pub use key::MAX_DATA_ID_BYTES;
pub use key::ShardKey;
pub use record::{BLOCK_BYTES, MAX_SHARD_BYTES, ShardImage, crc32c as shard_crc32c};
pub use staging::StagingBuffer;

use crate::compact::CompactConfig;
use crate::scrub::ScrubConfig;
use crate::service::BlobnodeService;
use crate::store::Store;

const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `config.listen` and serves until `shutdown` completes.
pub async fn run(
    config: BlobnodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BlobnodeError> {
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| BlobnodeError::Bind { addr: config.listen, source })?;
    serve(listener, config, shutdown).await
}

/// Serves on an already-bound listener (so an embedding caller knows the port); `config.listen` is ignored.
/// Opens the disks first: a disk that cannot be opened fails the call before anything is served.
pub async fn serve(
    listener: TcpListener,
    config: BlobnodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BlobnodeError> {
    let local = listener.local_addr().map_err(|source| BlobnodeError::Bind { addr: config.listen, source })?;
    let store = Arc::new(Store::open(config.disks.clone(), config.engine(), config.io_memory_bytes).await?);
    let address = advertised_address(&config, local)?;
    let tls =
        coffer_proto::grpc_tls::GrpcTls::load(&config.grpc_tls).map_err(|e| BlobnodeError::Config(e.to_string()))?;
    let metadata = MetadataClient::connect(&config.metadata, &heartbeat::client_config(tls.clone()))
        .map_err(BlobnodeError::Metadata)?;
    let mut background = vec![AbortOnDrop(tokio::spawn(heartbeat::announce(
        metadata.clone(),
        Arc::clone(&store),
        address.clone(),
        config.heartbeat_interval,
    )))];
    let scrub = ScrubConfig { bytes_per_s: config.scrub_bytes_per_s, interval: config.scrub_interval };
    let compact = CompactConfig { threshold: config.compact_threshold, bytes_per_s: config.compact_bytes_per_s };
    for engine in store.engines() {
        let node_id = store.node_id().to_string();
        background.push(AbortOnDrop(tokio::spawn(scrub::run(Arc::clone(engine), node_id, metadata.clone(), scrub))));
        background.push(AbortOnDrop(tokio::spawn(compact::run(Arc::clone(engine), compact))));
    }
    tracing::info!(%local, %address, node_id = %store.node_id(), disks = store.engines().len(), "blobnode serving");

    let service = BlobnodeServer::new(BlobnodeService::new(store))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    // The accept stream every Coffer gRPC server uses: TCP_NODELAY set on each socket, since the builder's own
    // flag does not apply to a listener we hand it.
    let incoming = coffer_proto::in_process::incoming(listener, None);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        builder = builder.tls_config(tls.server()).map_err(|e| BlobnodeError::Config(format!("gRPC TLS: {e}")))?;
    }
    builder
        // A peer that vanished mid-put must not hold its shard buffer (and budget) forever.
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(coffer_proto::rpc_metrics::RpcMetricsLayer::server())
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(BlobnodeError::Serve)?;
    tracing::info!(%local, "blobnode stopped");
    Ok(())
}

fn advertised_address(config: &BlobnodeConfig, local: std::net::SocketAddr) -> Result<String, BlobnodeError> {
    match &config.advertise {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => Ok(url.clone()),
        Some(url) => Err(BlobnodeError::Config(format!("--advertise {url:?} must be an http:// or https:// URL"))),
        None => {
            if local.ip().is_unspecified() {
                tracing::warn!(%local, "listening on a wildcard address without --advertise; peers cannot reach it");
            }
            Ok(format!("http://{local}"))
        }
    }
}

/// Stops a background task (heartbeat, scrubber, compactor) with the server, however `serve` ends (returned, failed, or dropped).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::blobnode::blobnode_client::BlobnodeClient;
    use coffer_proto::pb::blobnode::put_shard_request::Msg;
    use coffer_proto::pb::blobnode::{GetShardRequest, PutShardHeader, PutShardRequest, ShardId};
    use coffer_proto::{ErrorCode, RemoteError};

    use super::*;

    fn put_request(disk_id: &str, data: &'static [u8]) -> Vec<PutShardRequest> {
        let id = Some(ShardId { data_id: vec![1, 2, 3], stripe: 0, index: 0 });
        let header =
            PutShardHeader { disk_id: disk_id.into(), id, length: data.len() as u64, crc32c: record::crc32c(data) };
        vec![
            PutShardRequest { msg: Some(Msg::Header(header)) },
            PutShardRequest { msg: Some(Msg::Chunk(bytes::Bytes::from_static(data))) },
        ]
    }

    #[tokio::test]
    async fn serves_while_metadata_is_down_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = BlobnodeConfig::new(vec![dir.path().into()]);
        // Nothing listens on port 1: the announcer keeps retrying while shards are served.
        config.metadata = vec!["http://127.0.0.1:1".into()];
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, config, async {
            let _ = stopped.await;
        }));

        let mut client = BlobnodeClient::connect(format!("http://{addr}")).await.expect("connect");
        let refused = client.put_shard(tokio_stream::iter(put_request("nope", b"x"))).await.expect_err("no disk");
        assert_eq!(RemoteError::from(refused).code, ErrorCode::NoSuchDisk);
        // The disks were opened before the server answered, so the identity file exists now.
        let disk_id = std::fs::read_to_string(dir.path().join("coffer-disk.id")).expect("disk id");
        let disk_id = disk_id.trim();
        client.put_shard(tokio_stream::iter(put_request(disk_id, b"hello shard"))).await.expect("put");
        let id = Some(ShardId { data_id: vec![1, 2, 3], stripe: 0, index: 0 });
        let request = GetShardRequest { disk_id: disk_id.into(), id, offset: 6, length: 0 };
        let mut stream = client.get_shard(request).await.expect("get").into_inner();
        let chunk = stream.message().await.expect("chunk").expect("one chunk");
        assert_eq!(&chunk.data[..], b"shard");
        assert!(stream.message().await.expect("end").is_none());
        drop(client);

        stop.send(()).expect("signal");
        let result = tokio::time::timeout(Duration::from_secs(10), server).await.expect("stops in time");
        result.expect("task").expect("clean exit");
    }

    #[tokio::test]
    async fn unusable_disk_or_advertise_fails_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"not a directory").expect("file");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let result = serve(listener, BlobnodeConfig::new(vec![file]), std::future::pending()).await;
        assert!(result.is_err());

        let mut config = BlobnodeConfig::new(vec![dir.path().join("disk")]);
        config.advertise = Some("127.0.0.1:9200".into());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let result = serve(listener, config, std::future::pending()).await;
        assert!(matches!(result, Err(BlobnodeError::Config(_))), "{result:?}");
    }
}
