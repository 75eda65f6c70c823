//! Group 0's leader carrying moves out (see `group_move` for the steps): note the move in group 0,
//! have the range group's leader add the joining replica and remove the leaving one
//! (`MetadataRaft.Join` / `Leave`, addressed to the group, both no-ops when already done), record
//! the new voters in group 0. A move noted but not recorded as done is finished by whichever
//! replica leads group 0 next ([`MoveDriver::resume`]).

use std::sync::Arc;
use std::time::Duration;

use coffer_proto::metadata_client::{ClientConfig, GROUP_HEADER, MetadataClient};
use coffer_proto::pb::metadata::{JoinRequest, LeaveRequest};
use tonic::Status;

use crate::command::Command;
use crate::error::MetadataError;
use crate::raft::Replication;
use crate::range::GroupRecord;
use crate::store::Store;

/// How often group 0's leader looks for moves left under way.
const RESUME_EVERY: Duration = Duration::from_secs(5);
/// The bound on one step at the range group: adding a replica waits until it has caught up,
/// which for a big group means sending a snapshot.
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

pub struct MoveDriver {
    directory: Arc<Store>,
    zero: Replication,
    config: ClientConfig,
    /// One move at a time on this process: a move and the resumption of one must not drive the
    /// same group concurrently.
    one_at_a_time: tokio::sync::Mutex<()>,
}

/// `message` for range group `group` (its replicas route it by the header).
fn addressed<T>(group: u64, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(GROUP_HEADER, group.into());
    request
}

impl MoveDriver {
    pub fn new(directory: Arc<Store>, zero: Replication, config: ClientConfig) -> MoveDriver {
        let config = ClientConfig { timeout: STEP_TIMEOUT, ..config };
        MoveDriver { directory, zero, config, one_at_a_time: tokio::sync::Mutex::new(()) }
    }

    /// Moves range group `group`'s replica on node `from` to node `to` (either may be absent:
    /// only add, only remove). `to` must be a replica of group 0, whose URL it keeps. Answers once
    /// group 0 records the new voters.
    pub async fn move_replica(&self, group: u64, from: Option<u64>, to: Option<u64>) -> Result<(), Status> {
        let _one = self.one_at_a_time.lock().await;
        self.zero.must_lead()?;
        let to = match to {
            None => None,
            Some(id) => {
                let url = self.zero.voters().into_iter().find(|(voter, _)| *voter == id).map(|(_, url)| url);
                let url = url.ok_or_else(|| {
                    MetadataError::InvalidArgument(format!(
                        "node {id} is not a voter of group 0: start it with --join first (`coffer admin meta status`)"
                    ))
                })?;
                Some((id, url))
            }
        };
        self.zero.submit(Command::MoveReplica { group, from, to }).await?;
        let record = self.record(group).await?;
        self.carry_out(&record).await?;
        tracing::info!(group, ?from, to = ?record.moving.and_then(|m| m.to), "moved a range group's replica");
        Ok(())
    }

    async fn record(&self, group: u64) -> Result<GroupRecord, MetadataError> {
        let directory = self.directory.clone();
        let records =
            crate::store::blocking("move bookkeeping", move || crate::range::group_records(&directory)).await?;
        records
            .into_iter()
            .find(|r| r.group == group)
            .ok_or_else(|| MetadataError::NoSuchEntity(format!("range group {group}")))
    }

    /// Steps 2 and 3 of a noted move; nothing when none is under way.
    async fn carry_out(&self, record: &GroupRecord) -> Result<(), Status> {
        let Some(moving) = &record.moving else {
            return Ok(());
        };
        // Over group 0's voters now (the joining process among them); calls addressed to the
        // range group are routed by the range table and follow its leader's hints.
        let urls: Vec<String> = self.zero.voters().into_iter().map(|(_, url)| url).collect();
        let client = MetadataClient::connect(&urls, &self.config)?;
        let group = record.group;
        if let Some((node_id, address)) = &moving.to {
            let join = JoinRequest { node_id: *node_id, address: address.clone() };
            client.raft().join(addressed(group, join)).await?;
        }
        if let Some(node_id) = moving.from {
            client.raft().leave(addressed(group, LeaveRequest { node_id })).await?;
        }
        self.zero.submit(Command::FinishMove { group: record.group }).await?;
        Ok(())
    }

    /// While this replica leads group 0, finishes every move under way, every [`RESUME_EVERY`],
    /// until `stop` fires. A move that fails stays under way for the next round.
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
            let records =
                match crate::store::blocking("move bookkeeping", move || crate::range::group_records(&directory)).await
                {
                    Ok(records) => records,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the range groups' records");
                        continue;
                    }
                };
            for record in records.iter().filter(|r| r.moving.is_some()) {
                match self.carry_out(record).await {
                    Ok(()) => tracing::info!(group = record.group, "finished a move under way"),
                    Err(e) => tracing::warn!(group = record.group, error = %e, "a move under way is not done yet"),
                }
            }
        }
    }
}
