//! Rebuilding one column: for every stripe from the task's first, read K of the other shards,
//! decode, re-encode the missing shard and write it to the target disk.

use bytes::{Bytes, BytesMut};
use coffer_gateway::erasure::{Geometry, encode_stripe, reconstruct_data};
use coffer_gateway::survivors::read_first_k;
use coffer_proto::blobnode_client::BlobnodePool;
use coffer_proto::pb::blobnode::ShardId;
use coffer_proto::pb::metadata::{DataLayout, RepairTask, ShardLocation};

use crate::error::RepairError;
use crate::pace::Pacer;

/// The parts of a task every step needs, checked once.
pub struct Column<'a> {
    pub layout: &'a DataLayout,
    pub index: usize,
    pub target: &'a ShardLocation,
    pub first_stripe: u64,
}

impl<'a> Column<'a> {
    pub fn of(task: &'a RepairTask) -> Result<Column<'a>, RepairError> {
        let layout = task.layout.as_ref().ok_or_else(|| RepairError::BadTask("no layout".into()))?;
        let target = task.target.as_ref().ok_or_else(|| RepairError::BadTask("no target".into()))?;
        let index = task.index as usize;
        let width = layout.data_shards as usize + layout.parity_shards as usize;
        if layout.data_shards == 0 || layout.shards.len() != width || index >= width {
            return Err(RepairError::BadTask(format!("shard {index} of a {width}-shard layout")));
        }
        Ok(Column { layout, index, target, first_stripe: u64::from(task.first_stripe) })
    }
}

/// Rebuilds the column; returns the bytes written.
pub async fn rebuild(pool: &BlobnodePool, column: &Column<'_>, pacer: &Pacer) -> Result<u64, RepairError> {
    let g = Geometry::of(column.layout);
    let mut written = 0u64;
    for stripe in column.first_stripe..g.stripe_count() {
        let shards = read_others(pool, column, &g, stripe).await?;
        let index = column.index;
        let shard = tokio::task::spawn_blocking(move || rebuild_shard(&g, stripe, shards, index))
            .await
            .map_err(|e| RepairError::Internal(format!("decoder task failed: {e}")))??;
        pacer.take(shard.len() as u64).await;
        written += shard.len() as u64;
        let id = ShardId { data_id: column.layout.data_id.clone(), stripe: stripe as u32, index: index as u32 };
        pool.put_shard(&column.target.node_id, &column.target.disk_id, id, shard).await?;
    }
    Ok(written)
}

/// The first K intact shards of the stripe other than the one being rebuilt.
async fn read_others(
    pool: &BlobnodePool,
    column: &Column<'_>,
    g: &Geometry,
    stripe: u64,
) -> Result<Vec<Option<Bytes>>, RepairError> {
    let survivors = read_first_k(pool, column.layout, stripe, Some(column.index)).await;
    if survivors.available < g.data_shards {
        return Err(RepairError::NotEnoughShards { stripe, available: survivors.available, needed: g.data_shards });
    }
    Ok(survivors.shards)
}

/// Decodes the stripe and returns shard `index` of it (a data shard as decoded, a parity shard
/// re-encoded from the data).
fn rebuild_shard(g: &Geometry, stripe: u64, shards: Vec<Option<Bytes>>, index: usize) -> Result<Bytes, RepairError> {
    let data = reconstruct_data(g, stripe, shards)?;
    if let Some(shard) = data.get(index) {
        return Ok(shard.clone());
    }
    let mut whole = BytesMut::with_capacity(data.iter().map(Bytes::len).sum());
    for shard in &data {
        whole.extend_from_slice(shard);
    }
    let mut coded = encode_stripe(g, whole.freeze())?;
    if index >= coded.len() {
        return Err(RepairError::BadTask(format!("shard {index} of {} coded", coded.len())));
    }
    Ok(coded.swap_remove(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_is_rebuilt_byte_exact_from_the_others() {
        let g = Geometry { data_shards: 4, parity_shards: 2, stripe_size: 1000, size: 1000 };
        let stripe: Bytes = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>().into();
        let shards = encode_stripe(&g, stripe).unwrap();
        for lost in 0..6 {
            let mut available: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
            available[lost] = None;
            // Only K needed: drop one more, never the lost one.
            available[(lost + 1) % 6] = None;
            assert_eq!(rebuild_shard(&g, 0, available, lost).unwrap(), shards[lost], "shard {lost}");
        }
        let too_few = vec![Some(shards[0].clone()), None, None, None, None, Some(shards[5].clone())];
        assert!(matches!(rebuild_shard(&g, 0, too_few, 1), Err(RepairError::NotEnoughShards { .. })));
    }
}
