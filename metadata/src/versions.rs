//! S3 versioning: versions, delete markers and the null version of versioned buckets.
//!
//! Layout. The `objects` column family stays the index of current versions, so GET, HEAD and
//! ListObjects are one lookup or one range scan whatever the bucket's versioning. A bucket that was
//! ever versioned (Enabled or Suspended) also keeps every version it wrote, delete markers included,
//! in the `versions` column family at `keys::version(bucket, key, order)`; the newest one is the
//! current version, and a copy of it is in `objects` unless it is a delete marker. Orders count
//! down (see [`order_of`]), so a key's versions sort newest first. A record written before its
//! bucket was versioned (`version_id` empty, only in `objects`) is that key's null version; the
//! first versioned write to its key moves it into `versions` (or replaces it, when Suspended).
//!
//! Data. A version owns its data (`DataOwner::version_order`) until it is deleted by version id;
//! only then does its data go to the collector. The null version is the exception AWS makes: a
//! write or delete in a Suspended bucket replaces it, and its data goes at once (after the read
//! grace). Usage counters count current versions that are not delete markers.
//!
//! Ids. A version id is its order as 16 hex digits, so ids are URL-safe and a key's newer versions
//! sort first. The order is decided by the service before the command is queued
//! ([`Stamp::version_order`]); apply only lowers it below the key's newest version if the clock
//! went back, which is deterministic.

use coffer_proto::Message;
use coffer_proto::pb::metadata::{
    BucketRecord, DataOwner, ListObjectVersionsRequest, ListObjectVersionsResponse, ObjectRecord, ObjectVersion,
    Segment, Versioning,
};
use rocksdb::WriteBatch;

use crate::command::{Applied, Stamp};
use crate::data;
use crate::error::MetadataError;
use crate::keys;
use crate::store::{Cf, Store, bounded, decode};

/// The version id of the null version.
pub const NULL: &str = "null";

/// The order of a version made at sequence `seq` (increasing with time): newer is smaller.
pub fn order_of(seq: u64) -> u64 {
    u64::MAX - seq
}

pub fn version_id(order: u64) -> String {
    format!("{order:016x}")
}

pub fn parse_version_id(id: &str) -> Result<u64, MetadataError> {
    if id.len() != 16 {
        return Err(MetadataError::InvalidArgument("Invalid version id specified".into()));
    }
    u64::from_str_radix(id, 16).map_err(|_| MetadataError::InvalidArgument("Invalid version id specified".into()))
}

pub fn is_versioned(bucket: &BucketRecord) -> bool {
    bucket.versioning() != Versioning::Unversioned
}

/// A record written before its bucket was versioned: the null version, only in `objects`.
fn is_legacy(record: &ObjectRecord) -> bool {
    record.version_order == 0
}

/// The owner of the data a record references.
pub fn owner_of(record: &ObjectRecord) -> DataOwner {
    DataOwner {
        bucket: record.bucket.clone(),
        key: record.key.clone(),
        version_order: (!is_legacy(record)).then_some(record.version_order),
        ..Default::default()
    }
}

/// The newest version of `key` whose order is at least `from`, from the `versions` column family.
fn first_from(store: &Store, bucket: &str, key: &str, from: u64) -> Result<Option<ObjectRecord>, MetadataError> {
    let prefix = keys::version_prefix(bucket, key);
    let mut found = None;
    let mut iter = store.db().raw_iterator_cf_opt(store.cf(Cf::Versions)?, bounded(&prefix));
    iter.seek(keys::version(bucket, key, from));
    if let Some((k, v)) = iter.item()
        && k.starts_with(&prefix)
    {
        found = Some(decode(Cf::Versions, k, v)?);
    }
    iter.status().map_err(MetadataError::db("reading versions"))?;
    Ok(found)
}

/// The null version of `key` in `versions`. Scans the key's versions: only Suspended writes and
/// requests naming `versionId=null` need it.
fn find_null(store: &Store, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetadataError> {
    let mut found = None;
    store.scan_prefix(Cf::Versions, &keys::version_prefix(bucket, key), |k, v| {
        let record: ObjectRecord = decode(Cf::Versions, k, v)?;
        if record.version_id == NULL {
            found = Some(record);
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(found)
}

fn no_such_key(bucket: &str, key: &str) -> MetadataError {
    MetadataError::NoSuchKey { bucket: bucket.to_string(), key: key.to_string() }
}

/// The record a GET names: with `version_id`, that version (delete markers included); without,
/// the current version, or the delete marker that hides the key. NoSuchKey when there is none.
pub fn get(store: &Store, bucket: &str, key: &str, version_id: &str) -> Result<ObjectRecord, MetadataError> {
    if version_id.is_empty() {
        if let Some(record) = store.find_object(bucket, key)? {
            return Ok(record);
        }
        store.bucket(bucket)?;
        // Only a miss pays this seek: the key may be hidden by a delete marker.
        return match first_from(store, bucket, key, 0)? {
            Some(marker) if marker.delete_marker => Ok(marker),
            _ => Err(no_such_key(bucket, key)),
        };
    }
    store.bucket(bucket)?;
    let found = if version_id == NULL {
        match store.find_object(bucket, key)? {
            Some(current) if is_legacy(&current) => Some(current),
            _ => find_null(store, bucket, key)?,
        }
    } else {
        store.find_version(bucket, key, parse_version_id(version_id)?)?
    };
    found.ok_or_else(|| no_such_key(bucket, key))
}

/// Makes room for `record` as the newest version of its key in a versioned bucket: sets its order
/// and version id (a new id when Enabled, the null version when Suspended), moves a record written
/// before versioning into `versions`, and drops the null version a Suspended write replaces.
/// Returns the segments of the version replaced for good, whose data the caller retires.
pub fn place(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &BucketRecord,
    record: &mut ObjectRecord,
    current: Option<&ObjectRecord>,
    stamp: &Stamp,
) -> Result<Vec<Segment>, MetadataError> {
    let enabled = bucket.versioning() == Versioning::Enabled;
    let mut order = stamp.version_order;
    if let Some(newest) = first_from(store, &record.bucket, &record.key, 0)?
        && order >= newest.version_order
    {
        // The clock went back (or two ids met): stay newest, deterministically.
        order = newest
            .version_order
            .checked_sub(1)
            .ok_or_else(|| MetadataError::Internal("version orders exhausted".into()))?;
    }
    if order == 0 || order == u64::MAX {
        return Err(MetadataError::Internal("version order out of range".into()));
    }
    let versions = store.cf(Cf::Versions)?;
    let mut replaced = Vec::new();
    match current.filter(|c| is_legacy(c)) {
        Some(legacy) if enabled => {
            // Keys with a legacy current version have no other versions, so just older is free.
            let mut moved = legacy.clone();
            moved.version_id = NULL.to_string();
            moved.version_order = order + 1;
            data::own(store, batch, &moved.segments, &owner_of(&moved))?;
            batch.put_cf(
                versions,
                keys::version(&moved.bucket, &moved.key, moved.version_order),
                moved.encode_to_vec(),
            );
        }
        Some(legacy) => {
            crate::object_lock::check_delete(legacy, stamp.now_unix_ms, false)?;
            replaced.clone_from(&legacy.segments)
        }
        None if !enabled => {
            if let Some(old) = find_null(store, &record.bucket, &record.key)? {
                crate::object_lock::check_delete(&old, stamp.now_unix_ms, false)?;
                batch.delete_cf(versions, keys::version(&old.bucket, &old.key, old.version_order));
                replaced = old.segments;
            }
        }
        None => {}
    }
    record.version_order = order;
    record.version_id = if enabled { version_id(order) } else { NULL.to_string() };
    Ok(replaced)
}

/// Stores `record` (already placed) as its key's current version.
pub fn write_current(store: &Store, batch: &mut WriteBatch, record: &ObjectRecord) -> Result<(), MetadataError> {
    if !is_legacy(record) {
        batch.put_cf(
            store.cf(Cf::Versions)?,
            keys::version(&record.bucket, &record.key, record.version_order),
            record.encode_to_vec(),
        );
    }
    let object = keys::object(&record.bucket, &record.key);
    if record.delete_marker {
        batch.delete_cf(store.cf(Cf::Objects)?, object);
    } else {
        batch.put_cf(store.cf(Cf::Objects)?, object, record.encode_to_vec());
    }
    Ok(())
}

/// PutObject (and CopyObject) in a versioned bucket; `current` is the key's record in `objects`.
pub fn put_object(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &BucketRecord,
    mut record: ObjectRecord,
    current: Option<ObjectRecord>,
    intents: &[Vec<u8>],
    stamp: &Stamp,
) -> Result<Applied, MetadataError> {
    record.delete_marker = false;
    let replaced = place(store, batch, bucket, &mut record, current.as_ref(), stamp)?;
    let owner = owner_of(&record);
    let ObjectRecord { segments, .. } = &mut record;
    data::commit(store, batch, intents, segments, &replaced, stamp, stamp.replaced_gc_unix_ms, &owner)?;
    crate::usage::account(store, batch, &record.bucket, current.as_ref(), Some(&record))?;
    write_current(store, batch, &record)?;
    Ok(Applied::Object(record))
}

/// DeleteObject without a version id in a versioned bucket: a delete marker becomes current.
pub fn add_delete_marker(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &BucketRecord,
    key: &str,
    stamp: &Stamp,
) -> Result<Applied, MetadataError> {
    let current = store.find_object(&bucket.name, key)?;
    let mut marker = ObjectRecord {
        bucket: bucket.name.clone(),
        key: key.to_string(),
        delete_marker: true,
        last_modified_unix_ms: stamp.now_unix_ms,
        ..Default::default()
    };
    let replaced = place(store, batch, bucket, &mut marker, current.as_ref(), stamp)?;
    data::schedule_all(store, batch, stamp.replaced_gc_unix_ms, &replaced)?;
    crate::usage::account(store, batch, &bucket.name, current.as_ref(), None)?;
    write_current(store, batch, &marker)?;
    Ok(Applied::Deleted { existed: true, version_id: marker.version_id, delete_marker: true })
}

/// DeleteObject with a version id: that version goes for good (its data to the collector); if it
/// was current, the next newest version becomes current. Deleting a version that does not exist
/// succeeds, as in S3. A version object lock protects is refused (AccessDenied), whoever asks —
/// lifecycle expiration takes this path too; only a GOVERNANCE retention gives way, when
/// `bypass_governance` (set only for a request whose gateway checked s3:BypassGovernanceRetention).
pub fn delete_version(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    key: &str,
    version_id: &str,
    bypass_governance: bool,
    stamp: &Stamp,
) -> Result<Applied, MetadataError> {
    let target = match get(store, bucket, key, version_id) {
        Ok(target) => target,
        Err(MetadataError::NoSuchKey { .. }) => {
            return Ok(Applied::Deleted { existed: false, version_id: version_id.to_string(), delete_marker: false });
        }
        Err(e) => return Err(e),
    };
    crate::object_lock::check_delete(&target, stamp.now_unix_ms, bypass_governance)?;
    data::schedule_all(store, batch, stamp.replaced_gc_unix_ms, &target.segments)?;
    let objects = store.cf(Cf::Objects)?;
    let counted = (!target.delete_marker).then_some(&target);
    if is_legacy(&target) {
        crate::usage::account(store, batch, bucket, counted, None)?;
        batch.delete_cf(objects, keys::object(bucket, key));
    } else {
        batch.delete_cf(store.cf(Cf::Versions)?, keys::version(bucket, key, target.version_order));
        let newest = first_from(store, bucket, key, 0)?;
        if newest.is_some_and(|n| n.version_order == target.version_order) {
            let next = match target.version_order.checked_add(1) {
                Some(from) => first_from(store, bucket, key, from)?,
                None => None,
            };
            let next = next.filter(|n| !n.delete_marker);
            crate::usage::account(store, batch, bucket, counted, next.as_ref())?;
            match &next {
                Some(next) => batch.put_cf(objects, keys::object(bucket, key), next.encode_to_vec()),
                None => batch.delete_cf(objects, keys::object(bucket, key)),
            }
        }
    }
    let shown = if target.version_id.is_empty() { NULL.to_string() } else { target.version_id.clone() };
    Ok(Applied::Deleted { existed: true, version_id: shown, delete_marker: target.delete_marker })
}

/// Replaces the tags of one version (and of the current copy in `objects` when it is current).
pub fn set_tags(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    key: &str,
    version_id: &str,
    tags: std::collections::HashMap<String, String>,
) -> Result<Applied, MetadataError> {
    let mut record = get(store, bucket, key, version_id)?;
    if record.delete_marker {
        return Err(MetadataError::InvalidArgument("a delete marker has no tags".into()));
    }
    record.tags = tags;
    rewrite(store, batch, &record)?;
    Ok(Applied::Object(record))
}

/// Writes a changed record of one version to every place it lives: `versions` (unless it was
/// written before versioning), and `objects` when it is the current version.
pub fn rewrite(store: &Store, batch: &mut WriteBatch, record: &ObjectRecord) -> Result<(), MetadataError> {
    let (bucket, key) = (record.bucket.as_str(), record.key.as_str());
    let current = store.find_object(bucket, key)?;
    if current.is_some_and(|c| c.version_order == record.version_order) {
        batch.put_cf(store.cf(Cf::Objects)?, keys::object(bucket, key), record.encode_to_vec());
    }
    if !is_legacy(record) {
        batch.put_cf(store.cf(Cf::Versions)?, keys::version(bucket, key, record.version_order), record.encode_to_vec());
    }
    Ok(())
}

pub fn set_versioning(
    store: &Store,
    batch: &mut WriteBatch,
    name: &str,
    versioning: Versioning,
) -> Result<Applied, MetadataError> {
    if versioning == Versioning::Unversioned {
        return Err(MetadataError::InvalidArgument("versioning can only be Enabled or Suspended".into()));
    }
    let mut bucket = store.bucket(name)?;
    crate::object_lock::check_versioning(&bucket, versioning)?;
    bucket.set_versioning(versioning);
    batch.put_cf(store.cf(Cf::Buckets)?, keys::bucket(name), bucket.encode_to_vec());
    Ok(Applied::Bucket(bucket))
}

/// One entry of the merged walk over `objects` (records written before versioning) and `versions`.
struct Entry {
    key: String,
    record: ObjectRecord,
}

/// ListObjectVersions as one merged range scan over `versions` and the `objects` records written
/// before versioning. Work is bounded by the page: an `objects` entry is only decoded when its key
/// is not past the `versions` cursor, and common prefixes are skipped with a seek.
pub fn list(store: &Store, req: &ListObjectVersionsRequest) -> Result<ListObjectVersionsResponse, MetadataError> {
    let (prefix, delimiter, key_marker) = (req.prefix.as_str(), req.delimiter.as_str(), req.key_marker.as_str());
    let checked =
        [("prefix", prefix), ("delimiter", delimiter), ("key-marker", key_marker), ("start-at", &req.start_at)];
    for (name, value) in checked {
        if value.contains('\0') {
            return Err(MetadataError::InvalidArgument(format!("{name} contains NUL")));
        }
    }
    store.bucket(&req.bucket)?;
    let limit = req.max_keys.min(crate::listing::MAX_PAGE) as usize;
    let base = keys::bucket_prefix(&req.bucket);
    let join = |tail: &[u8]| [base.as_slice(), tail].concat();
    let mut objects = store.db().raw_iterator_cf_opt(store.cf(Cf::Objects)?, bounded(&base));
    let mut versions = store.db().raw_iterator_cf_opt(store.cf(Cf::Versions)?, bounded(&base));
    // Entries of this key are not its latest version (the page starts inside the key).
    let mut started_inside: Option<String> = None;
    // Where the listing starts, as a key (for the range check below).
    let mut at: Vec<u8>;
    if key_marker.is_empty() || key_marker < prefix {
        objects.seek(join(prefix.as_bytes()));
        versions.seek(join(prefix.as_bytes()));
        at = prefix.as_bytes().to_vec();
    } else if let Some(cp) = crate::listing::common_prefix(key_marker, prefix, delimiter) {
        let Some(next) = keys::successor(&join(cp.as_bytes())) else {
            return Ok(ListObjectVersionsResponse::default());
        };
        objects.seek(&next);
        versions.seek(&next);
        at = next.get(base.len()..).unwrap_or_default().to_vec();
    } else {
        objects.seek(join(&[key_marker.as_bytes(), &[keys::SEP]].concat()));
        let after = match req.version_id_marker.as_str() {
            "" => None,
            NULL => find_null(store, &req.bucket, key_marker)?.map(|r| r.version_order),
            id => Some(parse_version_id(id)?),
        };
        match after.and_then(|o| o.checked_add(1)) {
            Some(from) => {
                versions.seek(keys::version(&req.bucket, key_marker, from));
                started_inside = Some(key_marker.to_string());
                at = key_marker.as_bytes().to_vec();
            }
            None => {
                versions.seek(join(&[key_marker.as_bytes(), &[keys::SEP + 1]].concat()));
                at = [key_marker.as_bytes(), &[keys::SEP]].concat();
            }
        }
    }
    // A page resuming where another group's part of the key space ended (its `resume_at`).
    if req.start_at.as_bytes() > at.as_slice() {
        at = req.start_at.as_bytes().to_vec();
        objects.seek(join(&at));
        versions.seek(join(&at));
        started_inside = None;
    }
    // Range groups: the walk stops where this group's part of the key space ends.
    let until = match crate::range::listing_end(store, &req.bucket, &at)? {
        Some((bucket, key)) if bucket == req.bucket => Some(key),
        _ => None,
    };
    let mut full = false;
    let mut out = ListObjectVersionsResponse::default();
    let mut last_key: Option<String> = started_inside;
    let mut count = 0usize;
    loop {
        // The next entry in (key, order) order; `objects` entries with a version id are copies of
        // a `versions` entry and are skipped.
        let next = loop {
            let version_head = match versions.item() {
                Some((k, v)) => {
                    let rest = k.get(base.len()..).ok_or_else(|| MetadataError::corrupt("version key", "too short"))?;
                    let (key, _) =
                        keys::split_version(rest).ok_or_else(|| MetadataError::corrupt("version key", "malformed"))?;
                    Some((key.to_vec(), v.to_vec(), k.to_vec()))
                }
                None => None,
            };
            let object_head = objects.item().map(|(k, v)| (k[base.len()..].to_vec(), v.to_vec(), k.to_vec()));
            match (object_head, version_head) {
                (Some((ok, ov, okey)), vh) if vh.as_ref().is_none_or(|(vk, _, _)| ok <= *vk) => {
                    let record: ObjectRecord = decode(Cf::Objects, &okey, &ov)?;
                    objects.next();
                    if is_legacy(&record) {
                        break Some(Entry { key: key_string(&ok)?, record });
                    }
                }
                (_, Some((vk, vv, vkey))) => {
                    let record: ObjectRecord = decode(Cf::Versions, &vkey, &vv)?;
                    versions.next();
                    break Some(Entry { key: key_string(&vk)?, record });
                }
                (_, None) => break None,
            }
        };
        let Some(entry) = next else { break };
        if !entry.key.starts_with(prefix) || until.as_ref().is_some_and(|until| entry.key >= *until) {
            break;
        }
        if count == limit {
            out.is_truncated = true;
            full = true;
            break;
        }
        if let Some(cp) = crate::listing::common_prefix(&entry.key, prefix, delimiter) {
            out.common_prefixes.push(cp.to_string());
            out.next_key_marker = cp.to_string();
            out.next_version_id_marker.clear();
            count += 1;
            let Some(next) = keys::successor(&join(cp.as_bytes())) else {
                full = true;
                break;
            };
            objects.seek(&next);
            versions.seek(&next);
            continue;
        }
        let is_latest = last_key.as_deref() != Some(entry.key.as_str());
        last_key = Some(entry.key.clone());
        let mut record = entry.record;
        record.segments.clear();
        if record.version_id.is_empty() {
            record.version_id = NULL.to_string();
        }
        out.next_key_marker = entry.key;
        out.next_version_id_marker.clone_from(&record.version_id);
        out.versions.push(ObjectVersion { record: Some(record), is_latest });
        count += 1;
    }
    objects.status().map_err(MetadataError::db("listing versions"))?;
    versions.status().map_err(MetadataError::db("listing versions"))?;
    // The listing goes on past this group's part: the next group owns what follows.
    if let Some(until) = until
        && !full
        && until.starts_with(prefix)
    {
        out.is_truncated = true;
        out.resume_at = until;
    }
    if !out.is_truncated {
        out.next_key_marker.clear();
        out.next_version_id_marker.clear();
    }
    Ok(out)
}

fn key_string(key: &[u8]) -> Result<String, MetadataError> {
    String::from_utf8(key.to_vec()).map_err(|e| MetadataError::corrupt("object key", e))
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::{DataLayout, ShardLocation};

    use super::*;
    use crate::command::tests::{GRACE_MS, allocate, gc_entries, make_bucket, object, stamp, store};
    use crate::command::{Command, apply};
    use crate::usage::{self, Usage};

    fn set(store: &Store, versioning: Versioning) {
        apply(store, Command::SetBucketVersioning { name: "b".into(), versioning }).unwrap();
    }

    /// Puts `key` with fresh erasure-coded data `data_id` of `size` bytes at time `now`.
    fn put(store: &Store, key: &str, data_id: &str, size: u64, now: i64) -> ObjectRecord {
        let (segment, intent) = allocate(store, data_id.as_bytes(), size, 10_000_000);
        let command = Command::PutObject {
            record: object("b", key, segment),
            intents: vec![intent],
            condition: Default::default(),
            stamp: stamp(now),
        };
        apply(store, command).unwrap().into_object().unwrap()
    }

    fn delete(store: &Store, key: &str, version_id: &str, now: i64) -> (bool, String, bool) {
        let command = if version_id.is_empty() {
            Command::DeleteObject { bucket: "b".into(), key: key.into(), stamp: stamp(now) }
        } else {
            Command::DeleteVersion {
                bucket: "b".into(),
                key: key.into(),
                version_id: version_id.into(),
                bypass_governance: false,
                stamp: stamp(now),
            }
        };
        apply(store, command).unwrap().into_deleted().unwrap()
    }

    /// (key, version id, is latest, delete marker) of one listed entry.
    type Listed = (String, String, bool, bool);

    fn data_of(record: &ObjectRecord) -> Vec<u8> {
        record.segments[0].layout.as_ref().unwrap().data_id.clone()
    }

    fn list_all(store: &Store, prefix: &str, delimiter: &str, max_keys: u32) -> (Vec<Listed>, Vec<String>) {
        let mut request = ListObjectVersionsRequest {
            bucket: "b".into(),
            prefix: prefix.into(),
            delimiter: delimiter.into(),
            max_keys,
            ..Default::default()
        };
        let (mut versions, mut prefixes) = (Vec::new(), Vec::new());
        loop {
            let page = list(store, &request).unwrap();
            assert!(page.versions.len() + page.common_prefixes.len() <= max_keys as usize);
            for v in page.versions {
                let r = v.record.unwrap();
                assert!(r.segments.is_empty());
                versions.push((r.key, r.version_id, v.is_latest, r.delete_marker));
            }
            prefixes.extend(page.common_prefixes);
            if !page.is_truncated {
                return (versions, prefixes);
            }
            request.key_marker = page.next_key_marker;
            request.version_id_marker = page.next_version_id_marker;
        }
    }

    #[test]
    fn versioning_state_is_kept_in_the_bucket_record_and_never_returns_to_unversioned() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        assert_eq!(store.bucket("b").unwrap().versioning(), Versioning::Unversioned);
        set(&store, Versioning::Enabled);
        assert_eq!(store.bucket("b").unwrap().versioning(), Versioning::Enabled);
        set(&store, Versioning::Suspended);
        assert_eq!(store.bucket("b").unwrap().versioning(), Versioning::Suspended);
        let back = Command::SetBucketVersioning { name: "b".into(), versioning: Versioning::Unversioned };
        assert!(matches!(apply(&store, back), Err(MetadataError::InvalidArgument(_))));
        let missing = Command::SetBucketVersioning { name: "nope".into(), versioning: Versioning::Enabled };
        assert!(matches!(apply(&store, missing), Err(MetadataError::NoSuchBucket(_))));
    }

    #[test]
    fn version_ids_are_url_safe_and_sort_newest_first() {
        let (older, newer) = (version_id(order_of(1_000)), version_id(order_of(1_001)));
        assert!(newer < older);
        assert!(older.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(parse_version_id(&older).unwrap(), order_of(1_000));
        assert!(parse_version_id("null").is_err() && parse_version_id("zzzzzzzzzzzzzzzz").is_err());
    }

    #[test]
    fn unversioned_buckets_write_no_versions() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let record = put(&store, "k", "d1", 10, 100);
        assert!(record.version_id.is_empty() && record.version_order == 0);
        put(&store, "k", "d2", 20, 200);
        assert_eq!(gc_entries(&store), vec![(200 + GRACE_MS, b"d1".to_vec())]);
        let mut count = 0;
        store
            .scan_prefix(Cf::Versions, b"", |_, _| {
                count += 1;
                Ok(true)
            })
            .unwrap();
        assert_eq!(count, 0);
        assert_eq!(delete(&store, "k", "", 300), (true, String::new(), false));
    }

    #[test]
    fn enabled_puts_keep_noncurrent_versions_and_their_data() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        put(&store, "k", "d0", 5, 50); // before versioning: the null version
        set(&store, Versioning::Enabled);
        let v1 = put(&store, "k", "d1", 10, 100);
        let v2 = put(&store, "k", "d2", 20, 200);
        assert_eq!(v1.version_id.len(), 16);
        assert!(v2.version_id < v1.version_id, "newer ids sort first");
        assert!(gc_entries(&store).is_empty(), "no version's data is collected");
        assert_eq!(store.object("b", "k").unwrap().version_id, v2.version_id);
        assert_eq!(data_of(&get(&store, "b", "k", &v1.version_id).unwrap()), b"d1");
        assert_eq!(data_of(&get(&store, "b", "k", "null").unwrap()), b"d0");
        assert!(matches!(get(&store, "b", "k", &version_id(order_of(7))), Err(MetadataError::NoSuchKey { .. })));
        assert!(matches!(get(&store, "b", "k", "bogus"), Err(MetadataError::InvalidArgument(_))));
        // Each version owns its own data, so repair can find it.
        assert_eq!(store.owner(b"d1").unwrap().unwrap().version_order, Some(v1.version_order));
        assert_eq!(store.owned_layout(b"d0").unwrap().unwrap().1.data_id, b"d0");
        // Usage counts the current version only.
        assert_eq!(usage::get(&store, "b").unwrap(), Usage { objects: 1, bytes: 20 });
        let (versions, _) = list_all(&store, "", "", 1000);
        let ids: Vec<_> = versions.iter().map(|v| (v.1.as_str(), v.2)).collect();
        assert_eq!(ids, vec![(v2.version_id.as_str(), true), (v1.version_id.as_str(), false), ("null", false)]);
    }

    #[test]
    fn a_clock_that_went_back_still_makes_the_newest_version() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        set(&store, Versioning::Enabled);
        let v1 = put(&store, "k", "d1", 10, 500);
        let v2 = put(&store, "k", "d2", 20, 100);
        assert!(v2.version_order < v1.version_order);
        assert_eq!(store.object("b", "k").unwrap().version_id, v2.version_id);
    }

    #[test]
    fn delete_markers_hide_the_key_and_deleting_by_id_is_permanent() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        set(&store, Versioning::Enabled);
        let v1 = put(&store, "k", "d1", 10, 100);
        let v2 = put(&store, "k", "d2", 20, 200);
        let (existed, marker_id, is_marker) = delete(&store, "k", "", 300);
        assert!(existed && is_marker && marker_id.len() == 16);
        assert!(store.find_object("b", "k").unwrap().is_none(), "ListObjects no longer sees the key");
        let current = get(&store, "b", "k", "").unwrap();
        assert!(current.delete_marker && current.version_id == marker_id);
        assert_eq!(usage::get(&store, "b").unwrap(), Usage::default());
        assert!(gc_entries(&store).is_empty(), "a delete marker collects nothing");
        // The bucket still holds versions.
        let refused = apply(&store, Command::DeleteBucket { name: "b".into(), stamp: stamp(310) });
        assert!(matches!(refused, Err(MetadataError::BucketNotEmpty(_))));

        // Removing the marker brings v2 back.
        assert_eq!(delete(&store, "k", &marker_id, 400), (true, marker_id.clone(), true));
        assert_eq!(store.object("b", "k").unwrap().version_id, v2.version_id);
        assert_eq!(usage::get(&store, "b").unwrap(), Usage { objects: 1, bytes: 20 });

        // Deleting a noncurrent version collects its data and leaves the current one alone.
        assert_eq!(delete(&store, "k", &v1.version_id, 500), (true, v1.version_id.clone(), false));
        assert_eq!(gc_entries(&store), vec![(500 + GRACE_MS, b"d1".to_vec())]);
        assert_eq!(store.object("b", "k").unwrap().version_id, v2.version_id);
        // Deleting the current version: the key is gone, its data collected.
        delete(&store, "k", &v2.version_id, 600);
        assert!(get(&store, "b", "k", "").is_err());
        assert_eq!(gc_entries(&store).len(), 2);
        assert_eq!(usage::get(&store, "b").unwrap(), Usage::default());
        // A version that does not exist: nothing happens, as in S3.
        assert!(!delete(&store, "k", &v2.version_id, 700).0);
        apply(&store, Command::DeleteBucket { name: "b".into(), stamp: stamp(800) }).unwrap();
    }

    #[test]
    fn deleting_the_current_version_makes_the_next_newest_current() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        set(&store, Versioning::Enabled);
        let v1 = put(&store, "k", "d1", 10, 100);
        let (_, marker, _) = delete(&store, "k", "", 200);
        let v3 = put(&store, "k", "d3", 30, 300);
        delete(&store, "k", &v3.version_id, 400);
        // The next newest is the delete marker: still no current object.
        assert!(store.find_object("b", "k").unwrap().is_none());
        assert!(get(&store, "b", "k", "").unwrap().delete_marker);
        assert_eq!(usage::get(&store, "b").unwrap(), Usage::default());
        delete(&store, "k", &marker, 500);
        assert_eq!(store.object("b", "k").unwrap().version_id, v1.version_id);
        assert_eq!(usage::get(&store, "b").unwrap(), Usage { objects: 1, bytes: 10 });
    }

    #[test]
    fn suspended_writes_replace_the_null_version_and_keep_the_others() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        put(&store, "k", "d0", 5, 50);
        set(&store, Versioning::Enabled);
        let v1 = put(&store, "k", "d1", 10, 100);
        set(&store, Versioning::Suspended);
        let n1 = put(&store, "k", "d2", 20, 200);
        assert_eq!(n1.version_id, "null");
        // The old null version (written before versioning) is replaced, and its data goes.
        assert_eq!(gc_entries(&store), vec![(200 + GRACE_MS, b"d0".to_vec())]);
        let n2 = put(&store, "k", "d3", 30, 300);
        assert_eq!(gc_entries(&store), vec![(200 + GRACE_MS, b"d0".to_vec()), (300 + GRACE_MS, b"d2".to_vec())]);
        assert_eq!(data_of(&get(&store, "b", "k", "null").unwrap()), b"d3");
        assert_eq!(data_of(&get(&store, "b", "k", &v1.version_id).unwrap()), b"d1");
        assert_eq!(store.object("b", "k").unwrap().version_order, n2.version_order);
        // A delete makes a null delete marker, replacing the null version.
        let (_, id, marker) = delete(&store, "k", "", 400);
        assert!(marker && id == "null");
        assert_eq!(gc_entries(&store).len(), 3);
        let (versions, _) = list_all(&store, "", "", 1000);
        let listed: Vec<_> = versions.iter().map(|v| (v.1.as_str(), v.2, v.3)).collect();
        assert_eq!(listed, vec![("null", true, true), (v1.version_id.as_str(), false, false)]);
        // Deleting the null marker by id: v1 is current again.
        delete(&store, "k", "null", 500);
        assert_eq!(store.object("b", "k").unwrap().version_id, v1.version_id);
        assert_eq!(usage::get(&store, "b").unwrap(), Usage { objects: 1, bytes: 10 });
    }

    #[test]
    fn tags_of_one_version() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        set(&store, Versioning::Enabled);
        let v1 = put(&store, "k", "d1", 10, 100);
        let v2 = put(&store, "k", "d2", 20, 200);
        let tags: std::collections::HashMap<String, String> = [("a".to_string(), "1".to_string())].into();
        let command = Command::SetVersionTags {
            bucket: "b".into(),
            key: "k".into(),
            version_id: v1.version_id.clone(),
            tags: tags.clone(),
        };
        apply(&store, command).unwrap();
        assert_eq!(get(&store, "b", "k", &v1.version_id).unwrap().tags, tags);
        assert!(store.object("b", "k").unwrap().tags.is_empty());
        // Tags of the current version land in both copies.
        apply(&store, Command::SetObjectTags { bucket: "b".into(), key: "k".into(), tags: tags.clone() }).unwrap();
        assert_eq!(get(&store, "b", "k", &v2.version_id).unwrap().tags, tags);
        let (_, marker, _) = delete(&store, "k", "", 300);
        let on_marker = Command::SetVersionTags { bucket: "b".into(), key: "k".into(), version_id: marker, tags };
        assert!(apply(&store, on_marker).is_err());
    }

    #[test]
    fn repair_of_a_noncurrent_version_updates_that_version() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        set(&store, Versioning::Enabled);
        let v1 = put(&store, "k", "d1", 10, 100);
        let v2 = put(&store, "k", "d2", 20, 200);
        let moved = |record: &ObjectRecord| {
            let layout: &DataLayout = record.segments[0].layout.as_ref().unwrap();
            let target = ShardLocation { node_id: "n9".into(), disk_id: "d9".into() };
            let command = Command::CompleteRepair {
                data_id: layout.data_id.clone(),
                index: 0,
                source: layout.shards[0].clone(),
                target: target.clone(),
                stamp: stamp(300),
            };
            assert!(apply(&store, command).unwrap().into_repaired().unwrap());
            target
        };
        let target = moved(&v1);
        let shard0 = |r: ObjectRecord| r.segments[0].layout.as_ref().unwrap().shards[0].clone();
        assert_eq!(shard0(get(&store, "b", "k", &v1.version_id).unwrap()), target);
        assert_ne!(shard0(store.object("b", "k").unwrap()), target, "the current version is untouched");
        // The current version: both of its copies move.
        let target = moved(&v2);
        assert_eq!(shard0(store.object("b", "k").unwrap()), target);
        assert_eq!(shard0(get(&store, "b", "k", &v2.version_id).unwrap()), target);
    }

    #[test]
    fn completing_an_upload_in_an_enabled_bucket_keeps_the_replaced_version() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        set(&store, Versioning::Enabled);
        let v1 = put(&store, "k", "d1", 10, 100);
        let template = ObjectRecord { bucket: "b".into(), key: "k".into(), ..Default::default() };
        let upload = coffer_proto::pb::metadata::UploadRecord {
            upload_id: "up".into(),
            bucket: "b".into(),
            key: "k".into(),
            template: Some(template),
            ..Default::default()
        };
        apply(&store, Command::CreateUpload { upload }).unwrap();
        let (segment, intent) = allocate(&store, b"p1", 10, 10_000_000);
        let part = coffer_proto::pb::metadata::PartRecord {
            upload_id: "up".into(),
            part_number: 1,
            segment: Some(segment),
            ..Default::default()
        };
        let put_part =
            Command::PutPart { bucket: "b".into(), key: "k".into(), part, intents: vec![intent], stamp: stamp(150) };
        apply(&store, put_part).unwrap();
        let parts = vec![coffer_proto::pb::metadata::CompletedPart { part_number: 1, etag: format!("{:032x}", 10) }];
        let complete = Command::CompleteUpload {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: "up".into(),
            parts,
            condition: Default::default(),
            stamp: stamp(200),
        };
        let record = apply(&store, complete).unwrap().into_object().unwrap();
        assert_eq!(record.version_id.len(), 16);
        assert!(gc_entries(&store).is_empty());
        assert_eq!(data_of(&get(&store, "b", "k", &v1.version_id).unwrap()), b"d1");
        assert_eq!(store.owner(b"p1").unwrap().unwrap().version_order, Some(record.version_order));
    }

    #[test]
    fn listing_pages_reproduce_the_full_listing_with_markers_and_prefixes() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        // Written before versioning, then versions, delete markers and a key that is only a marker.
        put(&store, "a/1", "x1", 1, 10);
        put(&store, "c", "x2", 1, 11);
        set(&store, Versioning::Enabled);
        let mut now = 100;
        let mut data = 0;
        for key in ["a/1", "a/2", "b", "b/x", "d"] {
            for _ in 0..3 {
                now += 1;
                data += 1;
                put(&store, key, &format!("v{data}"), 1, now);
            }
        }
        now += 1;
        delete(&store, "b", "", now);
        now += 1;
        delete(&store, "e", "", now);
        let (full, prefixes) = list_all(&store, "", "", 1000);
        assert!(prefixes.is_empty());
        let keys: Vec<_> = full.iter().map(|v| v.0.as_str()).collect();
        assert_eq!(keys.len(), 3 + 1 + 3 + 4 + 3 + 1 + 3 + 1);
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        // Exactly one latest per key, the first of its key.
        for (i, v) in full.iter().enumerate() {
            assert_eq!(v.2, i == 0 || full[i - 1].0 != v.0, "{v:?}");
        }
        assert!(full.iter().any(|v| v.0 == "c" && v.1 == "null" && v.2));
        assert!(full.iter().any(|v| v.0 == "e" && v.3 && v.2));
        for max in [1, 2, 3, 5, 7] {
            assert_eq!(list_all(&store, "", "", max).0, full, "max-keys {max}");
        }
        let (under_a, _) = list_all(&store, "a/", "", 2);
        assert_eq!(under_a.len(), 4 + 3);
        for max in [1, 2, 1000] {
            let (versions, prefixes) = list_all(&store, "", "/", max);
            assert_eq!(prefixes, vec!["a/".to_string(), "b/".to_string()], "max-keys {max}");
            let keys: Vec<_> = versions.iter().map(|v| v.0.as_str()).collect();
            assert_eq!(keys, vec!["b", "b", "b", "b", "c", "d", "d", "d", "e"], "max-keys {max}");
        }
    }
}
