//! Several Raft groups in one replicated metadata process (issue 11, step 1: "groups on a node";
//! see docs/design/metadata-sharding.md).
//!
//! Group 0 is the process's original group (`--db`). Every range group group 0 has recorded
//! (`Command::CreateRangeGroup`, see `range`) and that names this process among its voters is
//! opened here, outside the apply path: its own RocksDB at `<db>.groups/<g>/` (the range's
//! descriptor stored in it before anything else), snapshots at `<db>.groups/<g>.snapshots/`, its
//! own openraft `Raft` under the process's group-0 node id, batcher, read barrier, leader gate and
//! `MetadataService`, a copy of group 0's cluster map (`cluster_feed`) to place and collect its
//! data by, and its own leader-only workers (`leader_tasks`). A watcher polls group 0's records, so a group is opened after its creation
//! applies here, after a snapshot install brought the record, and again after every restart.
//!
//! One gRPC server serves every group: [`GroupDispatchLayer`] sends a call carrying
//! `GROUP_HEADER: g` (g > 0) to group g's own stack; calls without it go on to group 0's.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use coffer_proto::limits::MAX_MESSAGE_BYTES;
use coffer_proto::metadata_client::{ClientConfig, GROUP_HEADER, NOT_LEADER_HEADER};
use coffer_proto::pb::metadata::metadata_raft_server::MetadataRaftServer;
use coffer_proto::pb::metadata::metadata_server::MetadataServer;
use futures::future::BoxFuture;
use tonic::body::Body;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::applier::Applier;
use crate::cluster::Cluster;
use crate::cluster_feed::ClusterFeed;
use crate::config::MetadataConfig;
use crate::error::MetadataError;
use crate::leader_gate::LeaderGateLayer;
use crate::raft::{Membership, RaftOptions, RaftService, Replication};
use crate::range::{Descriptor, GroupRecord};
use crate::service::{MetadataService, Timing};
use crate::store::Store;
use crate::{leader_tasks, notify};

/// How often the watcher looks for recorded groups not open yet unasked: it wakes when the store
/// reloads its copy of the records (an applied `CreateRangeGroup`, a snapshot install); this poll
/// guards against a missed wake-up and retries groups that failed to open.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);
/// How long a split's new group waits for this replica's parent to apply the split.
const SPLIT_WAIT: Duration = Duration::from_millis(100);
/// How long a group that failed to open waits before the next attempt.
const RETRY_AFTER: Duration = Duration::from_secs(5);

type GroupService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// One range group open on this process.
pub struct Group {
    /// The group's database; its range changes with splits.
    store: Arc<Store>,
    pub replication: Replication,
    /// The group's `Metadata` and `MetadataRaft` services behind its own leader gate.
    service: GroupService,
    /// The supervisor of the group's leader-only workers (see `leader_tasks`) and its stop.
    leader_tasks: std::sync::Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

/// What every range group of the process shares with group 0.
pub struct Settings {
    /// Group 0's flags: its database path (`--db`; range groups live beside it), the timings of
    /// the data path and of the leader's workers, which every group shares.
    pub config: MetadataConfig,
    pub client: ClientConfig,
    /// Webhook targets of bucket notifications (each group's dispatcher sends its own events).
    pub targets: notify::Targets,
}

/// The range groups open on this process. Cheap to clone.
#[derive(Clone)]
pub struct Groups(Arc<Inner>);

struct Inner {
    settings: Settings,
    /// Group 0's database, where the range groups are recorded.
    directory: Arc<Store>,
    zero: Replication,
    open: RwLock<BTreeMap<u64, Arc<Group>>>,
}

/// `<db>.groups/<g>` and `<db>.groups/<g>.snapshots`.
fn group_paths(db: &std::path::Path, group: u64) -> (PathBuf, PathBuf) {
    let mut base = db.to_path_buf().into_os_string();
    base.push(".groups");
    let base = PathBuf::from(base);
    (base.join(group.to_string()), base.join(format!("{group}.snapshots")))
}

impl Group {
    /// The group's range as its database holds it now.
    pub fn descriptor(&self) -> Option<Arc<Descriptor>> {
        self.store.range()
    }
}

impl Groups {
    pub fn new(settings: Settings, directory: Arc<Store>, zero: Replication) -> Groups {
        Groups(Arc::new(Inner { settings, directory, zero, open: RwLock::default() }))
    }

    pub fn get(&self, group: u64) -> Option<Arc<Group>> {
        self.0.open.read().unwrap_or_else(|e| e.into_inner()).get(&group).cloned()
    }

    /// Every open range group, in group order.
    pub fn all(&self) -> Vec<(u64, Arc<Group>)> {
        self.0.open.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(g, group)| (*g, group.clone())).collect()
    }

    /// Group 0's records of every range group (read from its database; not linearizable by
    /// itself: callers that need that pass group 0's read barrier first).
    pub async fn records(&self) -> Result<Vec<GroupRecord>, MetadataError> {
        let directory = self.0.directory.clone();
        tokio::task::spawn_blocking(move || crate::range::group_records(&directory))
            .await
            .map_err(|e| MetadataError::Internal(format!("the range group listing task failed: {e}")))?
    }

    /// Opens recorded groups as they appear, until `stop` fires.
    pub async fn watch(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let db = self.0.settings.config.db.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || sweep_removed(&db)).await {
            tracing::warn!(error = %e, "the sweep of closed groups' folders failed");
        }
        let mut retry_at: HashMap<u64, tokio::time::Instant> = HashMap::new();
        loop {
            // The store's in-memory copy (an atomic load while there are none), current as of the
            // last applied write.
            let records = self.0.directory.directory_records();
            let me = self.0.zero.id();
            // A move took these groups off this process: their leaders no longer count it.
            for (group, _) in self.all() {
                if records.iter().any(|r| r.group == group && !r.lists(me)) {
                    self.close(group).await;
                }
            }
            for record in records.iter().cloned() {
                let group = record.group;
                let due = retry_at.get(&group).is_none_or(|at| *at <= tokio::time::Instant::now());
                if self.get(group).is_some() || !due || !record.lists(me) {
                    continue;
                }
                if self.parent_not_split_here(&record) {
                    // Its seed comes with the parent's apply of the split, which this replica has
                    // not reached yet: opened empty now, it would wait for a snapshot instead.
                    retry_at.insert(group, tokio::time::Instant::now() + SPLIT_WAIT);
                    continue;
                }
                if let Err(e) = self.open(record).await {
                    tracing::error!(group, error = %e, "could not open a metadata range group; retrying");
                    retry_at.insert(group, tokio::time::Instant::now() + RETRY_AFTER);
                }
            }
            let now = tokio::time::Instant::now();
            retry_at.retain(|_, at| *at > now);
            let wake = retry_at.values().copied().min().unwrap_or(now + WATCH_INTERVAL).min(now + WATCH_INTERVAL);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.0.directory.directory_reloaded() => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Whether a group open here still holds the start of `record`'s range: `record` was split
    /// off it, and this replica has not applied the split yet.
    fn parent_not_split_here(&self, record: &GroupRecord) -> bool {
        let start = &record.descriptor.range;
        self.all().iter().any(|(group, open)| {
            *group != record.group
                && open.descriptor().is_some_and(|d| d.range.contains(&start.start_bucket, &start.start_key))
        })
    }

    /// Stops group `group` here and deletes this process's copy: a finished move took it away
    /// (the group's membership no longer has this replica before group 0 records that).
    async fn close(&self, group: u64) {
        let Some(closing) = self.0.open.write().unwrap_or_else(|e| e.into_inner()).remove(&group) else {
            return;
        };
        stop_group(group, &closing).await;
        drop(closing);
        let (dir, snapshot_dir) = group_paths(&self.0.settings.config.db, group);
        // Renamed first, so a crash mid-delete leaves no half copy under the group's own name
        // (`sweep_removed` finishes the delete at the next start).
        let removed = tokio::task::spawn_blocking(move || {
            for path in [dir, snapshot_dir] {
                let gone = removed_path(&path);
                match std::fs::rename(&path, &gone) {
                    Ok(()) => std::fs::remove_dir_all(&gone)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await;
        match removed {
            Ok(Ok(())) => tracing::info!(group, "metadata range group moved away: closed and deleted here"),
            Ok(Err(e)) => tracing::error!(group, error = %e, "could not delete a range group that moved away"),
            Err(e) => tracing::error!(group, error = %e, "the deletion of a range group that moved away failed"),
        }
    }

    async fn open(&self, record: GroupRecord) -> Result<(), MetadataError> {
        let settings = &self.0.settings;
        let config = &settings.config;
        let group = record.group;
        let (dir, snapshot_dir) = group_paths(&config.db, group);
        let descriptor = record.descriptor.clone();
        let store = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| MetadataError::Internal(format!("creating {}: {e}", dir.display())))?;
            let store = Store::open(&dir)?;
            // Before the Raft starts, so no command of the group is ever applied without it. A
            // database that holds one keeps it: from then on its range changes only through its
            // own log (a split), which group 0's record may not show yet.
            if store.range().is_none() {
                store.set_range(descriptor)?;
            }
            Ok::<_, MetadataError>(Arc::new(store))
        })
        .await
        .map_err(|e| MetadataError::Internal(format!("open task failed: {e}")))??;
        // A group created empty (epoch 1) starts from the same first entry on every voter; one
        // born of a split (or split since) never initializes: its state is the split's seed, or
        // its leader's snapshot (see `split`). Nor does any replica once a move started: a
        // joining one gets the log or a snapshot from the group's leader (see `group_move`).
        let founder = record.voters.iter().any(|(id, _)| *id == self.0.zero.id());
        let membership = if record.voters_initialize() && founder {
            Membership::Members(record.voters.iter().cloned().collect())
        } else {
            Membership::Seeded
        };
        let options = RaftOptions {
            membership,
            advertise: config.advertise_url(),
            snapshot_dir,
            snapshot_entries: config.raft_snapshot_entries,
            client: settings.client.clone(),
            group,
            node_id: Some(self.0.zero.id()),
        };
        let replication = Replication::start(store.clone(), options).await?;
        // Nodes register and heartbeat with group 0 only: the group places shards, collects its
        // garbage and plans repair from a copy of group 0's map.
        let cluster = Arc::new(Cluster::new(config.node_timeout, Vec::new(), Vec::new()));
        let zero_urls: Vec<String> = self.0.zero.voters().into_iter().map(|(_, url)| url).collect();
        let feed = Arc::new(ClusterFeed::new(cluster.clone(), &zero_urls, &settings.client)?);
        let applier = Applier::replicated(replication.clone());
        let api = MetadataService::new(store.clone(), applier.clone(), cluster.clone(), Timing::from(config))
            .with_cluster_feed(feed.clone())
            .with_group(group)
            .with_notify_targets(settings.targets.clone());
        let routes = tonic::service::Routes::new(
            MetadataServer::new(api)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            MetadataRaftServer::new(RaftService::new(replication.clone()).with_range(store.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
        let service = BoxCloneSyncService::new(LeaderGateLayer::new(Some(replication.clone())).layer(routes));
        // The group's own collector, lifecycle worker, expirer and notification dispatcher, on
        // whichever replica leads it.
        let workers = leader_tasks::Workers {
            store: store.clone(),
            applier,
            cluster,
            config: config.clone(),
            targets: settings.targets.clone(),
            tls: settings.client.tls.clone(),
            group,
            feed: Some(feed),
            zero: Some(self.0.zero.clone()),
        };
        let (stop, stopped) = oneshot::channel();
        let supervisor = tokio::spawn(leader_tasks::supervise(workers, Some(replication.leadership()), stopped));
        let range = record.descriptor.range.to_string();
        let opened = Arc::new(Group {
            store,
            replication,
            service,
            leader_tasks: std::sync::Mutex::new(Some((stop, supervisor))),
        });
        self.0.open.write().unwrap_or_else(|e| e.into_inner()).insert(group, opened);
        tracing::info!(group, %range, "metadata range group open");
        Ok(())
    }

    /// Stops every open group's leader workers, then its Raft.
    pub async fn shutdown(&self) {
        for (group_id, group) in self.all() {
            stop_group(group_id, &group).await;
        }
    }
}

/// Stops a group's leader workers, then its Raft.
async fn stop_group(group_id: u64, group: &Group) {
    let tasks = group.leader_tasks.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((stop, supervisor)) = tasks {
        // A send error means the supervisor already ended.
        let _ = stop.send(());
        if let Err(e) = supervisor.await {
            tracing::error!(group = group_id, error = %e, "a range group's leader task supervisor failed");
        }
    }
    group.replication.shutdown().await;
}

/// Where a closed group's folder goes before it is deleted: `<g>.removed` beside it.
fn removed_path(path: &std::path::Path) -> PathBuf {
    let mut gone = path.as_os_str().to_owned();
    gone.push(".removed");
    PathBuf::from(gone)
}

/// Deletes what a crash left of closed groups' folders (`*.removed` under `<db>.groups`). Blocking.
fn sweep_removed(db: &std::path::Path) {
    let (dir, _) = group_paths(db, 0);
    let Some(base) = dir.parent() else { return };
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".removed")
            && let Err(e) = std::fs::remove_dir_all(entry.path())
        {
            tracing::warn!(path = %entry.path().display(), error = %e, "could not delete a closed group's folder");
        }
    }
}

/// The group a call is for: [`GROUP_HEADER`] as a decimal u64, 0 when absent.
pub fn requested_group(headers: &http::HeaderMap) -> Result<u64, MetadataError> {
    let Some(value) = headers.get(GROUP_HEADER) else { return Ok(0) };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| MetadataError::InvalidArgument(format!("{GROUP_HEADER} must be a group id, not {value:?}")))
}

#[derive(Clone)]
pub struct GroupDispatchLayer {
    groups: Option<Groups>,
}

impl GroupDispatchLayer {
    /// `None`: a lone metadata service, which has only group 0.
    pub fn new(groups: Option<Groups>) -> GroupDispatchLayer {
        GroupDispatchLayer { groups }
    }
}

impl<S> Layer<S> for GroupDispatchLayer {
    type Service = GroupDispatch<S>;

    fn layer(&self, inner: S) -> GroupDispatch<S> {
        GroupDispatch { inner, groups: self.groups.clone() }
    }
}

/// Sends each call to the stack of the group its header names (group 0's is `inner`).
#[derive(Clone)]
pub struct GroupDispatch<S> {
    inner: S,
    groups: Option<Groups>,
}

fn refusal<E: Send + 'static>(e: MetadataError) -> BoxFuture<'static, Result<http::Response<Body>, E>> {
    let response = tonic::Status::from(e).into_http();
    Box::pin(std::future::ready(Ok(response)))
}

impl<S> Service<http::Request<Body>> for GroupDispatch<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let group = match requested_group(request.headers()) {
            Ok(group) => group,
            Err(e) => return refusal(e),
        };
        if group == 0 {
            // The ready inner service answers this call; a clone takes its place for the next one.
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            return Box::pin(inner.call(request));
        }
        let Some(found) = self.groups.as_ref().and_then(|groups| groups.get(group)) else {
            // Unknown here (never created, not a voter of it, or not opened yet): nothing answers.
            // With an empty not-leader hint, as a replica that knows no leader: a client's leader
            // router then tries the group's other replicas instead of insisting on this one (a
            // replica that could not open the group must not make it unreachable).
            let mut status = tonic::Status::from(MetadataError::Unavailable(format!(
                "metadata group {group} is not open on this replica"
            )));
            status.metadata_mut().insert(NOT_LEADER_HEADER, tonic::metadata::MetadataValue::from_static(""));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let service = found.service.clone();
        Box::pin(async move {
            match service.oneshot(request).await {
                Ok(response) => Ok(response),
                Err(never) => match never {},
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_header_defaults_to_group_0() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(requested_group(&headers).unwrap(), 0);
        headers.insert(GROUP_HEADER, "17".parse().unwrap());
        assert_eq!(requested_group(&headers).unwrap(), 17);
        headers.insert(GROUP_HEADER, "x".parse().unwrap());
        assert_eq!(requested_group(&headers).unwrap_err().code(), coffer_proto::ErrorCode::InvalidArgument);
    }

    #[tokio::test]
    async fn a_group_not_open_here_is_refused_like_a_replica_that_knows_no_leader() {
        let inner = tower::service_fn(|_: http::Request<Body>| async {
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        });
        let mut dispatch = GroupDispatchLayer::new(None).layer(inner);
        let mut request = http::Request::new(Body::empty());
        request.headers_mut().insert(GROUP_HEADER, "5".parse().unwrap());
        let response = dispatch.call(request).await.unwrap();
        assert_eq!(response.headers().get(NOT_LEADER_HEADER).map(|v| v.as_bytes()), Some(&b""[..]));
        let status = tonic::Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("metadata group 5 is not open on this replica"), "{status:?}");
        // Group 0 goes on to the inner service.
        let response = dispatch.call(http::Request::new(Body::empty())).await.unwrap();
        assert!(response.headers().get(NOT_LEADER_HEADER).is_none());
    }

    #[test]
    fn range_groups_live_beside_group_0() {
        let (db, snapshots) = group_paths(std::path::Path::new("/data/meta"), 3);
        assert_eq!(db, PathBuf::from("/data/meta.groups/3"));
        assert_eq!(snapshots, PathBuf::from("/data/meta.groups/3.snapshots"));
    }
}
