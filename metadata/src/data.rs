//! Ownership of erasure-coded data: which record owns which data id, and the hand-over of data no
//! record owns any more to the garbage collector.
//!
//! Every data id is owned by exactly one thing at a time: an intent (allocated, not yet committed),
//! one object or part record, or a gc entry. There is no reference counting, so a commit may only
//! reference data it holds an intent for or that the record it replaces already owns.

use std::collections::{BTreeMap, BTreeSet};

use coffer_proto::Message;
use coffer_proto::pb::metadata::{DataLayout, DataOwner, GcRecord, Segment, ShardLocation};
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
    let record = GcRecord { data_id: layout.data_id.clone(), shards: layout.shards.clone(), ..Default::default() };
    batch.delete_cf(store.cf(Cf::Owners)?, &layout.data_id);
    put_gc(store, batch, &keys::gc(not_before_unix_ms, &layout.data_id), record)
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
    batch.delete_cf(store.cf(Cf::Gc)?, intent);
    put_gc(store, batch, &keys::gc(now_unix_ms, &record.data_id), record.clone())
}

/// The data side of committing `new` in place of `replaced`, all into `batch`:
/// - intents of data `new` references are removed (the record owns it now);
/// - intents of data it does not reference are expired now (allocated, then not used);
/// - data `new` references must be covered by a live intent or already owned by `replaced` (a
///   retried commit, or a metadata-only rewrite);
/// - the shard locations of `new` are taken from the intent or from `replaced`, never from the
///   caller: repair may have moved a shard since the caller read them;
/// - data of `replaced` that `new` no longer references goes to the collector at `replaced_not_before`;
/// - `owner` becomes the owner of every data `new` references.
#[allow(clippy::too_many_arguments)]
pub fn commit(
    store: &Store,
    batch: &mut WriteBatch,
    intents: &[Vec<u8>],
    new: &mut [Segment],
    replaced: &[Segment],
    stamp: &Stamp,
    replaced_not_before: i64,
    owner: &DataOwner,
) -> Result<(), MetadataError> {
    let new_ids: BTreeSet<Vec<u8>> = data_ids(new).into_iter().map(<[u8]>::to_vec).collect();
    let mut placed: BTreeMap<Vec<u8>, Vec<ShardLocation>> =
        layouts(replaced).map(|l| (l.data_id.clone(), l.shards.clone())).collect();
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
        covered.insert(data_id.to_vec());
        placed.insert(data_id.to_vec(), record.shards);
    }
    for layout in new.iter_mut().filter_map(|s| s.layout.as_mut()) {
        let Some(shards) = placed.get(&layout.data_id).filter(|_| new_ids.contains(&layout.data_id)) else {
            continue;
        };
        if shards.len() != layout.shards.len() {
            return Err(MetadataError::InvalidArgument(format!(
                "data {} was placed on {} disks; the layout names {}",
                hex::encode(&layout.data_id),
                shards.len(),
                layout.shards.len()
            )));
        }
        layout.shards.clone_from(shards);
    }
    let old_ids = data_ids(replaced);
    if let Some(orphan) = new_ids.iter().find(|id| !covered.contains(*id) && !old_ids.contains(id.as_slice())) {
        return Err(MetadataError::InvalidArgument(format!(
            "data {} has no live intent (expired, abandoned or never allocated)",
            hex::encode(orphan)
        )));
    }
    retire(store, batch, new, replaced, replaced_not_before)?;
    own(store, batch, new, owner)
}

/// Makes `owner` the owner of every data `segments` reference.
pub fn own(
    store: &Store,
    batch: &mut WriteBatch,
    segments: &[Segment],
    owner: &DataOwner,
) -> Result<(), MetadataError> {
    let cf = store.cf(Cf::Owners)?;
    let value = owner.encode_to_vec();
    for id in data_ids(segments) {
        batch.put_cf(cf, id, &value);
    }
    Ok(())
}

/// From now until the collector has deleted them, `data_id` may have shards at `shards`.
/// Whether `node_id`/`disk_id` has (or may have) shards of `data_id` by this group's records.
pub fn holds(store: &Store, node_id: &str, disk_id: &str, data_id: &[u8]) -> Result<bool, MetadataError> {
    let key = keys::holding(node_id, disk_id, data_id);
    let found =
        store.db().get_pinned_cf(store.cf(Cf::Holdings)?, key).map_err(MetadataError::db("reading holdings"))?;
    Ok(found.is_some())
}

pub fn hold(
    store: &Store,
    batch: &mut WriteBatch,
    data_id: &[u8],
    shards: &[ShardLocation],
) -> Result<(), MetadataError> {
    let cf = store.cf(Cf::Holdings)?;
    for s in shards {
        batch.put_cf(cf, keys::holding(&s.node_id, &s.disk_id, data_id), []);
    }
    Ok(())
}

/// The shards of `data_id` at `shards` are deleted.
pub fn release(
    store: &Store,
    batch: &mut WriteBatch,
    data_id: &[u8],
    shards: &[ShardLocation],
) -> Result<(), MetadataError> {
    let cf = store.cf(Cf::Holdings)?;
    for s in shards {
        batch.delete_cf(cf, keys::holding(&s.node_id, &s.disk_id, data_id));
    }
    Ok(())
}

/// Stores a gc entry, merging it with one already at the same key (the same data handed over twice
/// in the same millisecond, e.g. a moved shard and then the whole object), so no shard is forgotten.
pub fn put_gc(store: &Store, batch: &mut WriteBatch, key: &[u8], mut record: GcRecord) -> Result<(), MetadataError> {
    if let Some(existing) = store.gc_entry(key)? {
        for shard in existing.shards {
            if !record.shards.contains(&shard) {
                record.shards.push(shard);
            }
        }
    }
    batch.put_cf(store.cf(Cf::Gc)?, key, record.encode_to_vec());
    Ok(())
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
        // An encrypted (or compressed) segment stores a different number of bytes than it holds.
        let stored = if segment.stored_size > 0 { segment.stored_size } else { segment.size };
        if let Some(layout) = &segment.layout {
            validate_layout(layout, stored)?;
        } else if segment.inline_data.len() as u64 != stored {
            return Err(MetadataError::InvalidArgument(format!(
                "segment of {stored} stored bytes has {} bytes inline and no layout",
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

/// Marks a database whose owner and holding indexes are complete.
const INDEXES_MARKER: &str = "data-indexes-v1";
/// Index entries written per batch while building.
const BUILD_BATCH: usize = 10_000;

/// Builds the owner and holding indexes of a database written before they existed, once. Runs at
/// start, before the applier, so nothing else writes meanwhile.
pub fn build_indexes(store: &Store) -> Result<(), MetadataError> {
    if store.marker(INDEXES_MARKER)? {
        return Ok(());
    }
    let mut batch = WriteBatch::default();
    let mut pending = 0usize;
    let flush = |batch: &mut WriteBatch, pending: &mut usize, force: bool| -> Result<(), MetadataError> {
        if *pending >= BUILD_BATCH || (force && *pending > 0) {
            store.write(std::mem::take(batch))?;
            *pending = 0;
        }
        Ok(())
    };
    let mut owned: Vec<(DataOwner, Vec<Segment>)> = Vec::new();
    store.scan_prefix(Cf::Objects, b"", |key, value| {
        let record: coffer_proto::pb::metadata::ObjectRecord = crate::store::decode(Cf::Objects, key, value)?;
        let owner = DataOwner { bucket: record.bucket, key: record.key, ..Default::default() };
        owned.push((owner, record.segments));
        Ok(true)
    })?;
    store.scan_prefix(Cf::Parts, b"", |key, value| {
        let part: coffer_proto::pb::metadata::PartRecord = crate::store::decode(Cf::Parts, key, value)?;
        let owner = DataOwner { upload_id: part.upload_id, part_number: part.part_number, ..Default::default() };
        owned.push((owner, part.segment.into_iter().collect()));
        Ok(true)
    })?;
    for (owner, segments) in &owned {
        own(store, &mut batch, segments, owner)?;
        for layout in layouts(segments) {
            hold(store, &mut batch, &layout.data_id, &layout.shards)?;
            pending += 1 + layout.shards.len();
        }
        flush(&mut batch, &mut pending, false)?;
    }
    let mut collected: Vec<GcRecord> = Vec::new();
    store.scan_prefix(Cf::Gc, b"", |key, value| {
        collected.push(crate::store::decode(Cf::Gc, key, value)?);
        Ok(true)
    })?;
    for record in &collected {
        hold(store, &mut batch, &record.data_id, &record.shards)?;
        pending += record.shards.len();
        flush(&mut batch, &mut pending, false)?;
    }
    batch.put_cf(store.cf(Cf::Meta)?, INDEXES_MARKER.as_bytes(), []);
    pending += 1;
    flush(&mut batch, &mut pending, true)?;
    store.sync_wal()?;
    tracing::info!(records = owned.len(), gc_entries = collected.len(), "built the data owner and holding indexes");
    Ok(())
}

#[cfg(test)]
mod stored_size_tests {
    use super::*;

    #[test]
    fn transformed_segments_store_their_own_length() {
        // 10 plaintext bytes stored as 26 (one encrypted package with its tag).
        let encrypted = Segment { size: 10, stored_size: 26, inline_data: vec![0; 26], ..Default::default() };
        assert!(validate_segments(std::slice::from_ref(&encrypted), 10).is_ok());
        assert!(validate_segments(std::slice::from_ref(&encrypted), 26).is_err(), "the object size is the plaintext's");
        let short = Segment { inline_data: vec![0; 10], ..encrypted };
        assert!(validate_segments(&[short], 10).is_err(), "the stored bytes must all be there");
        let plain = Segment { size: 3, inline_data: vec![1, 2, 3], ..Default::default() };
        assert!(validate_segments(&[plain], 3).is_ok());
    }
}
