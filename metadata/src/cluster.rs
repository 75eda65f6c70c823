//! The cluster map: every blobnode ever registered (persisted) and its liveness (in memory only:
//! a node counts as alive once it has heartbeated to this process within the node timeout).

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use coffer_proto::pb::metadata::{DiskState, NodeAdmin, NodeInfo, NodeStatus};

/// (node id, disk id).
pub type ShardLocationRef = (String, String);

/// Disk figures change with every heartbeat; storing them this often keeps the stored map fresh
/// without one write per heartbeat.
const PERSIST_FIGURES_EVERY: Duration = Duration::from_secs(60);

struct NodeEntry {
    info: NodeInfo,
    last_heartbeat: Option<(Instant, i64)>,
    /// What is stored, and when it was stored by this process.
    stored: Option<(NodeInfo, Option<Instant>)>,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, NodeEntry>,
    /// The operator's wishes; nodes not here are active.
    admin: BTreeMap<String, NodeAdmin>,
    /// Bumped whenever a node's address changes, so the collector refreshes its channels only then.
    addresses_version: u64,
    /// Silence is counted from here for nodes that have not heartbeated to this process yet, so a
    /// restarted (or newly leading) metadata service does not declare every node lost at once.
    started: Option<Instant>,
}

pub struct Cluster {
    node_timeout: Duration,
    state: RwLock<State>,
}

/// One disk as repair sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskView {
    pub node_id: String,
    pub disk_id: String,
    /// Takes new shards (placement and repair targets).
    pub usable: bool,
    /// Its shards must be rebuilt elsewhere: the node has been silent past the grace period, or it
    /// reports the disk missing or failing.
    pub lost: bool,
    /// The node is being drained: its shards move elsewhere while it still serves them.
    pub draining: bool,
}

/// What the collector may do about one shard location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardTarget {
    /// The node is alive and has the disk: call it.
    Reachable,
    /// The node is alive and no longer lists the disk: the disk and its shards are gone.
    DiskGone,
    /// Dead or never registered: try again later.
    Unreachable,
}

/// Address, disk set and health: what placement and the collector depend on.
fn same_structure(a: &NodeInfo, b: &NodeInfo) -> bool {
    a.address == b.address
        && a.disks.len() == b.disks.len()
        && a.disks
            .iter()
            .zip(&b.disks)
            .all(|(x, y)| x.disk_id == y.disk_id && x.path == y.path && x.healthy == y.healthy)
}

impl Cluster {
    pub fn new(node_timeout: Duration, stored: Vec<NodeInfo>, admin: Vec<(String, NodeAdmin)>) -> Cluster {
        Cluster::starting_at(node_timeout, stored, admin, Instant::now())
    }

    pub fn starting_at(
        node_timeout: Duration,
        stored: Vec<NodeInfo>,
        admin: Vec<(String, NodeAdmin)>,
        started: Instant,
    ) -> Cluster {
        let mut state = State::default();
        for info in stored {
            let entry = NodeEntry { info: info.clone(), last_heartbeat: None, stored: Some((info, None)) };
            state.nodes.insert(entry.info.node_id.clone(), entry);
        }
        state.admin = admin.into_iter().filter(|(_, a)| *a != NodeAdmin::Active).collect();
        state.started = Some(started);
        Cluster { node_timeout, state: RwLock::new(state) }
    }

    /// This replica became the metadata leader: nodes and admin states changed by commands it
    /// applied as a follower are taken from the database again. Heartbeats went to the old leader,
    /// so every stored node is presumed alive as of now (it stops being so after `node_timeout`
    /// without a heartbeat here): otherwise no write could be placed until the blobnodes found the
    /// new leader, and a node that died meanwhile costs only shards recorded as unwritten.
    pub fn reload(&self, stored: Vec<NodeInfo>, admin: Vec<(String, NodeAdmin)>, now_unix_ms: i64) {
        let now = Instant::now();
        let fresh = Cluster::starting_at(self.node_timeout, stored, admin, now);
        let mut fresh = fresh.state.into_inner().unwrap_or_else(PoisonError::into_inner);
        let mut state = self.write();
        for (id, entry) in fresh.nodes.iter_mut() {
            match state.nodes.get(id).and_then(|old| old.last_heartbeat.map(|h| (h, old.info.clone()))) {
                Some((seen, info)) => {
                    entry.last_heartbeat = Some(seen);
                    entry.info = info;
                }
                None => entry.last_heartbeat = Some((now, now_unix_ms)),
            }
        }
        fresh.addresses_version = state.addresses_version + 1;
        *state = fresh;
    }

    /// A range group's copy of group 0's map (`cluster_feed`): group 0 hears the heartbeats, so its
    /// judgement of liveness is taken as it is. Each node's last heartbeat is placed `now` minus
    /// its age by group 0's clock — an alive node no older than the timeout, so it counts as alive
    /// here until the timeout passes without a newer copy; a dead one at least past it.
    pub fn mirror(&self, nodes: Vec<NodeStatus>, now: Instant, now_unix_ms: i64) {
        let mut state = self.write();
        let mut mirrored = BTreeMap::new();
        let mut admin = BTreeMap::new();
        for status in nodes {
            let Some(info) = status.info else { continue };
            let heard_ms = status.last_heartbeat_unix_ms;
            let age = Duration::from_millis(u64::try_from(now_unix_ms.saturating_sub(heard_ms)).unwrap_or(0));
            let age = if status.alive {
                age.min(self.node_timeout)
            } else {
                age.max(self.node_timeout + Duration::from_millis(1))
            };
            let last_heartbeat =
                if status.alive || heard_ms > 0 { now.checked_sub(age).map(|at| (at, heard_ms)) } else { None };
            let node_admin = NodeAdmin::try_from(status.admin).unwrap_or_default();
            if node_admin != NodeAdmin::Active {
                admin.insert(info.node_id.clone(), node_admin);
            }
            let entry = NodeEntry { info: info.clone(), last_heartbeat, stored: Some((info, None)) };
            mirrored.insert(entry.info.node_id.clone(), entry);
        }
        let moved = mirrored.len() != state.nodes.len()
            || mirrored
                .iter()
                .any(|(id, entry)| state.nodes.get(id).is_none_or(|old| old.info.address != entry.info.address));
        if moved {
            state.addresses_version += 1;
        }
        // Group 0's map forgets a node only when it is removed (`RemoveNode`), and then lists it no
        // more: a node that left the copy, or was removed here before, stays removed, so its shards
        // count as gone for this group's collector too.
        let gone = state.nodes.keys().filter(|id| !mirrored.contains_key(*id)).cloned();
        let removed_before = state.admin.iter().filter(|(_, a)| **a == NodeAdmin::Removed).map(|(id, _)| id.clone());
        for id in gone.chain(removed_before).collect::<Vec<_>>() {
            if !mirrored.contains_key(&id) {
                admin.insert(id, NodeAdmin::Removed);
            }
        }
        state.nodes = mirrored;
        state.admin = admin;
    }

    pub fn set_admin(&self, node_id: &str, admin: NodeAdmin) {
        let mut state = self.write();
        if admin == NodeAdmin::Active {
            state.admin.remove(node_id);
        } else {
            state.admin.insert(node_id.to_string(), admin);
        }
    }

    pub fn admin(&self, node_id: &str) -> NodeAdmin {
        self.read().admin.get(node_id).copied().unwrap_or_default()
    }

    pub fn knows(&self, node_id: &str) -> bool {
        self.read().nodes.contains_key(node_id)
    }

    /// Nodes that take new shards: alive and not being drained.
    pub fn placeable_nodes(&self, now: Instant) -> Vec<NodeInfo> {
        let state = self.read();
        state
            .nodes
            .values()
            .filter(|e| self.alive(e, now) && !state.admin.contains_key(&e.info.node_id))
            .map(|e| e.info.clone())
            .collect()
    }

    /// Disks of nodes that are not alive, as a last resort for placement (see `placement::place`).
    pub fn down_disks(&self, now: Instant) -> Vec<ShardLocationRef> {
        let state = self.read();
        state
            .nodes
            .values()
            .filter(|e| !self.alive(e, now) && !state.admin.contains_key(&e.info.node_id))
            .flat_map(|e| e.info.disks.iter().map(|d| (e.info.node_id.clone(), d.disk_id.clone())))
            .collect()
    }

    /// Every known disk with what repair should do about it, given `grace`.
    pub fn disk_views(&self, now: Instant, grace: Duration) -> Vec<DiskView> {
        let state = self.read();
        let mut out = Vec::new();
        for entry in state.nodes.values() {
            let alive = self.alive(entry, now);
            let silent_since = entry.last_heartbeat.map_or(state.started.unwrap_or(now), |(at, _)| at);
            let node_lost = !alive && now.saturating_duration_since(silent_since) > grace;
            let admin = state.admin.get(&entry.info.node_id).copied().unwrap_or_default();
            for disk in &entry.info.disks {
                let failing = matches!(
                    DiskState::try_from(disk.state).unwrap_or_default(),
                    DiskState::Missing | DiskState::Faulty
                );
                out.push(DiskView {
                    node_id: entry.info.node_id.clone(),
                    disk_id: disk.disk_id.clone(),
                    usable: alive && admin == NodeAdmin::Active && crate::placement::usable(disk),
                    lost: node_lost || (alive && failing),
                    draining: admin != NodeAdmin::Active,
                });
            }
        }
        out
    }

    // The lock guards plain data with no invariant a panicking writer could break halfway.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn alive(&self, entry: &NodeEntry, now: Instant) -> bool {
        entry.last_heartbeat.is_some_and(|(at, _)| now.saturating_duration_since(at) <= self.node_timeout)
    }

    /// Records a registration or heartbeat. Returns the info to store when the stored copy is stale
    /// (or `always_store`); call [`Cluster::stored`] once it is.
    pub fn observe(&self, info: NodeInfo, now: Instant, now_unix_ms: i64, always_store: bool) -> Option<NodeInfo> {
        let mut state = self.write();
        let State { nodes, addresses_version, .. } = &mut *state;
        let entry = nodes.entry(info.node_id.clone()).or_insert_with(|| NodeEntry {
            info: info.clone(),
            last_heartbeat: None,
            stored: None,
        });
        if entry.info.address != info.address || entry.stored.is_none() {
            *addresses_version += 1;
        }
        entry.info = info;
        entry.last_heartbeat = Some((now, now_unix_ms));
        let stale = match &entry.stored {
            None => true,
            Some((stored, at)) => {
                !same_structure(stored, &entry.info)
                    || at.is_none_or(|at| now.saturating_duration_since(at) >= PERSIST_FIGURES_EVERY)
            }
        };
        (stale || always_store).then(|| entry.info.clone())
    }

    pub fn stored(&self, info: NodeInfo, now: Instant) {
        if let Some(entry) = self.write().nodes.get_mut(&info.node_id) {
            entry.stored = Some((info, Some(now)));
        }
    }

    /// Every known node, by id.
    pub fn status(&self, now: Instant) -> Vec<NodeStatus> {
        let state = self.read();
        state
            .nodes
            .values()
            .map(|entry| NodeStatus {
                info: Some(entry.info.clone()),
                last_heartbeat_unix_ms: entry.last_heartbeat.map_or(0, |(_, ms)| ms),
                alive: self.alive(entry, now),
                admin: state.admin.get(&entry.info.node_id).copied().unwrap_or_default().into(),
            })
            .collect()
    }

    pub fn addresses_version(&self) -> u64 {
        self.read().addresses_version
    }

    pub fn addresses(&self) -> Vec<(String, String)> {
        self.read().nodes.values().map(|e| (e.info.node_id.clone(), e.info.address.clone())).collect()
    }

    /// Forgets a removed node; its shards count as gone from now on.
    pub fn remove(&self, node_id: &str) {
        let mut state = self.write();
        state.nodes.remove(node_id);
        state.admin.insert(node_id.to_string(), NodeAdmin::Removed);
        state.addresses_version += 1;
    }

    pub fn shard_target(&self, node_id: &str, disk_id: &str, now: Instant) -> ShardTarget {
        let state = self.read();
        let removed = state.admin.get(node_id) == Some(&NodeAdmin::Removed);
        match state.nodes.get(node_id) {
            Some(entry) if self.alive(entry, now) => {
                if entry.info.disks.iter().any(|d| d.disk_id == disk_id) {
                    ShardTarget::Reachable
                } else {
                    ShardTarget::DiskGone
                }
            }
            // A removed node's shards are written off; one that came back alive is still cleaned.
            _ if removed => ShardTarget::DiskGone,
            _ => ShardTarget::Unreachable,
        }
    }
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::DiskInfo;

    use super::*;

    fn info(id: &str, used: u64) -> NodeInfo {
        NodeInfo {
            node_id: id.into(),
            address: format!("http://{id}:9200"),
            disks: vec![DiskInfo {
                disk_id: "d0".into(),
                capacity_bytes: 100,
                used_bytes: used,
                healthy: true,
                ..Default::default()
            }],
        }
    }

    #[test]
    fn liveness_follows_heartbeats() {
        let start = Instant::now();
        let cluster = Cluster::new(Duration::from_secs(10), vec![info("stored", 0)], vec![]);
        assert!(cluster.placeable_nodes(start).is_empty(), "a stored node is dead until it heartbeats");
        cluster.observe(info("a", 0), start, 1_000, false);
        assert_eq!(cluster.placeable_nodes(start + Duration::from_secs(10)).len(), 1);
        assert!(cluster.placeable_nodes(start + Duration::from_secs(11)).is_empty());
        let status = cluster.status(start);
        assert_eq!(
            status.iter().map(|s| (s.alive, s.last_heartbeat_unix_ms)).collect::<Vec<_>>(),
            [(true, 1_000), (false, 0)]
        );
        assert_eq!(cluster.shard_target("a", "d0", start), ShardTarget::Reachable);
        assert_eq!(cluster.shard_target("a", "d9", start), ShardTarget::DiskGone);
        assert_eq!(cluster.shard_target("stored", "d0", start), ShardTarget::Unreachable);
        assert_eq!(cluster.shard_target("nope", "d0", start), ShardTarget::Unreachable);
    }

    #[test]
    fn a_mirror_takes_group_0s_liveness_and_removals() {
        let timeout = Duration::from_secs(10);
        let status = |id: &str, alive: bool, heard_ms: i64| NodeStatus {
            info: Some(info(id, 0)),
            last_heartbeat_unix_ms: heard_ms,
            alive,
            admin: NodeAdmin::Active.into(),
        };
        let mirror = Cluster::new(timeout, vec![], vec![]);
        let now = Instant::now();
        // Group 0's clock says "alive" 12 s after the heartbeat (a new leader's presumption): alive here too.
        mirror.mirror(
            vec![status("a", true, 88_000), status("b", false, 50_000), status("c", true, 99_000)],
            now,
            100_000,
        );
        let placeable =
            |at: Instant| -> Vec<String> { mirror.placeable_nodes(at).into_iter().map(|n| n.node_id).collect() };
        assert_eq!(placeable(now), ["a", "c"]);
        assert_eq!(placeable(now + Duration::from_secs(5)), ["c"], "a copy not refreshed ages like heartbeats");
        assert!(placeable(now + timeout + Duration::from_secs(1)).is_empty());
        assert_eq!(mirror.shard_target("b", "d0", now), ShardTarget::Unreachable);
        // A node that leaves group 0's map was removed: its shards are written off here too.
        let version = mirror.addresses_version();
        mirror.mirror(vec![status("a", true, 100_000), status("c", true, 100_000)], now, 100_000);
        assert_eq!(mirror.shard_target("b", "d0", now), ShardTarget::DiskGone);
        assert_eq!(mirror.admin("b"), NodeAdmin::Removed);
        assert!(mirror.addresses_version() > version);
        mirror.mirror(vec![status("a", true, 100_000)], now, 100_000);
        assert_eq!(mirror.admin("b"), NodeAdmin::Removed, "and stays removed");
        assert_eq!(mirror.admin("c"), NodeAdmin::Removed);
    }

    #[test]
    fn a_new_leader_presumes_stored_nodes_alive_for_one_timeout() {
        let start = Instant::now();
        let cluster = Cluster::new(Duration::from_secs(10), vec![info("seen", 0)], vec![]);
        cluster.observe(info("seen", 7), start, 1_000, false);
        cluster.reload(vec![info("seen", 0), info("applied-as-follower", 0)], vec![], 2_000);
        let placeable: Vec<String> = cluster.placeable_nodes(Instant::now()).into_iter().map(|n| n.node_id).collect();
        assert_eq!(placeable, ["applied-as-follower", "seen"]);
        let status = cluster.status(Instant::now());
        assert_eq!(status.iter().map(|s| s.last_heartbeat_unix_ms).collect::<Vec<_>>(), [2_000, 1_000]);
        assert_eq!(status[1].info.as_ref().map(|i| i.disks[0].used_bytes), Some(7), "heard figures are kept");
        assert!(cluster.placeable_nodes(Instant::now() + Duration::from_secs(11)).is_empty());
    }

    #[test]
    fn only_changes_and_old_figures_are_stored() {
        let start = Instant::now();
        let cluster = Cluster::new(Duration::from_secs(10), vec![], vec![]);
        let first = cluster.observe(info("a", 0), start, 0, false).expect("a new node is stored");
        cluster.stored(first, start);
        assert!(cluster.observe(info("a", 5), start + Duration::from_secs(1), 0, false).is_none());
        assert!(cluster.observe(info("a", 5), start, 0, true).is_some(), "registration always stores");
        let mut moved = info("a", 5);
        moved.address = "http://elsewhere".into();
        let version = cluster.addresses_version();
        let stale = cluster.observe(moved.clone(), start, 0, false).expect("a moved node is stored");
        assert!(cluster.addresses_version() > version);
        cluster.stored(stale, start);
        moved.disks[0].used_bytes = 6;
        assert!(cluster.observe(moved.clone(), start + Duration::from_secs(59), 0, false).is_none());
        assert!(cluster.observe(moved, start + PERSIST_FIGURES_EVERY, 0, false).is_some(), "figures age");
    }
}
