//! A range group's cluster map: a copy of group 0's (issue 11, step 1 "range groups stand alone";
//! see docs/design/metadata-sharding.md).
//!
//! Blobnodes register and heartbeat with group 0 only, so group 0 alone knows which nodes are
//! alive. A range group's leader places shards for its own keys, collects its own garbage and
//! plans its own repairs from a [`Cluster`] that mirrors group 0's map, read with `GetClusterMap`
//! when the copy is older than [`MAX_AGE`] and someone needs it (placement, a collector pass): no
//! calls while the group is idle, at most one per [`MAX_AGE`] while it is busy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::GetClusterMapRequest;

use crate::cluster::Cluster;
use crate::error::MetadataError;

/// How old the copy may be when it is used. Liveness changes over seconds (a node is dead after
/// `--node-timeout`, 10 s by default), so a second adds little to what group 0 itself lags.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// One fetch may take this long; past it the copy in hand is used (or the caller is refused).
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ClusterFeed {
    cluster: Arc<Cluster>,
    /// Routed to group 0 (`GetClusterMap` is a directory call).
    directory: MetadataClient,
    /// When the copy was last fetched, or a fetch last failed (so a failing group 0 is asked at
    /// most once per [`MAX_AGE`]); whether a copy was ever fetched. Held across a fetch: one at a
    /// time, and callers arriving meanwhile use its result.
    state: tokio::sync::Mutex<FeedState>,
}

#[derive(Default)]
struct FeedState {
    tried_at: Option<Instant>,
    fetched: bool,
}

impl ClusterFeed {
    /// Mirrors group 0's map, reached through `voters` (group 0's replica URLs), into `cluster`.
    pub fn new(cluster: Arc<Cluster>, voters: &[String], config: &ClientConfig) -> Result<ClusterFeed, MetadataError> {
        let config = ClientConfig { timeout: FETCH_TIMEOUT, ..config.clone() };
        let directory = MetadataClient::connect(voters, &config)
            .map_err(|e| MetadataError::Internal(format!("a client of group 0 for its cluster map: {e}")))?;
        Ok(ClusterFeed { cluster, directory, state: tokio::sync::Mutex::default() })
    }

    /// Makes the copy at most [`MAX_AGE`] old, if group 0 answers. A failed fetch keeps the copy in
    /// hand, whose nodes die by the node timeout as heartbeats would stop: placement then finds
    /// fewer nodes rather than wrong ones. Unavailable only when no copy was ever fetched.
    pub async fn refresh(&self) -> Result<(), MetadataError> {
        let mut state = self.state.lock().await;
        if state.tried_at.is_some_and(|at| at.elapsed() < MAX_AGE) {
            return self.usable(&state);
        }
        state.tried_at = Some(Instant::now());
        match self.directory.rpc().get_cluster_map(GetClusterMapRequest {}).await {
            Ok(map) => {
                self.cluster.mirror(map.into_inner().nodes, Instant::now(), crate::now_unix_ms());
                state.fetched = true;
                Ok(())
            }
            Err(status) => {
                tracing::warn!(error = %status.message(), "cannot read group 0's cluster map; using the copy in hand");
                self.usable(&state)
            }
        }
    }

    fn usable(&self, state: &FeedState) -> Result<(), MetadataError> {
        if state.fetched {
            Ok(())
        } else {
            Err(MetadataError::Unavailable("this range group has not read group 0's cluster map yet; retry".into()))
        }
    }
}
