//! Replication of the metadata state machine with Raft (openraft): every write is a
//! [`Command`] proposed to the group, committed by a majority of replicas, and applied by each of
//! them in log order (see `state_machine`). Reads are served by the leader after a read barrier,
//! so they are linearizable. Without `--peers`/`--join` (and in `coffer server`) the same state
//! machine runs without a log, fed by the local applier (see `applier`).

// openraft's traits fix the error type (`StorageError`, ~224 bytes); boxing it here would only add
// conversions at every trait boundary.
#![allow(clippy::result_large_err)]

mod batcher;
mod log_store;
mod network;
mod proposals;
mod read_barrier;
mod service;
mod snapshot_file;
mod stale_reads;
mod state_machine;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers, ServerState};
use tokio::sync::watch;

pub use service::RaftService;
pub use stale_reads::{Permit, StaleRead, requested_bound};
pub(crate) use state_machine::seed_split_child;
pub use types::NodeId;

use self::log_store::LogStore;
use self::network::Network;
use self::proposals::Proposals;
use self::state_machine::StateMachine;
use self::types::Raft;
use crate::command::{Applied, Command};
use crate::error::MetadataError;
use crate::store::{Cf, Store};

/// Raft timing. Openraft bounds every AppendEntries call (and the read barrier's heartbeat round)
/// by the heartbeat interval, so it must leave room for a follower's fsync on a busy machine:
/// 250 ms. A follower that has seen a leader waits the leader's lease (the maximum election
/// timeout) plus its own random election timeout before it stands, and refuses votes while the
/// lease runs, so replacing a dead leader takes ~1.8–2.4 s here — inside the 5 s the project
/// promises — while a live leader's heartbeats are missed for over a second before anything moves.
const HEARTBEAT: Duration = Duration::from_millis(250);
const ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(600);
const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(1200);
/// Entries the log keeps behind the last snapshot, for followers that lag a little (more lag means
/// a snapshot transfer); at most a tenth of the snapshot interval.
const ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 5_000;
/// Entries in one AppendEntries at most (openraft's default is 300); each may hold up to 256 commands.
const MAX_PAYLOAD_ENTRIES: u64 = 64;
/// Bound on sending one snapshot segment, and for the last one also on the receiver installing the whole
/// snapshot (openraft 0.9's `install_snapshot_timeout`, default 200 ms). Installing loads every key of the
/// snapshot into RocksDB, which takes seconds per GiB; with the default, any database past a few MiB could
/// never be installed, and the leader would resend it forever. Only the one follower's replication waits this
/// long when it is unreachable mid-transfer.
const INSTALL_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(300);
/// Bounds on a command's wait, from its submission (queueing included) until it is applied: the
/// group needs a leader and a majority within this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

const NODE_ID_KEY: &[u8] = b"node_id";

/// How this replica enters its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// One of the initial replicas: the same list on each, this one at `advertise`. A list of one
    /// is a group of one that others can join later.
    Peers(Vec<String>),
    /// A new replica added to the running group that one of these URLs belongs to.
    Join(Vec<String>),
    /// One of the initial voters (id → URL) of a range group, the same map on each (see `groups`).
    Members(BTreeMap<NodeId, String>),
    /// A replica of a range group born of a split (see `split`): its state is the split's seed,
    /// or, on a replica without one, what the group's leader sends. Never initialized here.
    Seeded,
}

/// A handle on this replica's Raft node. Cheap to clone.
#[derive(Clone)]
pub struct Replication {
    raft: Raft,
    /// The group this replica belongs to: 0, the directory, or a range group.
    group: u64,
    id: NodeId,
    address: String,
    proposals: Arc<Proposals>,
    /// Where submitted commands queue to be proposed together (see `batcher`).
    batcher: batcher::Batcher,
    /// One membership change at a time: openraft refuses a change while another is between its
    /// two steps, and replicas joining together would otherwise fail each other's.
    membership_changes: Arc<tokio::sync::Mutex<()>>,
    reads: read_barrier::ReadBarrier,
    /// What bounded-staleness reads rest on (see `stale_reads`).
    freshness: stale_reads::Freshness,
}

fn fatal(e: impl std::fmt::Display) -> MetadataError {
    MetadataError::Unavailable(format!("raft: {e}"))
}

/// The id this replica has had since it first started; chosen once and kept.
/// A range group's replica takes `given`, its process's id in group 0.
fn node_id(
    store: &Store,
    membership: &Membership,
    advertise: &str,
    given: Option<NodeId>,
) -> Result<NodeId, MetadataError> {
    let state = store.cf(Cf::RaftState)?;
    if let Some(bytes) = store.db().get_cf(state, NODE_ID_KEY).map_err(MetadataError::db("reading the node id"))? {
        let bytes: [u8; 8] = bytes.try_into().map_err(|_| MetadataError::corrupt("node id", "not 8 bytes"))?;
        let stored = u64::from_be_bytes(bytes);
        if let Some(given) = given.filter(|&g| g != stored) {
            return Err(MetadataError::corrupt(
                "node id",
                format!("the group's database has {stored}, the process {given}"),
            ));
        }
        return Ok(stored);
    }
    let id = match (given, membership) {
        (Some(given), _) => given,
        (None, Membership::Peers(peers)) => match peers.iter().position(|p| same_url(p, advertise)) {
            Some(position) => position as u64 + 1,
            None => {
                return Err(MetadataError::InvalidArgument(format!(
                    "--peers must list this replica's own URL {advertise} (set --advertise to the URL others reach it at)"
                )));
            }
        },
        // Above any position in a --peers list, so joined replicas never take an initial one's id.
        (None, Membership::Join(_)) => (1 << 32) + u64::from(rand::random::<u32>()),
        (None, Membership::Seeded) => {
            return Err(MetadataError::InvalidArgument("a seeded replica takes its process's node id".into()));
        }
        (None, Membership::Members(members)) => match members.iter().find(|(_, url)| same_url(url, advertise)) {
            Some((id, _)) => *id,
            None => {
                return Err(MetadataError::InvalidArgument(format!("{advertise} is not among the group's voters")));
            }
        },
    };
    let mut options = rocksdb::WriteOptions::default();
    options.set_sync(true);
    store
        .db()
        .put_cf_opt(state, NODE_ID_KEY, id.to_be_bytes(), &options)
        .map_err(MetadataError::db("saving the node id"))?;
    Ok(id)
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// How a replica takes part in its group.
pub struct RaftOptions {
    pub membership: Membership,
    /// The URL the others reach this replica at.
    pub advertise: String,
    pub snapshot_dir: std::path::PathBuf,
    /// A snapshot is taken after this many entries since the last one.
    pub snapshot_entries: u64,
    /// Limits and TLS of the connections to the other replicas.
    pub client: coffer_proto::metadata_client::ClientConfig,
    /// The group (0: the directory); its id travels in `GROUP_HEADER` on every Raft message.
    pub group: u64,
    /// This process's node id in group 0, which a range group's replica takes too.
    pub node_id: Option<NodeId>,
}

impl Replication {
    /// Starts this replica's Raft node over `store`. The initial replicas of a new group form it
    /// together; a joining one asks the group to add it (in the background, until it is a voter).
    pub async fn start(store: Arc<Store>, options: RaftOptions) -> Result<Replication, MetadataError> {
        let RaftOptions { membership, advertise, snapshot_dir, snapshot_entries, client, group, node_id: given } =
            options;
        let id = {
            let store = store.clone();
            let (membership, advertise) = (membership.clone(), advertise.clone());
            tokio::task::spawn_blocking(move || node_id(&store, &membership, &advertise, given))
                .await
                .map_err(|e| MetadataError::Internal(format!("node id task failed: {e}")))??
        };
        let config = openraft::Config {
            cluster_name: "coffer-metadata".into(),
            heartbeat_interval: HEARTBEAT.as_millis() as u64,
            election_timeout_min: ELECTION_TIMEOUT_MIN.as_millis() as u64,
            election_timeout_max: ELECTION_TIMEOUT_MAX.as_millis() as u64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_entries.max(1)),
            max_in_snapshot_log_to_keep: ENTRIES_KEPT_AFTER_SNAPSHOT.min(snapshot_entries / 10),
            // One AppendEntries must fit in a heartbeat interval (see `log_store::MAX_READ_BYTES`).
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT.as_millis() as u64,
            ..Default::default()
        }
        .validate()
        .map_err(|e| MetadataError::InvalidArgument(format!("raft config: {e}")))?;
        let proposals = Arc::new(Proposals::default());
        let state_machine = {
            let (store, proposals, dir) = (store.clone(), proposals.clone(), snapshot_dir.clone());
            tokio::task::spawn_blocking(move || StateMachine::open(store, proposals, dir, group))
                .await
                .map_err(|e| MetadataError::Internal(format!("state machine task failed: {e}")))??
        };
        let log = LogStore::new(store, id)?;
        let freshness = stale_reads::Freshness::default();
        let network = Network { config: client.clone(), freshness: freshness.clone(), group };
        let raft = Raft::new(id, Arc::new(config), network, log, state_machine).await.map_err(fatal)?;
        let batcher = batcher::Batcher::start(raft.clone(), proposals.clone(), WRITE_TIMEOUT);
        let replication = Replication {
            raft,
            group,
            id,
            address: advertise.clone(),
            proposals,
            batcher,
            membership_changes: Arc::default(),
            reads: Default::default(),
            freshness,
        };
        let pristine = !replication.raft.is_initialized().await.map_err(fatal)?;
        match membership {
            Membership::Peers(peers) if pristine => {
                let members: BTreeMap<NodeId, BasicNode> =
                    peers.iter().enumerate().map(|(i, url)| (i as u64 + 1, BasicNode::new(url))).collect();
                // Every initial replica proposes the same membership; the first election settles it.
                if let Err(e) = replication.raft.initialize(members).await {
                    tracing::info!(error = %e, "the group was already initialized");
                }
            }
            Membership::Members(members) if pristine => {
                let members: BTreeMap<NodeId, BasicNode> =
                    members.iter().map(|(id, url)| (*id, BasicNode::new(url))).collect();
                // As with --peers: every voter proposes the same membership (from the group-0 command).
                if let Err(e) = replication.raft.initialize(members).await {
                    tracing::info!(group, error = %e, "the range group was already initialized");
                }
            }
            Membership::Join(seeds) if pristine => {
                // In the background: the group reaches this replica through its gRPC server, which
                // starts only once this returns.
                let advertise = advertise.clone();
                let metrics = replication.raft.metrics();
                let is_voter = move || metrics.borrow().membership_config.membership().voter_ids().any(|v| v == id);
                tokio::spawn(async move {
                    if let Err(e) = service::join(&seeds, id, &advertise, &client, is_voter).await {
                        tracing::error!(error = %e, "this replica could not join the metadata group");
                    }
                });
            }
            Membership::Seeded => {
                // The seed holds applied state but no snapshot file: a replica of the group without
                // the seed can only be sent a snapshot (the seed's log is purged), so one is built.
                let seeded = replication.raft.is_initialized().await.map_err(fatal)?;
                if seeded
                    && !state_machine::has_snapshot(&snapshot_dir)
                    && let Err(e) = replication.raft.trigger().snapshot().await
                {
                    tracing::warn!(group, error = %e, "could not start the first snapshot of a split's new group");
                }
            }
            _ => {}
        }
        // Every group's figures, labelled by group: a process hosts a bounded number of groups
        // (each up to `--range-split-keys` objects), and the series of a group that moved away
        // stop changing rather than vanish.
        tokio::spawn(publish_metrics(replication.raft.metrics(), group));
        tokio::spawn(replication.freshness.clone().track_lease(replication.raft.metrics()));
        tracing::info!(group, node_id = id, address = %advertise, "metadata replica started");
        Ok(replication)
    }

    /// Proposes `command` and returns its outcome once a majority has it and it is applied here.
    /// Commands submitted together share a log entry (see `batcher`), each with its own outcome.
    pub async fn submit(&self, command: Command) -> Result<Applied, MetadataError> {
        let bytes = crate::command_codec::encode(&command);
        let started = tokio::time::Instant::now();
        let deadline = started + WRITE_TIMEOUT;
        let no_quorum = || MetadataError::Unavailable(format!("no metadata quorum within {WRITE_TIMEOUT:?}"));
        let place = tokio::time::timeout_at(deadline, self.batcher.reserve()).await.map_err(|_| no_quorum())??;
        let (id, outcome) = self.proposals.register();
        place.send(batcher::Queued { id, bytes });
        let outcome = tokio::time::timeout_at(deadline, outcome).await;
        metrics::histogram!("coffer_metadata_raft_commit_seconds", "group" => self.group.to_string())
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(MetadataError::Internal("a proposed command had no outcome".into())),
            Err(_) => {
                // The command may still commit later; its outcome then goes nowhere.
                self.proposals.forget(id);
                Err(no_quorum())
            }
        }
    }

    /// Waits until this replica may answer a read with everything committed before the call: it
    /// is the leader (a majority confirmed it just now) and has applied up to its commit index.
    pub async fn read_barrier(&self) -> Result<(), MetadataError> {
        self.reads.wait(&self.raft).await
    }

    /// Whether this replica leads now (background workers run only on the leader).
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader && metrics.current_leader == Some(self.id)
    }

    /// The leader's URL as far as this replica knows.
    /// `NotLeader` (with the leader's address when known) unless this replica leads.
    pub(crate) fn must_lead(&self) -> Result<(), MetadataError> {
        if self.is_leader() {
            return Ok(());
        }
        Err(MetadataError::NotLeader { leader: self.leader_address() })
    }

    pub fn leader_address(&self) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        metrics.membership_config.membership().get_node(&leader).map(|n| n.addr.clone())
    }

    /// Fires whenever this replica becomes or stops being the leader.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(self.is_leader());
        let mut metrics = self.raft.metrics();
        let id = self.id;
        tokio::spawn(async move {
            while metrics.changed().await.is_ok() {
                let leading = {
                    let m = metrics.borrow();
                    m.state == ServerState::Leader && m.current_leader == Some(id)
                };
                tx.send_if_modified(|current| std::mem::replace(current, leading) != leading);
                if tx.is_closed() {
                    return;
                }
            }
        });
        rx
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn group(&self) -> u64 {
        self.group
    }

    /// The voters (id, URL) of this replica's current membership (the last one it knows).
    pub fn voters(&self) -> Vec<(NodeId, String)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|node| (id, node.addr.clone()))).collect()
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Whether `node_id` is a voter of the group, and whether it is a member at all (voter or
    /// learner), in the membership this replica knows.
    fn membership_of(&self, node_id: NodeId) -> (bool, bool) {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        (membership.voter_ids().any(|id| id == node_id), membership.get_node(&node_id).is_some())
    }

    /// Adds `node` as a learner, waits until it has caught up, then makes it a voter. Nothing when
    /// it is a voter already (a move resumed by group 0's next leader asks again).
    pub(crate) async fn add_voter(&self, node_id: NodeId, address: &str) -> Result<(), MetadataError> {
        let _one_at_a_time = self.membership_changes.lock().await;
        if self.is_leader() && self.membership_of(node_id).0 {
            return Ok(());
        }
        let not_leader =
            |e: &dyn std::fmt::Display| MetadataError::Unavailable(format!("adding replica {node_id}: {e}"));
        let added = self.raft.add_learner(node_id, BasicNode::new(address), true).await;
        if let Err(e) = added {
            return Err(match e.forward_to_leader::<BasicNode>() {
                Some(f) => MetadataError::NotLeader { leader: f.leader_node.as_ref().map(|n| n.addr.clone()) },
                None => not_leader(&e),
            });
        }
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
        self.raft.change_membership(change, false).await.map_err(|e| not_leader(&e))?;
        Ok(())
    }

    /// Removes `node_id` from the voters and the group; each step only if still needed (a move
    /// resumed by group 0's next leader asks again).
    pub(crate) async fn remove(&self, node_id: NodeId) -> Result<(), MetadataError> {
        let _one_at_a_time = self.membership_changes.lock().await;
        let error = |e: &dyn std::fmt::Display| MetadataError::Unavailable(format!("removing replica {node_id}: {e}"));
        if self.membership_of(node_id).0 {
            let voters = ChangeMembers::RemoveVoters(BTreeSet::from([node_id]));
            self.raft.change_membership(voters, false).await.map_err(|e| error(&e))?;
        }
        // A leader that removed itself has stepped down; without `retain` the node is gone anyway.
        if self.is_leader() && self.membership_of(node_id).1 {
            let nodes = ChangeMembers::RemoveNodes(BTreeSet::from([node_id]));
            self.raft.change_membership(nodes, false).await.map_err(|e| error(&e))?;
        }
        Ok(())
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::error!(error = %e, "raft did not shut down cleanly");
        }
    }
}

/// Raft's own figures as metrics, whenever they change: term, role, log and apply positions, and
/// on the leader each replica's lag in entries.
async fn publish_metrics(mut changes: watch::Receiver<openraft::RaftMetrics<NodeId, BasicNode>>, group: u64) {
    let group = group.to_string();
    loop {
        {
            let m = changes.borrow_and_update();
            let leading = m.state == ServerState::Leader;
            let last = m.last_log_index.unwrap_or(0);
            metrics::gauge!("coffer_metadata_raft_term", "group" => group.clone()).set(m.current_term as f64);
            metrics::gauge!("coffer_metadata_raft_leader", "group" => group.clone()).set(if leading {
                1.0
            } else {
                0.0
            });
            metrics::gauge!("coffer_metadata_raft_last_log_index", "group" => group.clone()).set(last as f64);
            let applied = m.last_applied.map_or(0, |l| l.index);
            metrics::gauge!("coffer_metadata_raft_applied_index", "group" => group.clone()).set(applied as f64);
            metrics::gauge!("coffer_metadata_raft_apply_lag_entries", "group" => group.clone())
                .set(last.saturating_sub(applied) as f64);
            metrics::gauge!("coffer_metadata_raft_snapshot_index", "group" => group.clone())
                .set(m.snapshot.map_or(0, |l| l.index) as f64);
            for (replica, matched) in m.replication.iter().flatten() {
                let lag = last.saturating_sub(matched.map_or(0, |l| l.index));
                let labels = [("group", group.clone()), ("replica", replica.to_string())];
                metrics::gauge!("coffer_metadata_raft_replication_lag_entries", &labels).set(lag as f64);
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}
