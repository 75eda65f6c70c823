//! Per-bucket usage: object count and bytes, kept exact by the same write batch that adds,
//! replaces or removes an object, so a container HEAD or an account listing costs one read.
//! In versioned buckets they count current versions that are not delete markers (what the
//! `objects` column family holds): noncurrent versions and delete markers are not counted.

use std::collections::BTreeMap;

use coffer_proto::pb::metadata::ObjectRecord;
use rocksdb::WriteBatch;

use crate::error::MetadataError;
use crate::store::{Cf, Store};

/// Marks a database whose usage counters are complete.
const MARKER: &str = "bucket-usage-v1";
/// Every bucket's counters in `meta` start with this.
pub(crate) const KEY_PREFIX: &[u8] = b"usage\0";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub objects: u64,
    pub bytes: u64,
}

fn key(bucket: &str) -> Vec<u8> {
    [KEY_PREFIX, bucket.as_bytes()].concat()
}

fn encode(usage: Usage) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&usage.objects.to_be_bytes());
    out[8..].copy_from_slice(&usage.bytes.to_be_bytes());
    out
}

pub fn get(store: &Store, bucket: &str) -> Result<Usage, MetadataError> {
    let raw = store.db().get_pinned_cf(store.cf(Cf::Meta)?, key(bucket)).map_err(MetadataError::db("reading usage"))?;
    let Some(raw) = raw else { return Ok(Usage::default()) };
    let bytes: [u8; 16] = raw.as_ref().try_into().map_err(|_| MetadataError::corrupt("bucket usage", bucket))?;
    let (objects, size) = bytes.split_at(8);
    Ok(Usage {
        objects: u64::from_be_bytes(objects.try_into().map_err(|_| MetadataError::corrupt("bucket usage", bucket))?),
        bytes: u64::from_be_bytes(size.try_into().map_err(|_| MetadataError::corrupt("bucket usage", bucket))?),
    })
}

/// Records that `before` (if any) became `after` (if any) in `bucket` (and keeps the expiry
/// index, `expiry.rs`, in the same batch).
pub fn account(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    before: Option<&ObjectRecord>,
    after: Option<&ObjectRecord>,
) -> Result<(), MetadataError> {
    let mut usage = get(store, bucket)?;
    if let Some(old) = before {
        usage.objects = usage.objects.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(old.size);
    }
    if let Some(new) = after {
        usage.objects = usage.objects.saturating_add(1);
        usage.bytes = usage.bytes.saturating_add(new.size);
    }
    batch.put_cf(store.cf(Cf::Meta)?, key(bucket), encode(usage));
    // Every change of a key's current object passes here, so the expiry index is kept here too.
    crate::expiry::track(store, batch, bucket, before, after)
}

/// Writes `bucket`'s counters as given (a split divides them between its halves).
pub fn set(store: &Store, batch: &mut WriteBatch, bucket: &str, usage: Usage) -> Result<(), MetadataError> {
    batch.put_cf(store.cf(Cf::Meta)?, key(bucket), encode(usage));
    Ok(())
}

pub fn forget(store: &Store, batch: &mut WriteBatch, bucket: &str) -> Result<(), MetadataError> {
    batch.delete_cf(store.cf(Cf::Meta)?, key(bucket));
    Ok(())
}

/// Every bucket's objects and bytes, counted over the `objects` column family. Blocking.
pub fn count(store: &Store) -> Result<BTreeMap<String, Usage>, MetadataError> {
    let mut totals: BTreeMap<String, Usage> = BTreeMap::new();
    store.scan_prefix(Cf::Objects, b"", |key, value| {
        let record: ObjectRecord = crate::store::decode(Cf::Objects, key, value)?;
        let usage = totals.entry(record.bucket).or_default();
        usage.objects += 1;
        usage.bytes += record.size;
        Ok(true)
    })?;
    Ok(totals)
}

/// Counts every bucket of a database written before the counters existed, once, at start.
pub fn build(store: &Store) -> Result<(), MetadataError> {
    if store.marker(MARKER)? {
        return Ok(());
    }
    let totals = count(store)?;
    let mut batch = WriteBatch::default();
    let meta = store.cf(Cf::Meta)?;
    for (bucket, usage) in &totals {
        batch.put_cf(meta, key(bucket), encode(*usage));
    }
    batch.put_cf(meta, MARKER.as_bytes(), []);
    store.write(batch)?;
    store.sync_wal()?;
    tracing::info!(buckets = totals.len(), "counted bucket usage");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(size: u64) -> ObjectRecord {
        ObjectRecord { bucket: "b".into(), key: "k".into(), size, ..Default::default() }
    }

    #[test]
    fn counters_follow_puts_overwrites_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let apply = |before: Option<&ObjectRecord>, after: Option<&ObjectRecord>| {
            let mut batch = WriteBatch::default();
            account(&store, &mut batch, "b", before, after).unwrap();
            store.write(batch).unwrap();
        };
        apply(None, Some(&object(10)));
        apply(None, Some(&object(5)));
        apply(Some(&object(5)), Some(&object(7)));
        assert_eq!(get(&store, "b").unwrap(), Usage { objects: 2, bytes: 17 });
        apply(Some(&object(10)), None);
        assert_eq!(get(&store, "b").unwrap(), Usage { objects: 1, bytes: 7 });
        assert_eq!(get(&store, "other").unwrap(), Usage::default());
    }
}
