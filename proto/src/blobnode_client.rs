//! The bulk-plane client: one channel per blobnode, each with its own health state.
//!
//! A shard must reach one specific node, so there is no balancing here; instead every node keeps
//! a count of consecutive transport failures that callers use to avoid nodes that look down.
//! These channels are never shared with metadata traffic, so shard streams cannot head-of-line
//! block control calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::error::{ErrorCode, RemoteError};
use crate::limits::{MAX_CHUNK_BYTES, MAX_MESSAGE_BYTES};
use crate::metadata_client::{ClientConfig, MetadataChannel, lazy_channel, limit};
use crate::pb::blobnode::blobnode_client::BlobnodeClient;
use crate::pb::blobnode::{
    DeleteDataRequest, GetShardRequest, PutShardHeader, PutShardRequest, ShardId, StatShardRequest, StatShardResponse,
    put_shard_request,
};

/// Consecutive transport failures after which a node counts as down.
const DOWN_AFTER_FAILURES: u32 = 3;
/// How long a down node is skipped before one call may probe it again.
const DOWN_PROBE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Healthy,
    /// Recent failures, still tried.
    Suspect,
    /// Several failures in a row; skipped until the probe interval passes.
    Down,
}

#[derive(Default)]
struct NodeHealth {
    consecutive_failures: AtomicU32,
    last_failure_unix_ms: AtomicU64,
}

impl NodeHealth {
    fn state(&self) -> NodeState {
        let failures = self.consecutive_failures.load(Ordering::Relaxed);
        if failures == 0 {
            return NodeState::Healthy;
        }
        if failures < DOWN_AFTER_FAILURES {
            return NodeState::Suspect;
        }
        let since_ms = now_unix_ms().saturating_sub(self.last_failure_unix_ms.load(Ordering::Relaxed));
        if since_ms < DOWN_PROBE_INTERVAL.as_millis() as u64 { NodeState::Down } else { NodeState::Suspect }
    }

    fn record<T>(&self, result: &Result<T, RemoteError>) {
        match result {
            Ok(_) => self.consecutive_failures.store(0, Ordering::Relaxed),
            // Only transport-level trouble says something about the node; a missing or corrupt
            // shard is a fact about one shard.
            Err(e) if e.code == ErrorCode::Unavailable => {
                self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
                self.last_failure_unix_ms.store(now_unix_ms(), Ordering::Relaxed);
            }
            Err(_) => self.consecutive_failures.store(0, Ordering::Relaxed),
        }
    }
}

struct NodeConn {
    address: String,
    client: BlobnodeClient<MetadataChannel>,
    health: NodeHealth,
}

/// Channels to every known blobnode, keyed by node id. Cheap to clone.
#[derive(Clone)]
pub struct BlobnodePool {
    config: ClientConfig,
    nodes: Arc<RwLock<HashMap<String, Arc<NodeConn>>>>,
}

impl BlobnodePool {
    pub fn new(config: ClientConfig) -> Self {
        BlobnodePool { config, nodes: Arc::default() }
    }

    /// Brings the pool in line with the cluster map: new nodes get a channel, moved nodes a new
    /// one, and nodes that left are dropped. Must be called inside a tokio runtime.
    pub fn set_nodes(&self, nodes: impl IntoIterator<Item = (String, String)>) {
        let wanted: HashMap<String, String> = nodes.into_iter().collect();
        let Ok(mut map) = self.nodes.write() else { return };
        map.retain(|id, conn| wanted.get(id) == Some(&conn.address));
        for (id, address) in wanted {
            if map.contains_key(&id) {
                continue;
            }
            match lazy_channel(&address, &self.config) {
                Ok(channel) => {
                    let client = BlobnodeClient::new(limit(channel, &self.config))
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES);
                    map.insert(id, Arc::new(NodeConn { address, client, health: NodeHealth::default() }));
                }
                Err(e) => tracing::warn!(node_id = %id, error = %e, "ignoring blobnode with a bad address"),
            }
        }
    }

    /// The health of a node as seen by this process; unknown nodes are down.
    pub fn state(&self, node_id: &str) -> NodeState {
        self.conn(node_id).map(|c| c.health.state()).unwrap_or(NodeState::Down)
    }

    fn conn(&self, node_id: &str) -> Result<Arc<NodeConn>, RemoteError> {
        let map =
            self.nodes.read().map_err(|_| RemoteError::new(ErrorCode::Internal, "blobnode pool lock poisoned"))?;
        map.get(node_id).cloned().ok_or_else(|| {
            RemoteError::new(ErrorCode::Unavailable, format!("blobnode {node_id} is not in the cluster map"))
        })
    }

    /// Streams one shard to a node in chunks of at most `MAX_CHUNK_BYTES`, without copying it;
    /// returns once the node has it on disk.
    pub async fn put_shard(&self, node_id: &str, disk_id: &str, id: ShardId, data: Bytes) -> Result<(), RemoteError> {
        let conn = self.conn(node_id)?;
        let header = PutShardHeader {
            disk_id: disk_id.to_string(),
            id: Some(id),
            length: data.len() as u64,
            crc32c: crc32c(&data),
        };
        let mut messages = Vec::with_capacity(1 + data.len().div_ceil(MAX_CHUNK_BYTES));
        messages.push(PutShardRequest { msg: Some(put_shard_request::Msg::Header(header)) });
        let mut offset = 0;
        while offset < data.len() {
            let end = (offset + MAX_CHUNK_BYTES).min(data.len());
            messages.push(PutShardRequest { msg: Some(put_shard_request::Msg::Chunk(data.slice(offset..end))) });
            offset = end;
        }
        let result =
            conn.client.clone().put_shard(futures::stream::iter(messages)).await.map(|_| ()).map_err(RemoteError::from);
        conn.health.record(&result);
        result
    }

    /// Reads `length` bytes of a shard from `offset` (0 = to the end), checking every chunk's
    /// checksum as it arrives.
    pub async fn get_shard(
        &self,
        node_id: &str,
        disk_id: &str,
        id: ShardId,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, RemoteError> {
        let conn = self.conn(node_id)?;
        let result = Self::read_stream(&conn, disk_id, id, offset, length).await;
        conn.health.record(&result);
        result
    }

    async fn read_stream(
        conn: &NodeConn,
        disk_id: &str,
        id: ShardId,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, RemoteError> {
        let request = GetShardRequest { disk_id: disk_id.to_string(), id: Some(id), offset, length };
        let mut stream = conn.client.clone().get_shard(request).await?.into_inner();
        // A shard of up to one chunk (the usual case: 4 MiB stripes over 4 data shards) is handed on as received;
        // only a longer one is gathered into one buffer.
        let mut first: Option<Bytes> = None;
        let mut gathered: Option<BytesMut> = None;
        let mut received: u64 = 0;
        while let Some(message) = stream.next().await {
            let chunk = message?;
            if crc32c(&chunk.data) != chunk.crc32c {
                return Err(RemoteError::new(ErrorCode::ChecksumMismatch, "shard chunk damaged in transit"));
            }
            received += chunk.data.len() as u64;
            if length != 0 && received > length {
                return Err(RemoteError::new(ErrorCode::Internal, "blobnode sent more bytes than asked for"));
            }
            match (&mut gathered, first.take()) {
                (Some(out), _) => out.extend_from_slice(&chunk.data),
                (None, None) => first = Some(chunk.data),
                (None, Some(earlier)) => {
                    let capacity = usize::try_from(length).unwrap_or(0).min(64 * MAX_CHUNK_BYTES);
                    let mut out = BytesMut::with_capacity(capacity.max(earlier.len() + chunk.data.len()));
                    out.extend_from_slice(&earlier);
                    out.extend_from_slice(&chunk.data);
                    gathered = Some(out);
                }
            }
        }
        if length != 0 && received != length {
            return Err(RemoteError::new(ErrorCode::Internal, format!("blobnode sent {received} of {length} bytes")));
        }
        Ok(match gathered {
            Some(out) => out.freeze(),
            None => first.unwrap_or_default(),
        })
    }

    pub async fn delete_data(&self, node_id: &str, disk_id: &str, data_id: &[u8]) -> Result<(), RemoteError> {
        let conn = self.conn(node_id)?;
        let request = DeleteDataRequest { disk_id: disk_id.to_string(), data_id: data_id.to_vec() };
        let result = conn.client.clone().delete_data(request).await.map(|_| ()).map_err(RemoteError::from);
        conn.health.record(&result);
        result
    }

    pub async fn stat_shard(
        &self,
        node_id: &str,
        disk_id: &str,
        id: ShardId,
    ) -> Result<StatShardResponse, RemoteError> {
        let conn = self.conn(node_id)?;
        let request = StatShardRequest { disk_id: disk_id.to_string(), id: Some(id) };
        let result = conn.client.clone().stat_shard(request).await.map(|r| r.into_inner()).map_err(RemoteError::from);
        conn.health.record(&result);
        result
    }
}

/// CRC32C (Castagnoli), the checksum of every shard byte on the wire and on disk.
pub fn crc32c(data: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
}

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
