//! The garbage collector: deletes the shards of gc entries whose time has come from the blobnodes,
//! then removes the entries (or reschedules the ones that failed) through the applier.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_proto::ErrorCode;
use coffer_proto::blobnode_client::BlobnodePool;
use coffer_proto::metadata_client::ClientConfig;
use coffer_proto::pb::metadata::{GcRecord, ShardLocation};
use futures::StreamExt;
use tokio::sync::oneshot;

use crate::applier::Applier;
use crate::cluster::{Cluster, ShardTarget};
use crate::cluster_feed::ClusterFeed;
use crate::command::{Command, GcRetry};
use crate::error::MetadataError;
use crate::store::Store;

/// Entries handled per pass; a full pass is followed at once by another.
const BATCH: usize = 256;
/// Deletions in flight at once, over all nodes.
const CONCURRENCY: usize = 32;
/// Longest wait before retrying an entry that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// A deletion is small; a node that takes longer is treated as failing and retried later.
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);
/// Failure counts kept for backoff; past this they are forgotten (backoff restarts, harmlessly).
const MAX_TRACKED_FAILURES: usize = 100_000;

pub struct Collector {
    store: Arc<Store>,
    applier: Applier,
    cluster: Arc<Cluster>,
    pool: BlobnodePool,
    interval: Duration,
    pool_version: Option<u64>,
    /// Consecutive failed passes per data id. In memory only: a restart merely restarts backoff.
    failures: HashMap<Vec<u8>, u32>,
    /// A range group's collector: `cluster` is a copy of group 0's map, refreshed before each pass.
    feed: Option<Arc<ClusterFeed>>,
}

/// Result of one pass.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub done: usize,
    pub retried: usize,
    /// The batch was full: more entries may be due.
    pub more: bool,
}

impl Collector {
    pub fn new(
        store: Arc<Store>,
        applier: Applier,
        cluster: Arc<Cluster>,
        interval: Duration,
        tls: Option<coffer_proto::grpc_tls::GrpcTls>,
    ) -> Collector {
        let client = ClientConfig { timeout: DELETE_TIMEOUT, tls, ..ClientConfig::default() };
        Collector {
            store,
            applier,
            cluster,
            pool: BlobnodePool::new(client),
            interval,
            pool_version: None,
            failures: HashMap::new(),
            feed: None,
        }
    }

    /// A range group's collector (see `cluster_feed`).
    pub fn with_feed(mut self, feed: Option<Arc<ClusterFeed>>) -> Collector {
        self.feed = feed;
        self
    }

    /// Runs passes every interval until `stop` fires (or its sender is dropped).
    pub async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            let pass = tokio::select! {
                pass = self.pass(crate::now_unix_ms(), Instant::now()) => pass,
                _ = &mut stop => return,
            };
            let more = match pass {
                Ok(pass) => pass.more,
                Err(e) => {
                    tracing::warn!(error = %e, "garbage collection pass failed");
                    false
                }
            };
            if more {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = &mut stop => return,
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let base = self.interval.max(Duration::from_secs(1));
        base.saturating_mul(1 << failures.min(16)).min(MAX_BACKOFF)
    }

    /// One pass over the entries due at `now_unix_ms`.
    pub async fn pass(&mut self, now_unix_ms: i64, now: Instant) -> Result<Pass, MetadataError> {
        if let Some(feed) = &self.feed {
            feed.refresh().await?;
        }
        let version = self.cluster.addresses_version();
        if self.pool_version != Some(version) {
            self.pool.set_nodes(self.cluster.addresses());
            self.pool_version = Some(version);
        }
        let store = self.store.clone();
        let due = tokio::task::spawn_blocking(move || store.due_gc(now_unix_ms, BATCH))
            .await
            .map_err(|e| MetadataError::Internal(format!("gc scan task failed: {e}")))??;
        if due.is_empty() {
            return Ok(Pass::default());
        }

        let failed = self.delete_shards(&due, now).await;

        let mut done = Vec::new();
        let mut retry = Vec::new();
        for ((key, record), remaining) in due.iter().zip(failed) {
            if remaining.is_empty() {
                self.failures.remove(&record.data_id);
                done.push(key.clone());
                continue;
            }
            if self.failures.len() >= MAX_TRACKED_FAILURES {
                self.failures.clear();
            }
            let failures = self.failures.entry(record.data_id.clone()).or_insert(0);
            *failures = failures.saturating_add(1);
            let failures = *failures;
            let delay = self.backoff(failures);
            let not_before_unix_ms = now_unix_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
            retry.push(GcRetry { key: key.clone(), not_before_unix_ms, remaining });
        }
        let pass = Pass { done: done.len(), retried: retry.len(), more: due.len() == BATCH };
        if !retry.is_empty() {
            tracing::debug!(count = retry.len(), "some shards could not be deleted yet; retrying later");
        }
        self.applier.submit(Command::FinishGc { done, retry }).await?;
        Ok(pass)
    }

    /// Deletes every shard of `due`; returns, per entry, the shards that are not gone yet.
    async fn delete_shards(&self, due: &[(Vec<u8>, GcRecord)], now: Instant) -> Vec<Vec<ShardLocation>> {
        // Owned jobs: futures borrowing from `due` trip the compiler's Send analysis in the spawned task.
        let jobs: Vec<(usize, usize, ShardLocation, Vec<u8>)> = due
            .iter()
            .enumerate()
            .flat_map(|(entry, (_, record))| {
                record.shards.iter().enumerate().map(move |(i, s)| (entry, i, s.clone(), record.data_id.clone()))
            })
            .collect();
        let mut outcomes: Vec<(usize, usize, bool)> = futures::stream::iter(jobs)
            .map(|(entry, i, shard, data_id)| {
                let (cluster, pool) = (self.cluster.clone(), self.pool.clone());
                async move {
                    let gone = match cluster.shard_target(&shard.node_id, &shard.disk_id, now) {
                        ShardTarget::DiskGone => true,
                        ShardTarget::Unreachable => false,
                        ShardTarget::Reachable => match pool.delete_data(&shard.node_id, &shard.disk_id, &data_id).await {
                            Ok(()) => true,
                            Err(e) if e.code == ErrorCode::NoSuchShard => true,
                            Err(e) => {
                                tracing::debug!(node_id = %shard.node_id, disk_id = %shard.disk_id, error = %e, "shard deletion failed");
                                false
                            }
                        },
                    };
                    (entry, i, gone)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        outcomes.sort_unstable();
        let mut failed = vec![Vec::new(); due.len()];
        for (entry, i, gone) in outcomes {
            if !gone {
                failed[entry].push(due[entry].1.shards[i].clone());
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use coffer_proto::pb::blobnode::blobnode_server::{Blobnode, BlobnodeServer};
    use coffer_proto::pb::blobnode::*;
    use coffer_proto::pb::metadata::{DiskInfo, NodeInfo};
    use tonic::{Request, Response, Status, Streaming};

    use super::*;
    use crate::keys;

    /// (disk id, data id) of every deletion asked for.
    type Deletions = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

    #[derive(Clone, Default)]
    struct FakeBlobnode {
        deleted: Deletions,
    }

    #[tonic::async_trait]
    impl Blobnode for FakeBlobnode {
        async fn put_shard(
            &self,
            _: Request<Streaming<PutShardRequest>>,
        ) -> Result<Response<PutShardResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }

        type GetShardStream = futures::stream::BoxStream<'static, Result<GetShardResponse, Status>>;

        async fn get_shard(&self, _: Request<GetShardRequest>) -> Result<Response<Self::GetShardStream>, Status> {
            Err(Status::unimplemented("fake"))
        }

        async fn delete_data(&self, req: Request<DeleteDataRequest>) -> Result<Response<DeleteDataResponse>, Status> {
            let req = req.into_inner();
            self.deleted.lock().unwrap().push((req.disk_id, req.data_id));
            Ok(Response::new(DeleteDataResponse {}))
        }

        async fn stat_shard(&self, _: Request<StatShardRequest>) -> Result<Response<StatShardResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
    }

    async fn start_fake() -> (FakeBlobnode, String) {
        let fake = FakeBlobnode::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let server = tonic::transport::Server::builder()
            .add_service(BlobnodeServer::new(fake.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        (fake, address)
    }

    fn node(id: &str, address: &str) -> NodeInfo {
        let disks = vec![DiskInfo { disk_id: "d0".into(), healthy: true, ..Default::default() }];
        NodeInfo { node_id: id.into(), address: address.into(), disks }
    }

    fn shard(node_id: &str, disk_id: &str) -> ShardLocation {
        ShardLocation { node_id: node_id.into(), disk_id: disk_id.into() }
    }

    #[tokio::test]
    async fn due_entries_are_deleted_and_failures_retried_with_what_remains() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let (applier, thread) = Applier::start(store.clone()).unwrap();
        let (fake, address) = start_fake().await;
        let now = Instant::now();
        let cluster = Arc::new(Cluster::new(Duration::from_secs(10), vec![node("dead", "http://127.0.0.1:1")], vec![]));
        cluster.observe(node("live", &address), now, 0, true);

        let entries = [
            (10, b"a", vec![shard("live", "d0")]),
            (10, b"b", vec![shard("live", "d0"), shard("dead", "d0")]),
            (10, b"c", vec![shard("live", "removed-disk")]),
            (1_000, b"d", vec![shard("live", "d0")]),
        ];
        for (due, id, shards) in entries {
            let record = GcRecord { data_id: id.to_vec(), shards, ..Default::default() };
            applier.submit(Command::RecordIntent { intent: keys::gc(due, id), record }).await.unwrap();
        }

        let mut collector = Collector::new(store.clone(), applier.clone(), cluster, Duration::from_secs(5), None);
        let pass = collector.pass(100, now).await.unwrap();
        assert_eq!(pass, Pass { done: 2, retried: 1, more: false });
        let mut deleted = fake.deleted.lock().unwrap().clone();
        deleted.sort();
        assert_eq!(deleted, [("d0".to_string(), b"a".to_vec()), ("d0".to_string(), b"b".to_vec())]);

        let first_retry = 100 + 10_000;
        let left: Vec<(Vec<u8>, GcRecord)> = store.due_gc(i64::MAX - 1, 10).unwrap();
        assert_eq!(left.len(), 2);
        assert_eq!(keys::parse_gc(&left[0].0), Some((1_000, &b"d"[..])));
        assert_eq!(keys::parse_gc(&left[1].0), Some((first_retry, &b"b"[..])));
        assert_eq!(left[1].1.shards, [shard("dead", "d0")], "only the shard not yet deleted is retried");

        // Still failing: the wait doubles. Meanwhile d has come due and goes.
        let pass = collector.pass(first_retry, now).await.unwrap();
        assert_eq!(pass, Pass { done: 1, retried: 1, more: false });
        let left = store.due_gc(i64::MAX - 1, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(keys::parse_gc(&left[0].0), Some((first_retry + 20_000, &b"b"[..])));
        thread.stop().await;
    }
}
