//! Coffer's metadata service: buckets, objects, multipart uploads, data placement, the cluster map
//! and the garbage collector of unreferenced shards, on RocksDB.
//!
//! Writes are deterministic commands (see [`command`]): applied by one local applier thread with
//! group commit (see [`applier`]), or, in a replicated group, committed through Raft and applied
//! by every replica (see [`raft`]).

mod accounts;
mod applier;
mod bucket_state;
mod cluster;
mod cluster_feed;
mod command;
pub mod command_codec;
mod config;
mod data;
mod error;
mod expiry;
mod gc;
mod group_move;
mod groups;
mod iam;
mod keys;
mod leader_gate;
mod leader_tasks;
mod leases;
mod lifecycle;
mod listing;
mod move_driver;
mod multipart;
mod notify;
mod object_acl;
mod object_lock;
mod placement;
pub mod raft;
mod range;
mod range_fanout;
mod repair;
mod service;
mod split;
mod split_driver;
mod split_plan;
mod split_watch;
mod stats;
mod store;
mod usage;
mod versions;

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use coffer_proto::in_process::InProcessListener;
use coffer_proto::limits::MAX_MESSAGE_BYTES;
use coffer_proto::pb::metadata::metadata_server::MetadataServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use config::MetadataConfig;
pub use error::MetadataError;

use crate::applier::Applier;
use crate::cluster::Cluster;
use crate::service::{MetadataService, Timing};
use crate::store::Store;

/// How long a stopping service waits for calls in flight before it closes their connections.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// HTTP/2 ping interval (and answer timeout) on accepted connections.
const SERVER_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// Wall-clock milliseconds since the Unix epoch; the one clock commands are stamped with.
pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Binds `config.listen` and serves until `shutdown` completes.
pub async fn run(
    config: MetadataConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MetadataError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| MetadataError::Bind { address: config.listen.to_string(), source })?;
    serve(listener, config, shutdown).await
}

/// Serves the metadata gRPC API on `listener` until `shutdown` completes, then stops the garbage
/// collector and the applier (after the commands already queued).
pub async fn serve(
    listener: TcpListener,
    config: MetadataConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MetadataError> {
    serve_with(listener, None, config, shutdown).await
}

/// Like [`serve`], also answering clients in the same process over `pipes` (`coffer server`).
pub async fn serve_with(
    listener: TcpListener,
    pipes: Option<InProcessListener>,
    config: MetadataConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MetadataError> {
    // Checked before anything starts, so a bad flag leaves nothing running.
    let targets = notify::Targets::parse(&config.notify_webhooks)?;
    let path = config.db.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&path).map(Arc::new))
        .await
        .map_err(|e| MetadataError::Internal(format!("open task failed: {e}")))??;
    let (nodes, admin) = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            data::build_indexes(&store)?;
            usage::build(&store)?;
            Ok::<_, MetadataError>((store.nodes()?, store.node_admin()?))
        })
        .await
        .map_err(|e| MetadataError::Internal(format!("load task failed: {e}")))??
    };
    let cluster = Arc::new(Cluster::new(config.node_timeout, nodes, admin));
    let tls = coffer_proto::grpc_tls::GrpcTls::load(&config.grpc_tls)
        .map_err(|e| MetadataError::InvalidArgument(e.to_string()))?;
    let (applier, applier_thread, replication) = match config.membership() {
        None => {
            let (applier, thread) = Applier::start(store.clone())?;
            (applier, Some(thread), None)
        }
        Some(membership) => {
            let client = coffer_proto::metadata_client::ClientConfig { tls: tls.clone(), ..Default::default() };
            let options = raft::RaftOptions {
                membership,
                advertise: config.advertise_url(),
                snapshot_dir: config.snapshot_dir(),
                snapshot_entries: config.raft_snapshot_entries,
                client,
                group: 0,
                node_id: None,
            };
            let replication = raft::Replication::start(store.clone(), options).await?;
            (Applier::replicated(replication.clone()), None, Some(replication))
        }
    };

    let workers = leader_tasks::Workers {
        store: store.clone(),
        applier: applier.clone(),
        cluster: cluster.clone(),
        config: config.clone(),
        targets: targets.clone(),
        tls: tls.clone(),
        group: 0,
        feed: None,
        // A replicated group 0 asks for its own splits too (its leader's request reaches itself).
        zero: replication.clone(),
    };
    let (stop_leader_tasks, leader_tasks_stop) = oneshot::channel();
    let leader_tasks =
        tokio::spawn(leader_tasks::supervise(workers, replication.as_ref().map(|r| r.leadership()), leader_tasks_stop));

    // Range groups (replicated mode only): opened by a watcher of group 0's records, served by the
    // same gRPC server through the group dispatcher.
    let groups = replication.clone().map(|zero| {
        let settings = groups::Settings {
            config: config.clone(),
            client: coffer_proto::metadata_client::ClientConfig { tls: tls.clone(), ..Default::default() },
            targets: targets.clone(),
        };
        groups::Groups::new(settings, store.clone(), zero)
    });
    let (stop_watching, watching_stopped) = tokio::sync::watch::channel(false);
    let range_client = coffer_proto::metadata_client::ClientConfig { tls: tls.clone(), ..Default::default() };
    // Group 0's leader delivers bucket state to the range groups (see `bucket_state`).
    let delivery = replication.clone().map(|zero| {
        tokio::spawn(bucket_state::deliver(store.clone(), zero, range_client.clone(), watching_stopped.clone()))
    });
    // Group 0's leader carries out splits of range groups, and finishes those a lost leader left.
    let splits = replication
        .clone()
        .map(|zero| Arc::new(split_driver::SplitDriver::new(store.clone(), zero, range_client.clone())));
    let split_resumer = splits.clone().map(|splits| tokio::spawn(splits.resume(watching_stopped.clone())));
    // ... and moves of range groups' replicas.
    let moves = replication
        .clone()
        .map(|zero| Arc::new(move_driver::MoveDriver::new(store.clone(), zero, range_client.clone())));
    let move_resumer = moves.clone().map(|moves| tokio::spawn(moves.resume(watching_stopped.clone())));
    let group_watcher = groups.clone().map(|groups| tokio::spawn(groups.watch(watching_stopped)));

    let stats_task = tokio::spawn(stats::publish(store.clone()));
    let mut service = MetadataService::new(store, applier, cluster, Timing::from(&config)).with_notify_targets(targets);
    if replication.is_some() {
        service = service.with_range_client(range_client);
    }
    let server = MetadataServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tracing::info!(address = ?listener.local_addr().ok(), db = %config.db.display(), "metadata service listening");
    // Clients in this process (`coffer server`) call the service on their own task, through the same layers as a
    // connection: no HTTP/2 framing, pipe or hand-off between connection and stream tasks, which cost more CPU
    // than the lookup of a small GET (see `coffer_proto::in_process`).
    if let Some(pipes) = &pipes {
        pipes.serve_directly(
            tower::ServiceBuilder::new()
                .layer(coffer_proto::rpc_metrics::RpcMetricsLayer::server())
                .layer(groups::GroupDispatchLayer::new(groups.clone()))
                .layer(leader_gate::LeaderGateLayer::new(replication.clone()))
                .service(server.clone()),
        );
    }
    // TCP_NODELAY on every accepted socket: the builder's own flag does not apply to a listener we hand it, and
    // small responses waiting for Nagle meet the client's delayed ACK (~40 ms stalls).
    let incoming = coffer_proto::in_process::incoming(listener, pipes);
    // Keepalive pings close connections from peers the network cut off, which would otherwise hold
    // a graceful shutdown open forever.
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(SERVER_KEEPALIVE))
        .http2_keepalive_timeout(Some(SERVER_KEEPALIVE));
    if let Some(tls) = &tls {
        builder =
            builder.tls_config(tls.server()).map_err(|e| MetadataError::InvalidArgument(format!("gRPC TLS: {e}")))?;
    }
    let raft_service = replication.clone().map(|r| {
        let mut service = raft::RaftService::new(r).with_groups(groups.clone());
        if let Some(splits) = &splits {
            service = service.with_splits(splits.clone());
        }
        if let Some(moves) = &moves {
            service = service.with_moves(moves.clone());
        }
        coffer_proto::pb::metadata::metadata_raft_server::MetadataRaftServer::new(service)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    });
    let (shutting_down, shutdown_seen) = oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = shutting_down.send(());
    };
    let serving = builder
        .layer(coffer_proto::rpc_metrics::RpcMetricsLayer::server())
        .layer(groups::GroupDispatchLayer::new(groups.clone()))
        .layer(leader_gate::LeaderGateLayer::new(replication.clone()))
        .add_service(server)
        .add_optional_service(raft_service)
        .serve_with_incoming_shutdown(incoming, shutdown);
    // A graceful stop waits for open calls; past the grace the rest are cut.
    let grace_over = async {
        if shutdown_seen.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = serving => served,
        () = grace_over => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the shutdown grace; closing them");
            Ok(())
        }
    };

    stats_task.abort();
    let _ = stop_leader_tasks.send(());
    if let Err(e) = leader_tasks.await {
        tracing::error!(error = %e, "the leader task supervisor failed");
    }
    let _ = stop_watching.send(true);
    if let Some(watcher) = group_watcher {
        let _ = watcher.await;
    }
    if let Some(delivery) = delivery {
        let _ = delivery.await;
    }
    if let Some(resumer) = split_resumer {
        let _ = resumer.await;
    }
    // A move's step may wait minutes for a replica to catch up; every step is safe to cut.
    if let Some(resumer) = move_resumer {
        resumer.abort();
    }
    if let Some(groups) = &groups {
        groups.shutdown().await;
    }
    if let Some(replication) = replication {
        replication.shutdown().await;
    }
    if let Some(thread) = applier_thread {
        thread.stop().await;
    }
    tracing::info!("metadata service stopped");
    served.map_err(MetadataError::from)
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::metadata_client::MetadataClient;
    use coffer_proto::pb::metadata::*;
    use coffer_proto::{ErrorCode, RemoteError};
    use tonic::transport::Channel;

    use super::*;

    async fn start(
        db: &std::path::Path,
    ) -> (MetadataClient<Channel>, oneshot::Sender<()>, tokio::task::JoinHandle<Result<(), MetadataError>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, MetadataConfig::new(db), async {
            let _ = stopped.await;
        }));
        let client = MetadataClient::connect(address).await.unwrap();
        (client, stop, server)
    }

    fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> ErrorCode {
        RemoteError::from(result.expect_err("expected an error")).code
    }

    fn node(id: &str) -> NodeInfo {
        let disk = DiskInfo { disk_id: "d0".into(), capacity_bytes: 1 << 40, healthy: true, ..Default::default() };
        NodeInfo { node_id: id.into(), address: "http://127.0.0.1:1".into(), disks: vec![disk] }
    }

    #[tokio::test]
    async fn a_lone_service_is_group_0_and_refuses_other_groups() {
        let dir = tempfile::tempdir().unwrap();
        let (mut client, stop, server) = start(&dir.path().join("db")).await;
        let in_group = |group: &str| {
            let mut request = tonic::Request::new(ListBucketsRequest {});
            request.metadata_mut().insert(coffer_proto::metadata_client::GROUP_HEADER, group.parse().unwrap());
            request
        };
        assert!(client.list_buckets(in_group("0")).await.is_ok(), "group 0 named explicitly");
        let refused = client.list_buckets(in_group("3")).await.expect_err("no group 3");
        assert!(refused.message().contains("metadata group 3 is not open"), "{refused:?}");
        assert_eq!(RemoteError::from(refused).code, ErrorCode::Unavailable);
        assert_eq!(code(client.list_buckets(in_group("three")).await), ErrorCode::InvalidArgument);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn serves_the_api_and_keeps_state_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let (mut client, stop, server) = start(&db).await;

        let bucket =
            CreateBucketRequest { name: "b".into(), owner: "me".into(), region: "r".into(), ..Default::default() };
        client.create_bucket(bucket.clone()).await.unwrap();
        assert_eq!(code(client.create_bucket(bucket).await), ErrorCode::BucketAlreadyOwnedByYou);

        let shape = AllocateDataRequest { data_shards: 2, parity_shards: 1, ..Default::default() };
        assert_eq!(code(client.allocate_data(shape.clone()).await), ErrorCode::InsufficientCapacity);
        for id in ["n1", "n2"] {
            client.register_node(RegisterNodeRequest { node: Some(node(id)) }).await.unwrap();
        }
        client.heartbeat(HeartbeatRequest { node: Some(node("n3")) }).await.unwrap();
        let map = client.get_cluster_map(GetClusterMapRequest {}).await.unwrap().into_inner();
        assert_eq!(map.nodes.iter().filter(|n| n.alive).count(), 3);

        let allocated = client.allocate_data(shape).await.unwrap().into_inner();
        let nodes: std::collections::BTreeSet<_> = allocated.shards.iter().map(|s| s.node_id.clone()).collect();
        assert_eq!(nodes.len(), 3);
        let layout = DataLayout {
            data_id: allocated.data_id.clone(),
            data_shards: 2,
            parity_shards: 1,
            stripe_size: 1 << 20,
            size: 100,
            shards: allocated.shards.clone(),
        };
        let record = ObjectRecord {
            bucket: "b".into(),
            key: "dir/k".into(),
            size: 100,
            etag: "abc".into(),
            segments: vec![Segment { size: 100, layout: Some(layout), ..Default::default() }],
            ..Default::default()
        };
        let put = PutObjectRequest { record: Some(record), intents: vec![allocated.intent], condition: None };
        let stored = client.put_object(put).await.unwrap().into_inner().record.unwrap();
        assert!(stored.last_modified_unix_ms > 0);

        let get = GetObjectRequest { bucket: "b".into(), key: "dir/k".into(), ..Default::default() };
        assert_eq!(client.get_object(get.clone()).await.unwrap().into_inner().record.unwrap(), stored);
        let list = ListObjectsRequest { bucket: "b".into(), delimiter: "/".into(), max_keys: 10, ..Default::default() };
        let listed = client.list_objects(list).await.unwrap().into_inner();
        assert_eq!(listed.common_prefixes, ["dir/"]);

        let template = ObjectRecord { bucket: "b".into(), key: "big".into(), ..Default::default() };
        let upload = client.create_upload(CreateUploadRequest { template: Some(template) }).await.unwrap();
        let upload = upload.into_inner().upload.unwrap();
        let get_upload =
            GetUploadRequest { bucket: "b".into(), key: "big".into(), upload_id: upload.upload_id.clone() };
        assert_eq!(client.get_upload(get_upload).await.unwrap().into_inner().upload.unwrap(), upload);

        assert_eq!(
            code(client.delete_bucket(DeleteBucketRequest { name: "b".into() }).await),
            ErrorCode::BucketNotEmpty
        );
        let delete = DeleteObjectRequest { bucket: "b".into(), key: "dir/k".into(), ..Default::default() };
        assert!(client.delete_object(delete.clone()).await.unwrap().into_inner().existed);
        assert!(!client.delete_object(delete).await.unwrap().into_inner().existed);
        assert_eq!(code(client.get_object(get).await), ErrorCode::NoSuchKey);
        let elsewhere = GetObjectRequest { bucket: "nope".into(), key: "k".into(), ..Default::default() };
        assert_eq!(code(client.get_object(elsewhere).await), ErrorCode::NoSuchBucket);

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();

        let (mut client, stop, server) = start(&db).await;
        let buckets = client.list_buckets(ListBucketsRequest {}).await.unwrap().into_inner().buckets;
        assert_eq!(buckets.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["b"]);
        let map = client.get_cluster_map(GetClusterMapRequest {}).await.unwrap().into_inner();
        assert_eq!(map.nodes.len(), 3);
        assert!(map.nodes.iter().all(|n| !n.alive), "liveness is not persisted");
        let uploads = ListUploadsRequest { bucket: "b".into(), max_uploads: 10, ..Default::default() };
        assert_eq!(client.list_uploads(uploads).await.unwrap().into_inner().uploads, [upload]);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
