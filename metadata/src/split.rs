//! A range group splitting in two (issue 11; docs/design/metadata-sharding.md, "Split").
//!
//! Group 0's leader drives a split in three steps, each idempotent (`split_driver`):
//! 1. group 0 applies `ReserveSplit`: the new group's id is taken (a pending record, so two splits
//!    never pick the same id and a new leader finishes what an old one started);
//! 2. the parent range group applies `SplitRange` ([`split_range`]): on every replica, at the same
//!    log index, the right half `[at, end)` is copied into a new database for the child (a RocksDB
//!    checkpoint of the parent with everything else deleted: the *seed*), then deleted from the
//!    parent, whose range ends at `at` from then on, with the next epoch;
//! 3. group 0 applies `FinishSplit`: the parent's record gets its new range and the child's record
//!    appears (the range table clients route by), and the child is queued every bucket it touches.
//!
//! Between 2 and 3 the right half answers `WrongRange` from the parent and clients retry after a
//! refresh of the table. After 3 every replica's watcher (`groups`) opens the child — from the
//! seed where this replica applied the split, else empty, and then the child's leader sends it a
//! snapshot: the seed's Raft state says "everything up to log index 0 is applied and purged", so a
//! replica without the seed can only catch up by snapshot, never by replaying a log that assumes
//! the seed.
//!
//! What goes right: every object, version and upload key in `[at, end)`, the parts of those
//! uploads, their expiry entries, and the data-id entries (owners, holdings, gc, damaged) of data
//! whose record is on the right (an owner there, or an intent written for a key there); the
//! usage counters are split by counting the right half. Garbage of no record (gc entries without a
//! key) and queued notifications stay with the parent, whose workers finish them. Bucket states and
//! fences are copied to both halves.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use coffer_proto::pb::metadata::{DataOwner, GcRecord};
use rocksdb::WriteBatch;

use crate::command::Applied;
use crate::error::MetadataError;
use crate::range::{Descriptor, GroupRecord, Range};
use crate::store::{Cf, Store};
use crate::usage::Usage;

/// The parent's `meta` record of a child it split off (a [`GroupRecord`]): makes a resent
/// `SplitRange` a no-op.
const CHILD_PREFIX: &[u8] = b"split_child/";
/// Above every key of the keyed column families: keys start with a bucket name, which is UTF-8,
/// and no UTF-8 string holds the byte 0xFF.
const KEY_SPACE_END: &[u8] = &[0xFF];

fn child_key(child: u64) -> Vec<u8> {
    [CHILD_PREFIX, &child.to_be_bytes()].concat()
}

/// Where a range group's sibling `group` lives: beside it (`<db>.groups/<group>`).
pub fn sibling_dir(store: &Store, group: u64) -> Result<PathBuf, MetadataError> {
    let own = store.db().path();
    if store.range().is_none() {
        // Group 0 at `<db>`: its range groups live in `<db>.groups/`.
        let mut groups = own.as_os_str().to_owned();
        groups.push(".groups");
        return Ok(PathBuf::from(groups).join(group.to_string()));
    }
    let parent =
        own.parent().ok_or_else(|| MetadataError::Internal(format!("{} has no parent folder", own.display())))?;
    Ok(parent.join(group.to_string()))
}

/// Applies `SplitRange` (see the module doc): in a range group, at `epoch` of its range; in group 0,
/// in the stretch of the key space group 0 owns around `at` (see [`split_directory`]). `voters`
/// are the child's (the parent's).
pub fn split_range(
    store: &Store,
    batch: &mut WriteBatch,
    at: (String, String),
    child: u64,
    epoch: u64,
    voters: Vec<(u64, String)>,
) -> Result<Applied, MetadataError> {
    let Some(descriptor) = store.range() else {
        return split_directory(store, batch, at, child, voters);
    };
    let (at_bucket, at_key) = at;
    let range = &descriptor.range;
    let at_is_end = range.end_bucket == at_bucket && range.end_key == at_key;
    let recorded = store.db().get_pinned_cf(store.cf(Cf::Meta)?, child_key(child));
    if at_is_end && recorded.map_err(MetadataError::db("reading a split's child record"))?.is_some() {
        // Applied before: a resend after a lost answer.
        return Ok(Applied::Done);
    }
    if descriptor.epoch != epoch {
        return Err(MetadataError::WrongRange {
            epoch: descriptor.epoch,
            detail: format!("a split planned at epoch {epoch} of a range now at epoch {}", descriptor.epoch),
        });
    }
    if !range.splits_at(&at_bucket, &at_key) {
        return Err(MetadataError::InvalidArgument(format!(
            "{at_bucket}/{at_key} does not split range {range}: it must lie inside it, after its start"
        )));
    }
    if child == 0 || voters.is_empty() {
        return Err(MetadataError::InvalidArgument("a split needs a new group id and voters".into()));
    }
    let right = Range {
        start_bucket: at_bucket.clone(),
        start_key: at_key.clone(),
        end_bucket: range.end_bucket.clone(),
        end_key: range.end_key.clone(),
    };
    let left = Range { end_bucket: at_bucket, end_key: at_key, ..range.clone() };
    let next_epoch = descriptor.epoch + 1;
    let child_record = GroupRecord::new(child, Descriptor { range: right.clone(), epoch: next_epoch }, voters);
    hand_over(store, batch, &child_record, Origin::RangeGroup)?;
    let meta = store.cf(Cf::Meta)?;
    let left = Descriptor { range: left, epoch: next_epoch };
    batch.put_cf(meta, crate::range::DESCRIPTOR_KEY, crate::range::encode_descriptor(&left));
    batch.put_cf(meta, child_key(child), crate::range::encode_record(&child_record));
    // The write of this batch reloads the store's descriptor before the next command.
    store.range_changing();
    tracing::info!(child, left = %left.range, right = %right, epoch = next_epoch, "split the range");
    Ok(Applied::Done)
}

/// `SplitRange` in group 0, the directory: hands the keys from `at` up to the next recorded range
/// (or the end of the key space) to a new range group `child`, and records it at once — group 0
/// is the directory, so no `FinishSplit` follows. Its epoch is 2: a group born of a split, which
/// no replica initializes. Refused for an `at` inside a recorded range (`WrongRange`).
fn split_directory(
    store: &Store,
    batch: &mut WriteBatch,
    at: (String, String),
    child: u64,
    voters: Vec<(u64, String)>,
) -> Result<Applied, MetadataError> {
    let (at_bucket, at_key) = at;
    let records = crate::range::group_records(store)?;
    if let Some(done) = records.iter().find(|r| r.group == child) {
        let range = &done.descriptor.range;
        if range.starts_at(&at_bucket, &at_key) {
            return Ok(Applied::Done);
        }
        return Err(MetadataError::EntityAlreadyExists(format!("metadata group {child}")));
    }
    if child == 0 || voters.is_empty() || crate::split_plan::pending(store)?.iter().any(|p| p.child == child) {
        return Err(MetadataError::InvalidArgument("a split needs a new group id and voters".into()));
    }
    store.check_directory_key(&at_bucket, &at_key)?;
    let at_bytes = (at_bucket.as_bytes(), at_key.as_bytes());
    let next = records
        .iter()
        .map(|r| &r.descriptor.range)
        .filter(|r| (r.start_bucket.as_bytes(), r.start_key.as_bytes()) > at_bytes)
        .min_by(|a, b| {
            (a.start_bucket.as_bytes(), a.start_key.as_bytes())
                .cmp(&(b.start_bucket.as_bytes(), b.start_key.as_bytes()))
        });
    let right = Range {
        start_bucket: at_bucket,
        start_key: at_key,
        end_bucket: next.map(|r| r.start_bucket.clone()).unwrap_or_default(),
        end_key: next.map(|r| r.start_key.clone()).unwrap_or_default(),
    };
    right.validate()?;
    let child_record = GroupRecord::new(child, Descriptor { range: right.clone(), epoch: 2 }, voters);
    hand_over(store, batch, &child_record, Origin::Directory)?;
    batch.put_cf(
        store.cf(Cf::Meta)?,
        crate::range::group_record_key(child),
        crate::range::encode_record(&child_record),
    );
    crate::bucket_state::enqueue_for_new_group(store, batch, &child_record)?;
    // The write of this batch reloads the records, so group 0 refuses the child's keys from the
    // next command on.
    store.directory_changing();
    tracing::info!(child, right = %right, "split the directory's keys");
    Ok(Applied::Done)
}

/// Where a split's keys come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    RangeGroup,
    /// Group 0, whose database also holds what only the directory keeps.
    Directory,
}

/// Seeds the child with `child`'s range and deletes that range from the parent, into `batch`.
fn hand_over(store: &Store, batch: &mut WriteBatch, child: &GroupRecord, origin: Origin) -> Result<(), MetadataError> {
    let right = &child.descriptor.range;
    let moved = right_data_ids(store, right)?;
    let child_usage = seed_child(store, child, &moved, origin)?;
    let (low, high) = bounds(right);
    for cf in [Cf::Objects, Cf::Versions, Cf::Uploads] {
        batch.delete_range_cf(store.cf(cf)?, low.as_slice(), high.as_slice());
    }
    prune(store, batch, right, &moved, Side::Left)?;
    for (bucket, moved_usage) in &child_usage {
        let usage = crate::usage::get(store, bucket)?;
        let kept = Usage {
            objects: usage.objects.saturating_sub(moved_usage.objects),
            bytes: usage.bytes.saturating_sub(moved_usage.bytes),
        };
        crate::usage::set(store, batch, bucket, kept)?;
    }
    Ok(())
}

/// The encoded bounds of `range` in the object, version and upload column families.
fn bounds(range: &Range) -> (Vec<u8>, Vec<u8>) {
    let low = crate::keys::object(&range.start_bucket, &range.start_key);
    let high = if range.end_bucket.is_empty() && range.end_key.is_empty() {
        KEY_SPACE_END.to_vec()
    } else {
        crate::keys::object(&range.end_bucket, &range.end_key)
    };
    (low, high)
}

/// The data whose record is in `right`: owned by a record there, or allocated (an intent) for a
/// key there.
fn right_data_ids(store: &Store, right: &Range) -> Result<HashSet<Vec<u8>>, MetadataError> {
    let mut moved = HashSet::new();
    store.scan_prefix(Cf::Owners, b"", |data_id, value| {
        let owner: DataOwner = crate::store::decode(Cf::Owners, data_id, value)?;
        if right.contains(&owner.bucket, &owner.key) {
            moved.insert(data_id.to_vec());
        }
        Ok(true)
    })?;
    store.scan_prefix(Cf::Gc, b"", |key, value| {
        let record: GcRecord = crate::store::decode(Cf::Gc, key, value)?;
        if !record.bucket.is_empty() && right.contains(&record.bucket, &record.key) {
            moved.insert(record.data_id);
        }
        Ok(true)
    })?;
    Ok(moved)
}

/// Which half a pruning keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// Deletes, into `batch`, the entries of the column families that are not plain key ranges which
/// belong to the other half than `keep`: expiry entries and upload parts by their key, data-id
/// entries by `moved` (the right half's data). The right half also drops the queued notifications
/// (the parent delivers them).
fn prune(
    store: &Store,
    batch: &mut WriteBatch,
    right: &Range,
    moved: &HashSet<Vec<u8>>,
    keep: Side,
) -> Result<(), MetadataError> {
    let goes = |is_right: bool| if is_right { keep == Side::Left } else { keep == Side::Right };
    let mut deletes: Vec<(Cf, Vec<u8>)> = Vec::new();
    let mut data_entry = |cf: Cf, key: &[u8], data_id: Option<&[u8]>| {
        let data_id = data_id.ok_or_else(|| MetadataError::corrupt(cf.name(), "a key without a data id"))?;
        if goes(moved.contains(data_id)) {
            deletes.push((cf, key.to_vec()));
        }
        Ok::<_, MetadataError>(true)
    };
    store.scan_prefix(Cf::Owners, b"", |key, _| data_entry(Cf::Owners, key, Some(key)))?;
    store.scan_prefix(Cf::Gc, b"", |key, _| data_entry(Cf::Gc, key, crate::keys::parse_gc(key).map(|(_, id)| id)))?;
    store.scan_prefix(Cf::Holdings, b"", |key, _| data_entry(Cf::Holdings, key, holding_data_id(key)))?;
    store.scan_prefix(Cf::Damaged, b"", |key, _| data_entry(Cf::Damaged, key, damaged_data_id(key)))?;
    // Upload parts follow their upload (keyed by upload id, which the upload key ends with).
    let mut right_uploads: HashSet<Vec<u8>> = HashSet::new();
    let (low, high) = bounds(right);
    store.scan_prefix(Cf::Uploads, b"", |key, _| {
        if key >= low.as_slice() && key < high.as_slice() {
            let id = key
                .iter()
                .position(|&b| b == crate::keys::SEP)
                .and_then(|at| crate::keys::split_upload(&key[at + 1..]));
            if let Some((_, upload_id)) = id {
                right_uploads.insert(upload_id.to_vec());
            }
        }
        Ok(true)
    })?;
    store.scan_prefix(Cf::Parts, b"", |key, _| {
        let upload_id = key.iter().position(|&b| b == crate::keys::SEP).map(|at| &key[..at]);
        let upload_id = upload_id.ok_or_else(|| MetadataError::corrupt("parts", "a key without an upload id"))?;
        if goes(right_uploads.contains(upload_id)) {
            deletes.push((Cf::Parts, key.to_vec()));
        }
        Ok(true)
    })?;
    store.scan_prefix(Cf::Expiry, b"", |key, _| {
        let target = key.get(8..).and_then(|rest| {
            let at = rest.iter().position(|&b| b == crate::keys::SEP)?;
            Some((std::str::from_utf8(&rest[..at]).ok()?, &rest[at + 1..]))
        });
        let (bucket, object_key) = target.ok_or_else(|| MetadataError::corrupt("expiry", "a malformed key"))?;
        if goes(right.contains_bytes(bucket, object_key)) {
            deletes.push((Cf::Expiry, key.to_vec()));
        }
        Ok(true)
    })?;
    if keep == Side::Right {
        store.scan_prefix(Cf::Notify, b"", |key, _| {
            deletes.push((Cf::Notify, key.to_vec()));
            Ok(true)
        })?;
    }
    for (cf, key) in deletes {
        batch.delete_cf(store.cf(cf)?, key);
    }
    Ok(())
}

/// The data id of a holdings key: `node 0x00 disk 0x00 data_id`.
fn holding_data_id(key: &[u8]) -> Option<&[u8]> {
    let node_end = key.iter().position(|&b| b == crate::keys::SEP)?;
    let rest = &key[node_end + 1..];
    let disk_end = rest.iter().position(|&b| b == crate::keys::SEP)?;
    Some(&rest[disk_end + 1..])
}

/// The data id of a damaged-shard key: `disk 0x00 data_id stripe(4) index(4)`.
fn damaged_data_id(key: &[u8]) -> Option<&[u8]> {
    let disk_end = key.iter().position(|&b| b == crate::keys::SEP)?;
    let rest = &key[disk_end + 1..];
    rest.get(..rest.len().checked_sub(8)?)
}

/// Writes the child's database (see the module doc) and answers the usage it took from each
/// bucket. Built beside its final folder and renamed into place once flushed, so the folder
/// exists only complete. A folder already there is a leftover of this same split applied before
/// a crash that lost the parent's write (the child is opened only after the parent's write
/// persisted, see `groups`), so it is replaced. Blocking.
fn seed_child(
    store: &Store,
    child: &GroupRecord,
    moved: &HashSet<Vec<u8>>,
    origin: Origin,
) -> Result<BTreeMap<String, Usage>, MetadataError> {
    let dir = sibling_dir(store, child.group)?;
    if let Some(groups) = dir.parent() {
        std::fs::create_dir_all(groups)
            .map_err(|e| MetadataError::Internal(format!("creating {}: {e}", groups.display())))?;
    }
    let seeding = dir.with_extension("seeding");
    for leftover in [&seeding, &dir] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)
                .map_err(|e| MetadataError::Internal(format!("removing {}: {e}", leftover.display())))?;
        }
    }
    rocksdb::checkpoint::Checkpoint::new(store.db())
        .and_then(|checkpoint| checkpoint.create_checkpoint(&seeding))
        .map_err(MetadataError::db("checkpointing a range for its split"))?;
    let usage = {
        let seed = Store::open(&seeding)?;
        let usage = prune_to_child(&seed, child, moved, origin)?;
        for cf in Cf::ALL {
            seed.db().flush_cf(seed.cf(cf)?).map_err(MetadataError::db("flushing a split's new group"))?;
        }
        seed.sync_wal()?;
        usage
    };
    std::fs::rename(&seeding, &dir)
        .map_err(|e| MetadataError::Internal(format!("renaming {} into place: {e}", seeding.display())))?;
    sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
    Ok(usage)
}

fn sync_dir(dir: &Path) -> Result<(), MetadataError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| MetadataError::Internal(format!("syncing {}: {e}", dir.display())))
}

/// Reduces a checkpoint of the parent to the child's half, with the child's descriptor and a
/// fresh Raft state; answers the child's usage per bucket.
fn prune_to_child(
    seed: &Store,
    child: &GroupRecord,
    moved: &HashSet<Vec<u8>>,
    origin: Origin,
) -> Result<BTreeMap<String, Usage>, MetadataError> {
    let right = &child.descriptor.range;
    let mut batch = WriteBatch::default();
    if origin == Origin::Directory {
        // Nodes, IAM, accounts, the range table and the outbox stay group 0's alone; the buckets'
        // records are kept as the child's first copies, marked received (generation 0: any state
        // group 0 delivers later is newer).
        for cf in [Cf::Nodes, Cf::NodeAdmin, Cf::Iam, Cf::Meta] {
            let handle = seed.cf(cf)?;
            seed.scan_prefix(cf, b"", |key, _| {
                batch.delete_cf(handle, key);
                Ok(true)
            })?;
        }
        seed.scan_prefix(Cf::Buckets, b"", |key, _| {
            if let Ok(bucket) = std::str::from_utf8(key)
                && right.touches_bucket(bucket)
            {
                crate::bucket_state::mark_received(seed, &mut batch, bucket)?;
            }
            Ok(true)
        })?;
    }
    let (low, high) = bounds(right);
    for cf in [Cf::Objects, Cf::Versions, Cf::Uploads] {
        let handle = seed.cf(cf)?;
        batch.delete_range_cf(handle, &b""[..], low.as_slice());
        batch.delete_range_cf(handle, high.as_slice(), KEY_SPACE_END);
    }
    prune(seed, &mut batch, right, moved, Side::Right)?;
    // The parent's counters and its records of other children are not the child's.
    let meta = seed.cf(Cf::Meta)?;
    for prefix in [crate::usage::KEY_PREFIX, CHILD_PREFIX] {
        seed.scan_prefix(Cf::Meta, prefix, |key, _| {
            batch.delete_cf(meta, key);
            Ok(true)
        })?;
    }
    seed.write(batch)?;
    // Usage counted again over what is left: the right half.
    let usage = crate::usage::count(seed)?;
    let mut batch = WriteBatch::default();
    for (bucket, counted) in &usage {
        crate::usage::set(seed, &mut batch, bucket, *counted)?;
    }
    batch.put_cf(meta, crate::range::DESCRIPTOR_KEY, crate::range::encode_descriptor(&child.descriptor));
    crate::raft::seed_split_child(seed, &mut batch, &child.voters)?;
    seed.write(batch)?;
    Ok(usage)
}

/// The children `store`'s group split off (their records as it made them), in group order.
#[cfg(test)]
fn children(store: &Store) -> Result<Vec<GroupRecord>, MetadataError> {
    let mut found = Vec::new();
    store.scan_prefix(Cf::Meta, CHILD_PREFIX, |_, value| {
        found.push(crate::range::decode_record(value)?);
        Ok(true)
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::{BucketRecord, DataLayout, Segment, ShardLocation};

    use super::*;
    use crate::command::tests::{object, stamp};
    use crate::command::{Command, apply};
    use crate::range::tests::range;

    fn group_store(dir: &Path, group: u64, descriptor: Descriptor) -> Store {
        let path = dir.join(group.to_string());
        std::fs::create_dir_all(&path).unwrap();
        let store = Store::open(&path).unwrap();
        store.set_range(descriptor).unwrap();
        store
    }

    /// Puts `bucket/key` with 10 bytes of data `data_id` on two shards, allocated for that key.
    fn put(store: &Store, key: &str, data_id: &[u8]) -> Result<Applied, MetadataError> {
        let shards: Vec<ShardLocation> =
            (0..2).map(|i| ShardLocation { node_id: format!("n{i}"), disk_id: "d".into() }).collect();
        let intent = crate::keys::gc(1_000_000, data_id);
        let record =
            GcRecord { data_id: data_id.to_vec(), shards: shards.clone(), bucket: "b".into(), key: key.into() };
        apply(store, Command::RecordIntent { intent: intent.clone(), record })?;
        let layout = DataLayout {
            data_id: data_id.to_vec(),
            data_shards: 1,
            parity_shards: 1,
            stripe_size: 1 << 20,
            size: 10,
            shards,
        };
        let segment = Segment { size: 10, layout: Some(layout), etag: format!("{:032x}", 10), ..Default::default() };
        let record = object("b", key, segment);
        apply(
            store,
            Command::PutObject { record, intents: vec![intent], condition: Default::default(), stamp: stamp(1) },
        )
    }

    fn holds(store: &Store, data_id: &[u8]) -> bool {
        crate::data::holds(store, "n0", "d", data_id).unwrap()
    }

    #[test]
    fn a_split_moves_the_right_half_to_a_seeded_child() {
        let dir = tempfile::tempdir().unwrap();
        let parent = group_store(dir.path(), 1, Descriptor { range: range(("b", ""), ("", "")), epoch: 1 });
        let bucket = BucketRecord { name: "b".into(), ..Default::default() };
        apply(&parent, Command::SetBucketState { bucket: "b".into(), record: bucket, deleted: false, generation: 1 })
            .unwrap();
        for key in ["a", "c", "m", "x"] {
            put(&parent, key, format!("data-{key}").as_bytes()).unwrap();
        }
        // Allocated for a key of the right half, not committed yet: goes with it.
        let intent = crate::keys::gc(1_000_000, b"data-pending");
        let shards = vec![ShardLocation { node_id: "n0".into(), disk_id: "d".into() }];
        let pending = GcRecord { data_id: b"data-pending".to_vec(), shards, bucket: "b".into(), key: "y".into() };
        apply(&parent, Command::RecordIntent { intent, record: pending }).unwrap();
        assert_eq!(crate::usage::get(&parent, "b").unwrap(), Usage { objects: 4, bytes: 40 });

        let voters = vec![(1, "http://a".to_string())];
        let split = Command::SplitRange { at_bucket: "b".into(), at_key: "m".into(), child: 2, epoch: 1, voters };
        apply(&parent, split.clone()).unwrap();
        let left = parent.range().unwrap();
        assert_eq!((left.range.clone(), left.epoch), (range(("b", ""), ("b", "m")), 2));
        assert_eq!(crate::usage::get(&parent, "b").unwrap(), Usage { objects: 2, bytes: 20 });
        assert!(parent.find_object("b", "c").unwrap().is_some());
        assert!(parent.find_object("b", "m").unwrap().is_none());
        assert!(holds(&parent, b"data-a") && !holds(&parent, b"data-x") && !holds(&parent, b"data-pending"));
        assert!(parent.owner(b"data-c").unwrap().is_some() && parent.owner(b"data-m").unwrap().is_none());

        // The right half is the child's, with its own descriptor, usage, owners, holdings and intent.
        let child = Store::open(&dir.path().join("2")).unwrap();
        let right = child.range().unwrap();
        assert_eq!((right.range.clone(), right.epoch), (range(("b", "m"), ("", "")), 2));
        assert!(child.find_object("b", "m").unwrap().is_some() && child.find_object("b", "x").unwrap().is_some());
        assert!(child.find_object("b", "a").unwrap().is_none());
        assert_eq!(crate::usage::get(&child, "b").unwrap(), Usage { objects: 2, bytes: 20 });
        assert!(holds(&child, b"data-x") && holds(&child, b"data-pending") && !holds(&child, b"data-c"));
        assert!(child.owner(b"data-m").unwrap().is_some() && child.owner(b"data-a").unwrap().is_none());
        assert!(child.gc_entry(&crate::keys::gc(1_000_000, b"data-pending")).unwrap().is_some());
        assert!(children(&child).unwrap().is_empty());
        assert_eq!(children(&parent).unwrap().len(), 1);
        // The child's Raft state: everything up to index 0 applied, nothing to replay.
        assert!(!dir.path().join("2.seeding").exists());

        // A resend changes nothing; a split at the old range's keys is refused.
        apply(&parent, split).unwrap();
        let voters = vec![(1, "http://a".to_string())];
        let outside = Command::SplitRange { at_bucket: "b".into(), at_key: "z".into(), child: 3, epoch: 2, voters };
        assert!(apply(&parent, outside).is_err());
        // The parent refuses the right half's keys from now on; the child takes them.
        assert!(matches!(put(&parent, "n", b"data-n"), Err(MetadataError::WrongRange { epoch: 2, .. })));
        drop(parent);
        put(&child, "n", b"data-n").unwrap();
        assert_eq!(crate::usage::get(&child, "b").unwrap(), Usage { objects: 3, bytes: 30 });
    }

    #[test]
    fn group_0_hands_its_keys_from_a_split_point_to_a_new_range_group() {
        let dir = tempfile::tempdir().unwrap();
        let zero = Store::open(&dir.path().join("db")).unwrap();
        crate::command::tests::make_bucket(&zero, "b");
        for key in ["a", "m", "x"] {
            crate::bucket_state::tests::put_inline(&zero, key).unwrap();
        }
        let voters = vec![(1, "http://a".to_string())];
        let split = Command::SplitRange {
            at_bucket: "b".into(),
            at_key: "m".into(),
            child: 1,
            epoch: 0,
            voters: voters.clone(),
        };
        apply(&zero, split.clone()).unwrap();
        apply(&zero, split).unwrap();
        let records = crate::range::group_records(&zero).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].descriptor.range.clone(), records[0].descriptor.epoch),
            (range(("b", "m"), ("", "")), 2)
        );
        assert!(matches!(zero.check_directory_key("b", "x"), Err(MetadataError::WrongRange { .. })));
        assert!(zero.find_object("b", "a").unwrap().is_some() && zero.find_object("b", "m").unwrap().is_none());
        assert_eq!(crate::usage::get(&zero, "b").unwrap(), Usage { objects: 1, bytes: 1 });
        // Inside the new range: refused.
        let again = Command::SplitRange { at_bucket: "b".into(), at_key: "y".into(), child: 2, epoch: 0, voters };
        assert!(matches!(apply(&zero, again), Err(MetadataError::WrongRange { .. })));

        let child = Store::open(&dir.path().join("db.groups").join("1")).unwrap();
        assert_eq!(child.range().unwrap().range, range(("b", "m"), ("", "")));
        assert!(child.find_object("b", "x").unwrap().is_some() && child.find_object("b", "a").unwrap().is_none());
        assert_eq!(crate::usage::get(&child, "b").unwrap(), Usage { objects: 2, bytes: 2 });
        assert!(crate::bucket_state::received(&child, "b").unwrap());
        assert!(crate::range::group_records(&child).unwrap().is_empty(), "the range table stays group 0's");
        // The child takes the bucket's keys at once.
        drop(zero);
        crate::bucket_state::tests::put_inline(&child, "n").unwrap();
    }
}
