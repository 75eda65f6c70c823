//! Group 0's leader carrying splits out (see `split` for the steps). Group 0's own keys split in one
//! command of group 0 (it is the directory as well as the parent). A range group's: reserve the child's id in
//! group 0, have the parent range group apply the split (`MetadataRaft.SplitRange`, addressed to
//! it, answered by its leader), record both halves in group 0. Every step is idempotent, and a
//! split reserved but not recorded is finished by whichever replica leads group 0 next
//! ([`SplitDriver::resume`]), so the parent's right half never stays without an owner in the
//! range table.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use coffer_proto::metadata_client::{ClientConfig, GROUP_HEADER, MetadataClient};
use coffer_proto::pb::metadata::{KeyBound, RaftReplica, SplitRangeRequest};
use tonic::Status;

use crate::command::Command;
use crate::error::MetadataError;
use crate::raft::Replication;
use crate::split_plan::PendingSplit;
use crate::store::Store;

/// How often group 0's leader looks for splits left pending (by a lost leader, or a parent that
/// did not answer).
const RESUME_EVERY: Duration = Duration::from_secs(5);

pub struct SplitDriver {
    directory: Arc<Store>,
    zero: Replication,
    config: ClientConfig,
    /// Over group 0's voters; calls addressed to a range group are routed by the range table.
    client: OnceLock<MetadataClient>,
    /// One split at a time on this process: a split and the resumption of a pending one must
    /// not pick ids or drive the same parent concurrently.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl SplitDriver {
    pub fn new(directory: Arc<Store>, zero: Replication, config: ClientConfig) -> SplitDriver {
        SplitDriver { directory, zero, config, client: OnceLock::new(), one_at_a_time: tokio::sync::Mutex::new(()) }
    }

    fn client(&self) -> Result<MetadataClient, Status> {
        if let Some(client) = self.client.get() {
            return Ok(client.clone());
        }
        let urls: Vec<String> = self.zero.voters().into_iter().map(|(_, url)| url).collect();
        let client = MetadataClient::connect(&urls, &self.config)?;
        Ok(self.client.get_or_init(|| client).clone())
    }

    /// Splits range group `group` at `at`: the new group owns `[at, end)`. Answers its id once
    /// both halves are recorded in group 0.
    pub async fn split(&self, group: u64, at: (String, String)) -> Result<u64, Status> {
        let _one = self.one_at_a_time.lock().await;
        self.zero.must_lead()?;
        let directory = self.directory.clone();
        let child =
            crate::store::blocking("split bookkeeping", move || crate::split_plan::next_group_id(&directory)).await?;
        let (at_bucket, at_key) = at;
        if group == 0 {
            // Group 0 is the directory: one command seeds the child and records it.
            let voters = self.zero.voters();
            self.zero
                .submit(Command::SplitRange {
                    at_bucket: at_bucket.clone(),
                    at_key: at_key.clone(),
                    child,
                    epoch: 0,
                    voters,
                })
                .await?;
            tracing::info!(child, %at_bucket, %at_key, "split group 0's keys off into a range group");
            return Ok(child);
        }
        self.zero.submit(Command::ReserveSplit { parent: group, child, at_bucket, at_key }).await?;
        let directory = self.directory.clone();
        let pending =
            crate::store::blocking("split bookkeeping", move || crate::split_plan::pending(&directory)).await?;
        let split = pending
            .into_iter()
            .find(|p| p.child == child)
            .ok_or_else(|| MetadataError::Internal(format!("the split into group {child} is not pending")))?;
        self.carry_out(&split).await?;
        tracing::info!(parent = group, child, at_bucket = %split.at_bucket, at_key = %split.at_key, "range group split");
        Ok(child)
    }

    /// Steps 2 and 3 of a reserved split.
    async fn carry_out(&self, split: &PendingSplit) -> Result<(), Status> {
        let request = SplitRangeRequest {
            at: Some(KeyBound { bucket: split.at_bucket.clone(), key: split.at_key.clone() }),
            child: split.child,
            epoch: split.epoch,
            voters: split
                .voters
                .iter()
                .map(|(id, url)| RaftReplica { node_id: *id, address: url.clone(), voter: true, matched_index: 0 })
                .collect(),
        };
        let mut request = tonic::Request::new(request);
        request.metadata_mut().insert(GROUP_HEADER, split.parent.into());
        self.client()?.raft().split_range(request).await?;
        self.zero.submit(Command::FinishSplit { child: split.child }).await?;
        Ok(())
    }

    /// While this replica leads group 0, finishes every pending split, every [`RESUME_EVERY`],
    /// until `stop` fires. A split that fails stays pending for the next round.
    pub async fn resume(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RESUME_EVERY) => {}
                _ = stop.changed() => return,
            }
            if !self.zero.is_leader() {
                continue;
            }
            let _one = self.one_at_a_time.lock().await;
            let directory = self.directory.clone();
            let pending =
                match crate::store::blocking("split bookkeeping", move || crate::split_plan::pending(&directory)).await
                {
                    Ok(pending) => pending,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the pending splits");
                        continue;
                    }
                };
            for split in pending {
                match self.carry_out(&split).await {
                    Ok(()) => tracing::info!(parent = split.parent, child = split.child, "finished a pending split"),
                    Err(e) => {
                        tracing::warn!(parent = split.parent, child = split.child, error = %e, "a pending split is not done yet")
                    }
                }
            }
        }
    }
}
