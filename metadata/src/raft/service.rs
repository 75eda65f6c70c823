//! The `MetadataRaft` gRPC service: Raft messages from the other replicas, and the membership and
//! status calls of operators and joining replicas.

use std::time::Duration;

use coffer_proto::metadata_client::{ClientConfig, NOT_LEADER_HEADER, lazy_channel};
use coffer_proto::pb::metadata::metadata_raft_client::MetadataRaftClient;
use coffer_proto::pb::metadata::metadata_raft_server::MetadataRaft;
use coffer_proto::pb::metadata::{
    CreateGroupRequest, CreateGroupResponse, FenceBucketRequest, FenceBucketResponse, JoinRequest, JoinResponse,
    LeaveRequest, LeaveResponse, MoveGroupRequest, MoveGroupResponse, RaftPayload, RaftReplica, RaftStatusRequest,
    RaftStatusResponse, RangeGroupEntry, RangeTableRequest, RangeTableResponse, SetBucketStateRequest,
    SetBucketStateResponse, SplitGroupRequest, SplitGroupResponse, SplitRangeRequest, SplitRangeResponse,
};
use openraft::ServerState;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest};
use tonic::{Request, Response, Status};

use super::Replication;
use super::log_store::{decode, encode};
use super::stale_reads::QUORUM_AGE_HEADER;
use super::types::TypeConfig;
use crate::error::MetadataError;

pub struct RaftService {
    replication: Replication,
    /// A range group's database, whose range it reports (none for group 0).
    range: Option<std::sync::Arc<crate::store::Store>>,
    /// Group 0's service only: the range groups open on this process, for `Status`.
    groups: Option<crate::groups::Groups>,
    /// Group 0's service only: carries out `SplitGroup`.
    splits: Option<std::sync::Arc<crate::split_driver::SplitDriver>>,
    /// Group 0's service only: carries out `MoveGroup`.
    moves: Option<std::sync::Arc<crate::move_driver::MoveDriver>>,
}

impl RaftService {
    pub fn new(replication: Replication) -> RaftService {
        RaftService { replication, range: None, groups: None, splits: None, moves: None }
    }

    pub fn with_range(mut self, store: std::sync::Arc<crate::store::Store>) -> RaftService {
        self.range = Some(store);
        self
    }

    pub fn with_groups(mut self, groups: Option<crate::groups::Groups>) -> RaftService {
        self.groups = groups;
        self
    }

    pub fn with_splits(mut self, splits: std::sync::Arc<crate::split_driver::SplitDriver>) -> RaftService {
        self.splits = Some(splits);
        self
    }

    pub fn with_moves(mut self, moves: std::sync::Arc<crate::move_driver::MoveDriver>) -> RaftService {
        self.moves = Some(moves);
        self
    }
}

fn bad_payload(e: postcard::Error) -> Status {
    Status::invalid_argument(format!("undecodable raft message: {e}"))
}

fn answer<T: serde::Serialize>(result: &T) -> Result<Response<RaftPayload>, Status> {
    let payload = encode(result).map_err(|e| Status::internal(format!("cannot encode a raft answer: {e}")))?;
    Ok(Response::new(RaftPayload { payload }))
}

#[tonic::async_trait]
impl MetadataRaft for RaftService {
    async fn append_entries(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        // Before anything else: the leader's proof is at most this old when it arrives.
        let arrived = std::time::Instant::now();
        let quorum_age_ms =
            request.metadata().get(QUORUM_AGE_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&request.into_inner().payload).map_err(bad_payload)?;
        let (vote, commit) = (rpc.vote, rpc.leader_commit);
        let result = self.replication.raft().append_entries(rpc).await;
        // Accepted (so from the leader this replica follows now) and stamped: a proof for stale reads.
        let accepted = matches!(result, Ok(AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)));
        if let (true, Some(age)) = (accepted, quorum_age_ms) {
            self.replication.freshness.heard_from_leader(arrived, age, &vote, commit);
        }
        answer(&result)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode(&request.into_inner().payload).map_err(bad_payload)?;
        answer(&self.replication.raft().vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(&request.into_inner().payload).map_err(bad_payload)?;
        if !rpc.done {
            return answer(&self.replication.raft().install_snapshot(rpc).await);
        }
        // The last chunk installs the snapshot, and openraft answers only once it is installed. Its
        // own task, holding the guard throughout: the leader may give up on this call (dropping
        // this handler) while the install goes on, and stale reads must not overlap it.
        let guard = self.replication.freshness.installing();
        let raft = self.replication.raft().clone();
        let installed = tokio::spawn(async move {
            let result = raft.install_snapshot(rpc).await;
            drop(guard);
            result
        })
        .await
        .map_err(|e| Status::internal(format!("the snapshot install task failed: {e}")))?;
        answer(&installed)
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let JoinRequest { node_id, address } = request.into_inner();
        if address.is_empty() || node_id == 0 {
            return Err(MetadataError::InvalidArgument("a joining replica needs an id and an address".into()).into());
        }
        self.replication.must_lead()?;
        tracing::info!(node_id, %address, "adding a metadata replica");
        self.replication.add_voter(node_id, &address).await?;
        Ok(Response::new(JoinResponse { leader_id: self.replication.id() }))
    }

    async fn leave(&self, request: Request<LeaveRequest>) -> Result<Response<LeaveResponse>, Status> {
        let node_id = request.into_inner().node_id;
        self.replication.must_lead()?;
        tracing::info!(node_id, "removing a metadata replica");
        self.replication.remove(node_id).await?;
        Ok(Response::new(LeaveResponse {}))
    }

    async fn status(&self, _: Request<RaftStatusRequest>) -> Result<Response<RaftStatusResponse>, Status> {
        let range = self.range.as_ref().and_then(|store| store.range());
        let mut answer = status(&self.replication, range.as_deref());
        if let Some(groups) = &self.groups {
            answer.groups = groups
                .all()
                .iter()
                .map(|(_, group)| status(&group.replication, group.descriptor().as_deref()))
                .collect();
        }
        Ok(Response::new(answer))
    }

    async fn create_group(
        &self,
        request: Request<CreateGroupRequest>,
    ) -> Result<Response<CreateGroupResponse>, Status> {
        let CreateGroupRequest { group, range } = request.into_inner();
        if self.replication.group() != 0 {
            return Err(MetadataError::InvalidArgument("range groups are created through group 0".into()).into());
        }
        let range = crate::range::Range::from_pb(&range.unwrap_or_default());
        range.validate()?;
        self.replication.must_lead()?;
        // Decided here, once, and carried by the command: every replica starts the group with
        // exactly these voters, whatever its own view of group 0's membership when it applies.
        let voters = self.replication.voters();
        let ids = voters.iter().map(|(id, _)| *id).collect();
        tracing::info!(group, %range, ?ids, "creating a metadata range group");
        self.replication.submit(crate::command::Command::CreateRangeGroup { group, range, voters }).await?;
        Ok(Response::new(CreateGroupResponse { voters: ids }))
    }

    async fn set_bucket_state(
        &self,
        request: Request<SetBucketStateRequest>,
    ) -> Result<Response<SetBucketStateResponse>, Status> {
        let SetBucketStateRequest { bucket, record, deleted, generation } = request.into_inner();
        if self.replication.group() == 0 {
            return Err(
                MetadataError::InvalidArgument("bucket state is set in range groups, not group 0".into()).into()
            );
        }
        if !deleted && record.as_ref().is_none_or(|r| r.name != bucket) {
            return Err(MetadataError::InvalidArgument(format!("no record of bucket {bucket}")).into());
        }
        self.replication.must_lead()?;
        let command =
            crate::command::Command::SetBucketState { bucket, record: record.unwrap_or_default(), deleted, generation };
        self.replication.submit(command).await?;
        Ok(Response::new(SetBucketStateResponse {}))
    }

    async fn fence_bucket(
        &self,
        request: Request<FenceBucketRequest>,
    ) -> Result<Response<FenceBucketResponse>, Status> {
        let FenceBucketRequest { bucket, lift } = request.into_inner();
        if self.replication.group() == 0 {
            return Err(MetadataError::InvalidArgument("buckets are fenced in range groups, not group 0".into()).into());
        }
        self.replication.must_lead()?;
        let holds =
            self.replication.submit(crate::command::Command::FenceBucket { bucket, lift }).await?.into_existed()?;
        Ok(Response::new(FenceBucketResponse { empty: !holds }))
    }

    async fn split_group(&self, request: Request<SplitGroupRequest>) -> Result<Response<SplitGroupResponse>, Status> {
        let SplitGroupRequest { group, at } = request.into_inner();
        let Some(splits) = self.splits.as_ref().filter(|_| self.replication.group() == 0) else {
            return Err(MetadataError::InvalidArgument("range groups are split through group 0".into()).into());
        };
        let at = at.unwrap_or_default();
        let child = splits.split(group, (at.bucket, at.key)).await?;
        Ok(Response::new(SplitGroupResponse { child }))
    }

    async fn move_group(&self, request: Request<MoveGroupRequest>) -> Result<Response<MoveGroupResponse>, Status> {
        let MoveGroupRequest { group, from, to } = request.into_inner();
        let Some(moves) = self.moves.as_ref().filter(|_| self.replication.group() == 0) else {
            return Err(MetadataError::InvalidArgument("range groups are moved through group 0".into()).into());
        };
        let some = |id: u64| (id != 0).then_some(id);
        moves.move_replica(group, some(from), some(to)).await?;
        Ok(Response::new(MoveGroupResponse {}))
    }

    async fn split_range(&self, request: Request<SplitRangeRequest>) -> Result<Response<SplitRangeResponse>, Status> {
        let SplitRangeRequest { at, child, epoch, voters } = request.into_inner();
        if self.replication.group() == 0 {
            return Err(MetadataError::InvalidArgument("group 0 has no range to split".into()).into());
        }
        self.replication.must_lead()?;
        let at = at.unwrap_or_default();
        let voters = voters.into_iter().map(|v| (v.node_id, v.address)).collect();
        let split = crate::command::Command::SplitRange { at_bucket: at.bucket, at_key: at.key, child, epoch, voters };
        self.replication.submit(split).await?;
        Ok(Response::new(SplitRangeResponse {}))
    }

    async fn range_table(&self, _: Request<RangeTableRequest>) -> Result<Response<RangeTableResponse>, Status> {
        if self.replication.group() != 0 {
            return Err(MetadataError::InvalidArgument("the range table is group 0's".into()).into());
        }
        // Linearizable: a client that refreshes after a WrongRange sees every group created
        // before it asked. Followers answer NotLeader (the barrier's refusal).
        self.replication.read_barrier().await?;
        let Some(groups) = &self.groups else {
            return Ok(Response::new(RangeTableResponse::default()));
        };
        let membership = self.replication.voters();
        let records = groups.records().await?;
        let groups = records.into_iter().map(|record| table_entry(record, &membership)).collect();
        Ok(Response::new(RangeTableResponse { groups }))
    }
}

/// A range group's entry in the range table: its replicas are its voters' addresses in group 0's
/// membership now (a replica keeps its node id across groups), else as recorded at creation.
fn table_entry(record: crate::range::GroupRecord, membership: &[(u64, String)]) -> RangeGroupEntry {
    let replicas = record
        .voters
        .iter()
        .map(|(id, recorded)| {
            membership.iter().find(|(voter, _)| voter == id).map_or_else(|| recorded.clone(), |(_, url)| url.clone())
        })
        .collect();
    RangeGroupEntry {
        group: record.group,
        range: Some(record.descriptor.range.to_pb(record.descriptor.epoch)),
        replicas,
    }
}

fn status(replication: &Replication, range: Option<&crate::range::Descriptor>) -> RaftStatusResponse {
    let metrics = replication.raft().metrics().borrow().clone();
    let state = match metrics.state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    };
    let membership = metrics.membership_config.membership();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let matched = metrics.replication.clone().unwrap_or_default();
    let replicas = membership
        .nodes()
        .map(|(id, node)| RaftReplica {
            node_id: *id,
            address: node.addr.clone(),
            voter: voters.contains(id),
            matched_index: matched.get(id).copied().flatten().map_or(0, |l| l.index),
        })
        .collect();
    let leader_address = metrics
        .current_leader
        .and_then(|leader| membership.get_node(&leader).map(|n| n.addr.clone()))
        .unwrap_or_default();
    RaftStatusResponse {
        node_id: metrics.id,
        address: replication.address().to_string(),
        state: state.into(),
        term: metrics.current_term,
        leader_id: metrics.current_leader.unwrap_or(0),
        leader_address,
        last_log_index: metrics.last_log_index.unwrap_or(0),
        applied_index: metrics.last_applied.map_or(0, |l| l.index),
        snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
        replicas,
        joint: membership.get_joint_config().len() > 1,
        group: replication.group(),
        range: range.map(|d| d.range.to_pb(d.epoch)),
        groups: Vec::new(),
    }
}

/// How long a joining replica keeps asking (the group may be electing a leader meanwhile).
const JOIN_DEADLINE: Duration = Duration::from_secs(120);
const JOIN_RETRY: Duration = Duration::from_millis(500);

/// Asks the group behind `seeds` to add this replica, following "not leader" answers.
/// Stops early once `is_voter` says the group already counts this replica as a voter (an earlier
/// answer may have been lost).
pub async fn join(
    seeds: &[String],
    node_id: u64,
    address: &str,
    config: &ClientConfig,
    is_voter: impl Fn() -> bool,
) -> Result<(), MetadataError> {
    let deadline = tokio::time::Instant::now() + JOIN_DEADLINE;
    let mut targets: Vec<String> = seeds.to_vec();
    let mut next = 0usize;
    loop {
        if is_voter() {
            tracing::info!(node_id, "this replica is a voter of the metadata group");
            return Ok(());
        }
        let target = targets[next % targets.len()].clone();
        let channel = lazy_channel(&target, config).map_err(|e| MetadataError::InvalidArgument(e.to_string()))?;
        let request = JoinRequest { node_id, address: address.to_string() };
        match MetadataRaftClient::new(channel).join(request).await {
            Ok(_) => {
                tracing::info!(node_id, via = %target, "joined the metadata group");
                return Ok(());
            }
            Err(status) => {
                let hint = status.metadata().get(NOT_LEADER_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                if !hint.is_empty() && !targets.iter().any(|t| t == hint) {
                    targets.push(hint.to_string());
                }
                next = match targets.iter().position(|t| t == hint) {
                    Some(leader) => leader,
                    None => next + 1,
                };
                if tokio::time::Instant::now() >= deadline {
                    return Err(MetadataError::Unavailable(format!("could not join the metadata group: {status}")));
                }
                tracing::info!(via = %target, error = %status.message(), "joining the metadata group: retrying");
                tokio::time::sleep(JOIN_RETRY).await;
            }
        }
    }
}
