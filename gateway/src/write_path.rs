//! PUT: body stream → inline bytes, or stripes → Reed-Solomon → k+m shards on k+m disks.
//!
//! Memory is bounded by `stripes_in_flight` stripes (each stripe_size x (k+m)/k bytes once
//! coded), whatever the object size. The data is acknowledged to the caller only once at least
//! the write quorum of shards of every stripe is durable and the shards that did not land are
//! recorded (as "unwritten" damaged-shard reports) for repair; committing the metadata is the
//! caller's next step, with the returned intents, and until then the shards are invisible and
//! owned by the garbage collector.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use coffer_proto::blobnode_client::NodeState;
use coffer_proto::pb::blobnode::ShardId;
use coffer_proto::pb::metadata::{
    AbandonDataRequest, AllocateDataRequest, DamagedShard, DataLayout, ReportDamagedShardsRequest, Segment,
    ShardLocation,
};
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::dataplane::DataPlane;
use crate::erasure::{Geometry, encode_stripe};
use crate::error::{GatewayError, GatewayResult};

type StdError = Box<dyn std::error::Error + Send + Sync>;

/// The object (or multipart upload) a write is for. The metadata group owning this key allocates
/// the data and keeps its intent beside the record that will commit it, so the allocation, the
/// commit and an abandonment all go to that group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteKey {
    pub bucket: String,
    pub key: String,
}

impl WriteKey {
    pub fn new(bucket: &str, key: &str) -> WriteKey {
        WriteKey { bucket: bucket.to_string(), key: key.to_string() }
    }
}

/// Bytes written but not yet committed.
pub struct Written {
    pub segment: Segment,
    pub md5: [u8; 16],
    /// Hand these to the metadata commit so the data stops being garbage.
    pub intents: Vec<Vec<u8>>,
    /// What the data was allocated for: where its intents are abandoned.
    pub key: WriteKey,
}

/// Shard indexes of one data that failed to land, with the first stripe each failed at. Once an
/// index failed, later stripes skip it: repair rebuilds the column from that stripe on anyway.
#[derive(Default)]
struct Unwritten(Mutex<BTreeMap<u32, u32>>);

impl Unwritten {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, u32>> {
        // A plain map: a panicking holder cannot leave it half-updated.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn contains(&self, index: u32) -> bool {
        self.lock().contains_key(&index)
    }

    fn note(&self, index: u32, stripe: u32) {
        let mut map = self.lock();
        let first = map.entry(index).or_insert(stripe);
        *first = (*first).min(stripe);
    }

    fn take(&self) -> BTreeMap<u32, u32> {
        std::mem::take(&mut *self.lock())
    }
}

/// Abandons allocated data when dropped without being disarmed (an error, or the client went
/// away mid-upload), so the shards are collected now rather than when the intent expires.
struct IntentGuard {
    plane: DataPlane,
    key: WriteKey,
    intent: Option<Vec<u8>>,
}

impl IntentGuard {
    fn disarm(mut self) -> Vec<u8> {
        self.intent.take().unwrap_or_default()
    }
}

impl Drop for IntentGuard {
    fn drop(&mut self) {
        if let Some(intent) = self.intent.take() {
            let mut client = self.plane.metadata.rpc();
            let WriteKey { bucket, key } = std::mem::take(&mut self.key);
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if let Err(e) = client.abandon_data(AbandonDataRequest { intent, bucket, key }).await {
                        tracing::warn!(error = %e, "abandoning unwritten data failed; its intent will expire");
                    }
                });
            }
        }
    }
}

impl DataPlane {
    /// Consumes `body` and stores it as data of `key`. `max_len` bounds the body (EntityTooLarge
    /// beyond it).
    pub async fn write<S>(&self, key: &WriteKey, mut body: S, max_len: u64) -> GatewayResult<Written>
    where
        S: Stream<Item = Result<Bytes, StdError>> + Unpin,
    {
        let mut md5 = Md5::new();
        let mut head = BytesMut::new();
        let mut ended = false;
        while head.len() as u64 <= self.inline_threshold {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| GatewayError::Body(e.to_string()))?;
                    md5.update(&chunk);
                    head.extend_from_slice(&chunk);
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if head.len() as u64 > max_len {
            return Err(GatewayError::EntityTooLarge);
        }
        if ended {
            let md5: [u8; 16] = md5.finalize().into();
            let data = head.freeze();
            let segment = Segment {
                size: data.len() as u64,
                inline_data: data.to_vec(),
                layout: None,
                etag: hex::encode(md5),
                part_number: 0,
                ..Default::default()
            };
            return Ok(Written { segment, md5, intents: Vec::new(), key: key.clone() });
        }
        self.write_striped(key, head.freeze(), md5, body, max_len).await
    }

    async fn write_striped<S>(
        &self,
        key: &WriteKey,
        head: Bytes,
        mut md5: Md5,
        mut body: S,
        max_len: u64,
    ) -> GatewayResult<Written>
    where
        S: Stream<Item = Result<Bytes, StdError>> + Unpin,
    {
        let allocation = self
            .metadata
            .rpc()
            .allocate_data(AllocateDataRequest {
                data_shards: self.ec.data_shards,
                parity_shards: self.ec.parity_shards,
                min_shards: self.write_quorum as u32,
                bucket: key.bucket.clone(),
                key: key.key.clone(),
            })
            .await
            .map_err(coffer_proto::RemoteError::from)?
            .into_inner();
        let guard = IntentGuard { plane: self.clone(), key: key.clone(), intent: Some(allocation.intent) };
        if allocation.shards.len() != self.ec.total() as usize {
            return Err(GatewayError::Internal("metadata returned a placement of the wrong width".into()));
        }
        self.cluster.ensure_known(allocation.shards.iter().map(|s| s.node_id.as_str())).await;
        let unwritten = Arc::new(Unwritten::default());

        let stripe_size = self.stripe_size as usize;
        let mut in_flight: VecDeque<JoinHandle<GatewayResult<()>>> = VecDeque::new();
        let mut stripe = BytesMut::with_capacity(stripe_size);
        let mut stripe_index: u32 = 0;
        let mut total: u64 = 0;
        let mut pending = Some(head);
        loop {
            let chunk = match pending.take() {
                Some(chunk) => Some(chunk),
                None => match body.next().await {
                    Some(chunk) => {
                        let chunk = chunk.map_err(|e| GatewayError::Body(e.to_string()))?;
                        md5.update(&chunk);
                        Some(chunk)
                    }
                    None => None,
                },
            };
            let Some(mut chunk) = chunk else { break };
            total += chunk.len() as u64;
            if total > max_len {
                return Err(GatewayError::EntityTooLarge);
            }
            while !chunk.is_empty() {
                let take = (stripe_size - stripe.len()).min(chunk.len());
                stripe.extend_from_slice(&chunk.split_to(take));
                if stripe.len() == stripe_size {
                    let full = std::mem::replace(&mut stripe, BytesMut::with_capacity(stripe_size)).freeze();
                    let target = StripeTarget {
                        data_id: &allocation.data_id,
                        shards: &allocation.shards,
                        unwritten: &unwritten,
                    };
                    self.dispatch_stripe(&mut in_flight, &target, stripe_index, full).await?;
                    stripe_index += 1;
                }
            }
        }
        if !stripe.is_empty() {
            let last = stripe.freeze();
            let target =
                StripeTarget { data_id: &allocation.data_id, shards: &allocation.shards, unwritten: &unwritten };
            self.dispatch_stripe(&mut in_flight, &target, stripe_index, last).await?;
        }
        while let Some(task) = in_flight.pop_front() {
            join_stripe(task).await?;
        }
        self.report_unwritten(key, &allocation.data_id, &allocation.shards, unwritten.take()).await?;
        let md5: [u8; 16] = md5.finalize().into();
        let layout = DataLayout {
            data_id: allocation.data_id,
            data_shards: self.ec.data_shards,
            parity_shards: self.ec.parity_shards,
            stripe_size: self.stripe_size,
            size: total,
            shards: allocation.shards,
        };
        let segment = Segment {
            size: total,
            inline_data: Vec::new(),
            layout: Some(layout),
            etag: hex::encode(md5),
            part_number: 0,
            ..Default::default()
        };
        Ok(Written { segment, md5, intents: vec![guard.disarm()], key: key.clone() })
    }

    /// Records the shards that did not land, durably, before the data may be committed: repair
    /// finds its work there. Without the record the write must fail.
    async fn report_unwritten(
        &self,
        key: &WriteKey,
        data_id: &[u8],
        shards: &[ShardLocation],
        unwritten: BTreeMap<u32, u32>,
    ) -> GatewayResult<()> {
        if unwritten.is_empty() {
            return Ok(());
        }
        let reports: Vec<DamagedShard> = unwritten
            .into_iter()
            .filter_map(|(index, stripe)| {
                let location = shards.get(index as usize)?;
                Some(DamagedShard {
                    node_id: location.node_id.clone(),
                    disk_id: location.disk_id.clone(),
                    data_id: data_id.to_vec(),
                    stripe,
                    index,
                    reason: "unwritten".into(),
                    detail: "the shard write failed; the object was stored with the write quorum".into(),
                    reported_unix_ms: 0,
                })
            })
            .collect();
        tracing::warn!(data_id = %hex::encode(data_id), shards = reports.len(), "stored with missing shards; recorded for repair");
        // Named by the key it was allocated for, the report goes to the one group holding the data
        // (with range groups, a report sent to every group would fail this write while any group
        // is down, even one that has nothing to do with it).
        let request = ReportDamagedShardsRequest { shards: reports, bucket: key.bucket.clone(), key: key.key.clone() };
        self.metadata.rpc().report_damaged_shards(request).await.map_err(coffer_proto::RemoteError::from)?;
        Ok(())
    }

    /// Starts writing one stripe, first waiting for the oldest one when the window is full.
    async fn dispatch_stripe(
        &self,
        in_flight: &mut VecDeque<JoinHandle<GatewayResult<()>>>,
        target: &StripeTarget<'_>,
        stripe_index: u32,
        stripe: Bytes,
    ) -> GatewayResult<()> {
        if in_flight.len() >= self.stripes_in_flight
            && let Some(oldest) = in_flight.pop_front()
        {
            join_stripe(oldest).await?;
        }
        let plane = self.clone();
        let data_id = target.data_id.to_vec();
        let shards = target.shards.to_vec();
        let unwritten = target.unwritten.clone();
        in_flight.push_back(tokio::spawn(
            async move { plane.write_stripe(data_id, shards, unwritten, stripe_index, stripe).await }
                .instrument(tracing::info_span!("stripe.write", stripe = stripe_index)),
        ));
        Ok(())
    }

    async fn write_stripe(
        self,
        data_id: Vec<u8>,
        locations: Vec<ShardLocation>,
        unwritten: Arc<Unwritten>,
        stripe_index: u32,
        stripe: Bytes,
    ) -> GatewayResult<()> {
        let geometry = Geometry {
            data_shards: self.ec.data_shards as usize,
            parity_shards: self.ec.parity_shards as usize,
            stripe_size: self.stripe_size,
            size: self.stripe_size,
        };
        let span = tracing::info_span!("ec.encode", stripe = stripe_index);
        let shards = tokio::task::spawn_blocking(move || span.in_scope(|| encode_stripe(&geometry, stripe)))
            .await
            .map_err(|e| GatewayError::Internal(format!("encoder task failed: {e}")))??;
        // A column that failed before, or a node known to be down, is left to repair rather than
        // costing every stripe a timeout — unless the quorum needs it, in which case it is tried
        // (a node that just came back is found that way).
        let skip: Vec<bool> = {
            let avoid: Vec<bool> = locations
                .iter()
                .enumerate()
                .map(|(i, l)| unwritten.contains(i as u32) || self.blobnodes.state(&l.node_id) == NodeState::Down)
                .collect();
            let tried = avoid.iter().filter(|&&a| !a).count();
            if tried >= self.write_quorum { avoid } else { vec![false; locations.len()] }
        };
        let writes = shards.into_iter().zip(&locations).enumerate().map(|(index, (shard, location))| {
            let id = ShardId { data_id: data_id.clone(), stripe: stripe_index, index: index as u32 };
            let (unwritten, blobnodes, skip) = (&unwritten, &self.blobnodes, skip[index]);
            async move {
                let index = index as u32;
                if skip {
                    unwritten.note(index, stripe_index);
                    return false;
                }
                match blobnodes.put_shard(&location.node_id, &location.disk_id, id, shard).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(node = %location.node_id, disk = %location.disk_id, index, stripe = stripe_index,
                            error = %e, "shard write failed");
                        unwritten.note(index, stripe_index);
                        false
                    }
                }
            }
        });
        let landed = futures::future::join_all(writes).await.into_iter().filter(|&ok| ok).count();
        if landed < self.write_quorum {
            return Err(GatewayError::WriteQuorum { stripe: stripe_index, landed, needed: self.write_quorum });
        }
        Ok(())
    }
}

/// Where the stripes of one data go.
struct StripeTarget<'a> {
    data_id: &'a [u8],
    shards: &'a [ShardLocation],
    unwritten: &'a Arc<Unwritten>,
}

async fn join_stripe(task: JoinHandle<GatewayResult<()>>) -> GatewayResult<()> {
    task.await.map_err(|e| GatewayError::Internal(format!("stripe writer failed: {e}")))?
}
