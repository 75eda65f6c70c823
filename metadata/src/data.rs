//! Ownership of erasure-coded data: which record owns which data id, and the hand-over of data no
//! record owns any more to the garbage collector.
//!
//! Every data id is owned by exactly one thing at a time: an intent (allocated, not yet committed),
//! one object or part record, or a gc entry. There is no reference counting, so a commit may only
//! reference data it holds an intent for or that the record it replaces already owns.

use std::collections::BTreeSet;

use coffer_proto::Message;
use coffer_proto::pb::metadata::{DataLayout, GcRecord, Segment};
use rocksdb::WriteBatch;

use crate::command::Stamp;
use crate::error::MetadataError;
use crate::keys;
use crate::store::{Cf, Store};

/// Length of a data id: 128 random bits.
pub const DATA_ID_LEN: usize = 16;

pub fn new_data_id() -> Vec<u8> {
    rand::random::<[u8; DATA_ID_LEN]>().to_vec()
}

pub fn layouts(segments: &[Segment]) -> impl Iterator<Item = &DataLayout> {
    segments.iter().filter_map(|s| s.layout.as_ref())
}

fn data_ids(segments: &[Segment]) -> BTreeSet<&[u8]> {
    layouts(segments).map(|l| l.data_id.as_slice()).collect()
}

/// Hands data to the collector, due at `not_before_unix_ms`.
pub fn schedule(
    store: &Store,
    batch: &mut WriteBatch,
    not_before_unix_ms: i64,
    layout: &DataLayout,
) -> Result<(), MetadataError> {
    if layout.shards.is_empty() {
        return Ok(());
    }
    let record = GcRecord { data_id: layout.data_id.clone(), shards: layout.shards.clone() };
    batch.put_cf(store.cf(Cf::Gc)?, keys::gc(not_before_unix_ms, &layout.data_id), record.encode_to_vec());
    Ok(())
}

pub fn schedule_all(
    store: &Store,
    batch: &mut WriteBatch,
    not_before_unix_ms: i64,
    segments: &[Segment],
) -> Result<(), MetadataError> {
    layouts(segments).try_for_each(|l| schedule(store, batch, not_before_unix_ms, l))
}

pub fn parse_intent(intent: &[u8]) -> Result<(i64, &[u8]), MetadataError> {
    keys::parse_gc(intent).ok_or_else(|| MetadataError::InvalidArgument("malformed data intent".into()))
}

/// Moves an intent's gc entry to `now`, so the collector takes its data at once.
pub fn expire_intent(
    store: &Store,
    batch: &mut WriteBatch,
    intent: &[u8],
    record: &GcRecord,
    now_unix_ms: i64,
) -> Result<(), MetadataError> {
    let cf = store.cf(Cf::Gc)?;
    batch.delete_cf(cf, intent);
    batch.put_cf(cf, keys::gc(now_unix_ms, &record.data_id), record.encode_to_vec());
    Ok(())
}

/// The data side of committing `new` in place of `replaced`, all into `batch`:
/// - intents of data `new` references are removed (the record owns it now);
/// - intents of data it does not reference are expired now (allocated, then not used);
/// - data `new` references must be covered by a live intent or already owned by `replaced` (a
///   retried commit, or a metadata-only rewrite);
/// - data of `replaced` that `new` no longer references goes to the collector at `replaced_not_before`.
pub fn commit(
    store: &Store,
    batch: &mut WriteBatch,
    intents: &[Vec<u8>],
    new: &[Segment],
    replaced: &[Segment],
    stamp: &Stamp,
    replaced_not_before: i64,
) -> Result<(), MetadataError> {
    let new_ids = data_ids(new);
    let old_ids = data_ids(replaced);
    let mut covered = BTreeSet::new();
    let unique: BTreeSet<&[u8]> = intents.iter().map(Vec::as_slice).collect();
    for intent in unique {
        let (not_before, data_id) = parse_intent(intent)?;
        let Some(record) = store.gc_entry(intent)? else {
            // Already consumed by an earlier attempt of this commit, or expired and collected: the
            // coverage check below tells the two apart.
            continue;
        };
        if record.data_id != data_id {
            return Err(MetadataError::corrupt("gc entry", "data id differs from its key"));
        }
        if !new_ids.contains(data_id) {
            expire_intent(store, batch, intent, &record, stamp.now_unix_ms)?;
            continue;
        }
        // The collector takes entries once due; one this close to due may already be in its hands.
        if not_before < stamp.intent_deadline_unix_ms {
            return Err(MetadataError::InvalidArgument(format!("data intent {} has expired", hex::encode(data_id))));
        }
        batch.delete_cf(store.cf(Cf::Gc)?, intent);
        covered.insert(data_id);
    }
    if let Some(orphan) = new_ids.iter().find(|id| !covered.contains(*id) && !old_ids.contains(*id)) {
        return Err(MetadataError::InvalidArgument(format!(
            "data {} has no live intent (expired, abandoned or never allocated)",
            hex::encode(orphan)
        )));
    }
    retire(store, batch, new, replaced, replaced_not_before)
}

/// Hands the data of `replaced` that `new` does not reference any more to the collector.
pub fn retire(
    store: &Store,
    batch: &mut WriteBatch,
    new: &[Segment],
    replaced: &[Segment],
    not_before_unix_ms: i64,
) -> Result<(), MetadataError> {
    let new_ids = data_ids(new);
    for layout in layouts(replaced).filter(|l| !new_ids.contains(l.data_id.as_slice())) {
        schedule(store, batch, not_before_unix_ms, layout)?;
    }
    Ok(())
}

/// Structural checks on segments a client wants committed; readers rely on them.
pub fn validate_segments(segments: &[Segment], declared_size: u64) -> Result<(), MetadataError> {
    let mut total: u64 = 0;
    for segment in segments {
        total = total
            .checked_add(segment.size)
            .ok_or_else(|| MetadataError::InvalidArgument("segment sizes overflow".into()))?;
        if let Some(layout) = &segment.layout {
            validate_layout(layout, segment.size)?;
        } else if segment.inline_data.len() as u64 != segment.size {
            return Err(MetadataError::InvalidArgument(format!(
                "segment of {} bytes has {} bytes inline and no layout",
                segment.size,
                segment.inline_data.len()
            )));
        }
    }
    if total != declared_size {
        return Err(MetadataError::InvalidArgument(format!(
            "size {declared_size} differs from the sum of its segments ({total})"
        )));
    }
    Ok(())
}

fn validate_layout(layout: &DataLayout, segment_size: u64) -> Result<(), MetadataError> {
    let shards = layout.data_shards as usize + layout.parity_shards as usize;
    if layout.data_id.is_empty() || layout.data_shards == 0 || layout.shards.len() != shards {
        return Err(MetadataError::InvalidArgument(format!(
            "layout of data {} has {} shard locations for {}+{} shards",
            hex::encode(&layout.data_id),
            layout.shards.len(),
            layout.data_shards,
            layout.parity_shards
        )));
    }
    if layout.size != segment_size {
        return Err(MetadataError::InvalidArgument(format!(
            "layout size {} differs from segment size {segment_size}",
            layout.size
        )));
    }
    Ok(())
}
