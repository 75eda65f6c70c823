//! Reading just enough of a stripe to decode it: every shard is asked for at once and the first K
//! that arrive intact win; the slower reads are dropped. The degraded GET path and the repair
//! worker both decode from this.

use bytes::Bytes;
use coffer_proto::blobnode_client::BlobnodePool;
use coffer_proto::pb::blobnode::ShardId;
use coffer_proto::pb::metadata::DataLayout;
use futures::StreamExt;

use crate::erasure::Geometry;

/// Shard `i` of the stripe at `shards[i]` when it was read; `available` of them were.
pub struct Survivors {
    pub shards: Vec<Option<Bytes>>,
    pub available: usize,
}

/// Reads the whole shards of `stripe` (all but `skip`, the one being rebuilt) until K are in.
pub async fn read_first_k(pool: &BlobnodePool, layout: &DataLayout, stripe: u64, skip: Option<usize>) -> Survivors {
    let g = Geometry::of(layout);
    let shard_len = g.shard_len(g.stripe_len(stripe));
    let mut reads: futures::stream::FuturesUnordered<_> = layout
        .shards
        .iter()
        .enumerate()
        .filter(|(index, _)| Some(*index) != skip)
        .map(|(index, location)| async move {
            let id = ShardId { data_id: layout.data_id.clone(), stripe: stripe as u32, index: index as u32 };
            match pool.get_shard(&location.node_id, &location.disk_id, id, 0, shard_len).await {
                Ok(bytes) => (index, Some(bytes)),
                Err(e) => {
                    tracing::warn!(stripe, index, node = %location.node_id, error = %e, "shard unreadable");
                    (index, None)
                }
            }
        })
        .collect();
    let mut survivors = Survivors { shards: vec![None; layout.shards.len()], available: 0 };
    while let Some((index, shard)) = reads.next().await {
        if shard.is_some() {
            survivors.available += 1;
        }
        survivors.shards[index] = shard;
        if survivors.available == g.data_shards {
            break;
        }
    }
    survivors
}
