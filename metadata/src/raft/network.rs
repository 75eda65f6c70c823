//! Raft messages between replicas over gRPC (`MetadataRaft`): each request and each answer —
//! the remote's result, errors included — travels as one postcard-encoded payload.

use std::time::Duration;

use coffer_proto::metadata_client::{ClientConfig, GROUP_HEADER, lazy_channel};
use coffer_proto::pb::metadata::RaftPayload;
use coffer_proto::pb::metadata::metadata_raft_client::MetadataRaftClient;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::log_store::{decode, encode};
use super::stale_reads::{Freshness, QUORUM_AGE_HEADER};
use super::types::{NodeId, TypeConfig};
use coffer_proto::limits::MAX_MESSAGE_BYTES;

/// Builds one client per peer; channels connect lazily and reconnect by themselves.
#[derive(Clone)]
pub struct Network {
    pub config: ClientConfig,
    /// Stamped on AppendEntries, for followers' bounded-staleness reads.
    pub freshness: Freshness,
    /// Sent as `GROUP_HEADER` (not at all for group 0, as before range groups).
    pub group: u64,
}

pub struct Peer {
    target: NodeId,
    node: BasicNode,
    client: Result<MetadataRaftClient<Channel>, String>,
    freshness: Freshness,
    group: u64,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        let client = lazy_channel(&node.addr, &self.config)
            .map(|channel| {
                MetadataRaftClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES)
            })
            .map_err(|e| e.to_string());
        Peer { target, node: node.clone(), client, freshness: self.freshness.clone(), group: self.group }
    }
}

#[derive(Debug)]
struct Failure(String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

type Rpc = fn(
    MetadataRaftClient<Channel>,
    tonic::Request<RaftPayload>,
) -> futures::future::BoxFuture<'static, Result<tonic::Response<RaftPayload>, tonic::Status>>;

impl Peer {
    /// Sends `request` through `rpc` within the option's time and decodes the remote's result.
    /// `quorum_age_ms` goes along as [`QUORUM_AGE_HEADER`] when given.
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        request: &Req,
        ttl: Duration,
        quorum_age_ms: Option<u64>,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = self.client.clone().map_err(|e| RPCError::Unreachable(Unreachable::new(&Failure(e))))?;
        let payload = encode(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftPayload { payload });
        if let Some(age) = quorum_age_ms {
            request.metadata_mut().insert(QUORUM_AGE_HEADER, age.into());
        }
        if self.group != 0 {
            request.metadata_mut().insert(GROUP_HEADER, self.group.into());
        }
        let answer = match tokio::time::timeout(ttl, rpc(client, request)).await {
            Err(_) => return Err(RPCError::Unreachable(Unreachable::new(&Failure(format!("no answer in {ttl:?}"))))),
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)));
            }
            Ok(Err(status)) => return Err(RPCError::Network(NetworkError::new(&status))),
            Ok(Ok(answer)) => answer.into_inner(),
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&answer.payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        // Measured now, as the message leaves: the follower counts from its arrival.
        let quorum_age = self.freshness.quorum_age_ms();
        self.call(|mut c, p| Box::pin(async move { c.append_entries(p).await }), &rpc, option.hard_ttl(), quorum_age)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(|mut c, p| Box::pin(async move { c.install_snapshot(p).await }), &rpc, option.hard_ttl(), None).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(|mut c, p| Box::pin(async move { c.vote(p).await }), &rpc, option.hard_ttl(), None).await
    }
}
