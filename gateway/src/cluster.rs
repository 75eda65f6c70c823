//! The gateway's cached view of the cluster map: which blobnodes exist, where they listen, and
//! whether enough of them are alive to serve writes. Refreshed in the background; the gateway
//! keeps no durable state.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use coffer_proto::RemoteError;
use coffer_proto::blobnode_client::BlobnodePool;
use coffer_proto::metadata_client::MetadataClient;
use coffer_proto::pb::metadata::GetClusterMapRequest;
use tokio::sync::Mutex;

const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct ClusterView {
    metadata: MetadataClient,
    blobnodes: BlobnodePool,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    metadata_reachable: AtomicBool,
    live_disks: AtomicUsize,
    known_nodes: std::sync::RwLock<HashSet<String>>,
    /// Serialises refreshes so a burst of misses causes one call, not many.
    refreshing: Mutex<()>,
}

impl ClusterView {
    pub fn new(metadata: MetadataClient, blobnodes: BlobnodePool) -> Self {
        ClusterView { metadata, blobnodes, state: Arc::default() }
    }

    pub async fn refresh(&self) -> Result<(), RemoteError> {
        let _guard = self.state.refreshing.lock().await;
        let result = self.metadata.rpc().get_cluster_map(GetClusterMapRequest {}).await;
        let nodes = match result {
            Ok(response) => response.into_inner().nodes,
            Err(status) => {
                self.state.metadata_reachable.store(false, Ordering::Relaxed);
                return Err(status.into());
            }
        };
        self.state.metadata_reachable.store(true, Ordering::Relaxed);
        let live_disks = nodes
            .iter()
            .filter(|n| n.alive)
            .filter_map(|n| n.info.as_ref())
            .map(|info| info.disks.iter().filter(|d| d.healthy).count())
            .sum();
        self.state.live_disks.store(live_disks, Ordering::Relaxed);
        let addresses: Vec<(String, String)> =
            nodes.into_iter().filter_map(|n| n.info).map(|info| (info.node_id, info.address)).collect();
        if let Ok(mut known) = self.state.known_nodes.write() {
            *known = addresses.iter().map(|(id, _)| id.clone()).collect();
        }
        self.blobnodes.set_nodes(addresses);
        Ok(())
    }

    /// Makes sure every node in `node_ids` has a channel, refreshing the map once if not.
    pub async fn ensure_known<'a>(&self, node_ids: impl IntoIterator<Item = &'a str>) {
        let missing = {
            let Ok(known) = self.state.known_nodes.read() else {
                return;
            };
            node_ids.into_iter().any(|id| !known.contains(id))
        };
        if missing && let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "cluster map refresh failed");
        }
    }

    /// Ready when the metadata service answers and at least `disks_needed` disks are alive.
    pub fn is_ready(&self, disks_needed: usize) -> bool {
        self.state.metadata_reachable.load(Ordering::Relaxed)
            && self.state.live_disks.load(Ordering::Relaxed) >= disks_needed
    }

    /// Keeps the view fresh until the process ends.
    pub fn spawn_refresher(&self) -> tokio::task::JoinHandle<()> {
        let view = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = view.refresh().await {
                    tracing::debug!(error = %e, "cluster map refresh failed");
                }
            }
        })
    }
}
