//! Bucket state from group 0 to the range groups (issue 11; docs/design/metadata-sharding.md,
//! "Bucket state that object commands need").
//!
//! Group 0 is authoritative for buckets. Every bucket change it applies (create, settings, delete)
//! while some range group's range touches the bucket also writes, in the same batch, one entry per
//! such group into its outbox (`meta`, [`OUTBOX_PREFIX`] + big-endian group + bucket): the record
//! after the change (or its deletion) and a generation from group 0's counter, so a later change
//! replaces a pending one. `CreateRangeGroup` enqueues every bucket the new range touches. A task
//! on group 0's leader ([`deliver`]) sends each entry to its range group (`MetadataRaft.SetBucketState`
//! by header), and once the group acknowledged it proposes `BucketStateDelivered`, which removes the
//! entry if it still holds that generation. The outbox is group 0's replicated state, so it
//! survives leader changes and restarts; sending twice is harmless: a range group applies a state
//! only if its generation is newer than the one it holds ([`HELD_PREFIX`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use coffer_proto::Message;
use coffer_proto::metadata_client::{ClientConfig, GROUP_HEADER, MetadataClient};
use coffer_proto::pb::metadata::{BucketRecord, SetBucketStateRequest};
use rocksdb::WriteBatch;

use crate::command::{Applied, Command};
use crate::error::MetadataError;
use crate::keys;
use crate::raft::Replication;
use crate::store::{Cf, Store};

/// Group 0's `meta` prefix of its outbox entries.
pub const OUTBOX_PREFIX: &[u8] = b"bucket_outbox/";
/// Group 0's `meta` key of the last generation handed out (big-endian u64).
const GENERATION_KEY: &[u8] = b"bucket_state_generation";
/// A range group's `meta` prefix of the generation it holds per bucket (big-endian u64).
pub const HELD_PREFIX: &[u8] = b"bucket_state/";
/// In a range group's `meta`: + bucket → empty while DeleteBucket's fence of the bucket stands.
pub const FENCE_PREFIX: &[u8] = b"bucket_fence/";
const FORMAT_VERSION: u8 = 1;
/// The first wait of a range group after a failed delivery (doubling up to [`MAX_BACKOFF`]).
const DELIVERY_INTERVAL: Duration = Duration::from_millis(100);
/// How often the delivery task looks at the outbox unasked: it wakes when an apply writes an entry,
/// when the range-group records are reloaded and when this replica's leadership changes; this poll
/// only guards against a missed wake-up.
const SAFETY_POLL: Duration = Duration::from_secs(5);
/// The longest wait before another attempt at a group that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One outbox entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    pub group: u64,
    pub bucket: String,
    pub generation: u64,
    pub deleted: bool,
    /// The bucket record's protobuf bytes (empty when deleted).
    pub record: Vec<u8>,
}

fn outbox_key(group: u64, bucket: &str) -> Vec<u8> {
    [OUTBOX_PREFIX, &group.to_be_bytes(), bucket.as_bytes()].concat()
}

fn held_key(bucket: &str) -> Vec<u8> {
    [HELD_PREFIX, bucket.as_bytes()].concat()
}

fn fence_key(bucket: &str) -> Vec<u8> {
    [FENCE_PREFIX, bucket.as_bytes()].concat()
}

fn read_u64(store: &Store, key: &[u8]) -> Result<Option<u64>, MetadataError> {
    let bytes = store.db().get_cf(store.cf(Cf::Meta)?, key).map_err(MetadataError::db("reading bucket state"))?;
    bytes
        .map(|b| {
            let array: [u8; 8] =
                b.as_slice().try_into().map_err(|_| MetadataError::corrupt("bucket state", "not 8 bytes"))?;
            Ok(u64::from_be_bytes(array))
        })
        .transpose()
}

/// Hands out the next generation: read from the database (earlier commands are written, each as
/// its own batch) and stored in `batch`. Once per command, so the entries one command queues share
/// a generation (they are for different (group, bucket) pairs).
fn next_generation(store: &Store, batch: &mut WriteBatch) -> Result<u64, MetadataError> {
    let next = read_u64(store, GENERATION_KEY)?.unwrap_or(0) + 1;
    batch.put_cf(store.cf(Cf::Meta)?, GENERATION_KEY, next.to_be_bytes());
    Ok(next)
}

/// Puts `bucket`'s state (its record, or `None` for deleted) for `group` into `batch`, replacing
/// a pending entry of the same (group, bucket).
fn put_entry(
    store: &Store,
    batch: &mut WriteBatch,
    group: u64,
    bucket: &str,
    state: Option<&BucketRecord>,
    generation: u64,
) -> Result<(), MetadataError> {
    let pending = Pending {
        group,
        bucket: bucket.to_string(),
        generation,
        deleted: state.is_none(),
        record: state.map(Message::encode_to_vec).unwrap_or_default(),
    };
    let bytes = postcard::to_extend(&pending, vec![FORMAT_VERSION]).expect("an outbox entry always encodes into a Vec");
    batch.put_cf(store.cf(Cf::Meta)?, outbox_key(group, bucket), bytes);
    store.outbox_changing();
    Ok(())
}

/// Group 0, after a bucket command applied: queues the bucket's new state for the range groups
/// whose ranges touch it. Nothing while there are no range groups.
pub(crate) fn after_bucket_change(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    applied: &Applied,
) -> Result<(), MetadataError> {
    if store.range().is_some() {
        return Ok(());
    }
    let records = store.directory_records();
    let groups: Vec<u64> =
        records.iter().filter(|r| r.descriptor.range.touches_bucket(bucket)).map(|r| r.group).collect();
    if groups.is_empty() {
        return Ok(());
    }
    let state = match applied {
        Applied::Bucket(record) => Some(record),
        // DeleteBucket answers Done.
        _ => None,
    };
    let generation = next_generation(store, batch)?;
    for group in groups {
        put_entry(store, batch, group, bucket, state, generation)?;
    }
    Ok(())
}

/// Group 0, in the apply of `CreateRangeGroup`: queues every bucket the new group's range touches
/// (the record is only in `batch` yet, hence passed in).
pub(crate) fn enqueue_for_new_group(
    store: &Store,
    batch: &mut WriteBatch,
    record: &crate::range::GroupRecord,
) -> Result<(), MetadataError> {
    let buckets: Vec<BucketRecord> =
        store.list_buckets()?.into_iter().filter(|b| record.descriptor.range.touches_bucket(&b.name)).collect();
    if buckets.is_empty() {
        return Ok(());
    }
    let generation = next_generation(store, batch)?;
    for bucket in &buckets {
        put_entry(store, batch, record.group, &bucket.name, Some(bucket), generation)?;
    }
    Ok(())
}

fn decode(bytes: &[u8]) -> Result<Pending, MetadataError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|e| MetadataError::corrupt("bucket state outbox entry", e))
        }
        _ => Err(MetadataError::corrupt("bucket state outbox entry", "unknown format")),
    }
}

/// Every outbox entry, in (group, bucket) order. Blocking.
pub fn pending(store: &Store) -> Result<Vec<Pending>, MetadataError> {
    let cf = store.cf(Cf::Meta)?;
    let mut entries = Vec::new();
    for item in store.db().prefix_iterator_cf(cf, OUTBOX_PREFIX) {
        let (key, value) = item.map_err(MetadataError::db("listing the bucket state outbox"))?;
        if !key.starts_with(OUTBOX_PREFIX) {
            break;
        }
        entries.push(decode(&value)?);
    }
    Ok(entries)
}

/// `BucketStateDelivered` in group 0: removes the entry if it still holds `generation` (a newer
/// change queued since is delivered next).
pub(crate) fn delivered(
    store: &Store,
    batch: &mut WriteBatch,
    group: u64,
    bucket: &str,
    generation: u64,
) -> Result<Applied, MetadataError> {
    if store.range().is_some() {
        return Err(MetadataError::InvalidArgument("the bucket state outbox is group 0's".into()));
    }
    let key = outbox_key(group, bucket);
    let current = store.db().get_cf(store.cf(Cf::Meta)?, &key).map_err(MetadataError::db("reading the outbox"))?;
    if let Some(bytes) = current
        && decode(&bytes)?.generation == generation
    {
        batch.delete_cf(store.cf(Cf::Meta)?, key);
    }
    Ok(Applied::Done)
}

/// `SetBucketState` in a range group: applies the state if `generation` is newer than the one held.
pub(crate) fn set_state(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    generation: u64,
    record: Option<BucketRecord>,
) -> Result<Applied, MetadataError> {
    if store.range().is_none() {
        return Err(MetadataError::InvalidArgument("bucket state is set in range groups, not group 0".into()));
    }
    if read_u64(store, &held_key(bucket))?.is_some_and(|held| held >= generation) {
        return Ok(Applied::Done);
    }
    let buckets = store.cf(Cf::Buckets)?;
    match record {
        Some(record) => {
            if record.name != bucket {
                return Err(MetadataError::InvalidArgument("the record names another bucket".into()));
            }
            // A record of another creation (a deletion and a re-creation coalesced in group 0's
            // outbox) ends the old bucket's fence; a settings change does not.
            let held = store.get::<BucketRecord>(Cf::Buckets, &keys::bucket(bucket))?;
            if held.is_none_or(|held| held.created_unix_ms != record.created_unix_ms) {
                batch.delete_cf(store.cf(Cf::Meta)?, fence_key(bucket));
            }
            batch.put_cf(buckets, keys::bucket(bucket), record.encode_to_vec());
        }
        None => {
            batch.delete_cf(buckets, keys::bucket(bucket));
            batch.delete_cf(store.cf(Cf::Meta)?, fence_key(bucket));
        }
    }
    batch.put_cf(store.cf(Cf::Meta)?, held_key(bucket), generation.to_be_bytes());
    Ok(Applied::Done)
}

/// `FenceBucket` in a range group, DeleteBucket's fence: answers `Existed(true)` when the group
/// holds a key of `bucket` (an object, a version or an upload; the group holds only its range's)
/// and changes nothing then; otherwise fences the bucket, so every later keyed command of it is
/// refused (`Unavailable`, see `command::apply_into`) until its deletion or a record of another
/// creation arrives, or `lift`. Group 0 lifts the fences it placed when one group was not empty
/// or the deletion failed.
pub(crate) fn fence(store: &Store, batch: &mut WriteBatch, bucket: &str, lift: bool) -> Result<Applied, MetadataError> {
    if store.range().is_none() {
        return Err(MetadataError::InvalidArgument("buckets are fenced in range groups, not group 0".into()));
    }
    let meta = store.cf(Cf::Meta)?;
    if lift {
        batch.delete_cf(meta, fence_key(bucket));
        return Ok(Applied::Existed(false));
    }
    let holds = store.bucket_has_objects(bucket)? || !store.all_uploads(bucket)?.is_empty();
    if !holds {
        batch.put_cf(meta, fence_key(bucket), []);
    }
    Ok(Applied::Existed(holds))
}

/// Whether DeleteBucket's fence of `bucket` stands in this range group.
pub(crate) fn fenced(store: &Store, bucket: &str) -> Result<bool, MetadataError> {
    let found =
        store.db().get_cf(store.cf(Cf::Meta)?, fence_key(bucket)).map_err(MetadataError::db("reading a fence"))?;
    Ok(found.is_some())
}

/// Whether a range group ever received a state of `bucket` (so a missing bucket is really gone,
/// not yet delivered).
/// A split of group 0 hands its new range group the bucket records it holds: marked as received at
/// generation 0, below every generation group 0 delivers.
pub(crate) fn mark_received(store: &Store, batch: &mut WriteBatch, bucket: &str) -> Result<(), MetadataError> {
    batch.put_cf(store.cf(Cf::Meta)?, held_key(bucket), 0u64.to_be_bytes());
    Ok(())
}

pub(crate) fn received(store: &Store, bucket: &str) -> Result<bool, MetadataError> {
    Ok(read_u64(store, &held_key(bucket))?.is_some())
}

/// Group 0's delivery task: while this replica leads group 0, sends every outbox entry to its range
/// group and proposes `BucketStateDelivered` once acknowledged; a group that fails waits (doubling
/// up to [`MAX_BACKOFF`]) before the next attempt. Idle between wake-ups (see [`SAFETY_POLL`]), and
/// reads nothing while there are no range groups. Runs until `stop` fires.
pub async fn deliver(
    directory: Arc<Store>,
    zero: Replication,
    config: ClientConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut client: Option<MetadataClient> = None;
    let mut backoff: HashMap<u64, (Duration, tokio::time::Instant)> = HashMap::new();
    let mut leadership = zero.leadership();
    let mut leadership_open = true;
    loop {
        let mut wake_at = tokio::time::Instant::now() + SAFETY_POLL;
        // No records, no entries: an entry is queued only for a recorded range group.
        if zero.is_leader() && !directory.directory_records().is_empty() {
            let store = directory.clone();
            match tokio::task::spawn_blocking(move || pending(&store)).await {
                Ok(Ok(entries)) if !entries.is_empty() => {
                    if client.is_none() {
                        let urls: Vec<String> = zero.voters().into_iter().map(|(_, url)| url).collect();
                        match MetadataClient::connect(&urls, &config) {
                            Ok(connected) => client = Some(connected),
                            Err(e) => tracing::error!(error = %e, "cannot build a client to deliver bucket state"),
                        }
                    }
                    match &client {
                        Some(client) => {
                            deliver_once(client, &zero, entries, &mut backoff).await;
                            // Failed groups are due again when their wait ends; delivered entries
                            // leave the outbox by an apply (a newer one there wakes this task).
                            let now = tokio::time::Instant::now();
                            backoff.retain(|_, (_, until)| *until > now);
                            if let Some(due) = backoff.values().map(|(_, until)| *until).min() {
                                wake_at = wake_at.min(due);
                            }
                        }
                        None => wake_at = wake_at.min(tokio::time::Instant::now() + MAX_BACKOFF),
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "cannot read the bucket state outbox"),
                Err(e) => tracing::error!(error = %e, "the outbox task failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = directory.outbox_written() => {}
            changed = leadership.changed(), if leadership_open => leadership_open = changed.is_ok(),
            _ = stop.changed() => return,
        }
    }
}

async fn deliver_once(
    client: &MetadataClient,
    zero: &Replication,
    entries: Vec<Pending>,
    backoff: &mut HashMap<u64, (Duration, tokio::time::Instant)>,
) {
    for entry in entries {
        if backoff.get(&entry.group).is_some_and(|(_, until)| *until > tokio::time::Instant::now()) {
            continue;
        }
        let record = if entry.deleted {
            None
        } else {
            match BucketRecord::decode(entry.record.as_slice()) {
                Ok(record) => Some(record),
                Err(e) => {
                    tracing::error!(bucket = %entry.bucket, error = %e, "an outbox entry holds no bucket record");
                    continue;
                }
            }
        };
        let message = SetBucketStateRequest {
            bucket: entry.bucket.clone(),
            record,
            deleted: entry.deleted,
            generation: entry.generation,
        };
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(GROUP_HEADER, entry.group.into());
        let sent = client.raft().set_bucket_state(request).await;
        let outcome = match sent {
            Ok(_) => {
                let done = Command::BucketStateDelivered {
                    group: entry.group,
                    bucket: entry.bucket.clone(),
                    generation: entry.generation,
                };
                zero.submit(done).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Err(status) => Err(status.to_string()),
        };
        match outcome {
            Ok(()) => {
                backoff.remove(&entry.group);
            }
            Err(e) => {
                let wait = backoff.get(&entry.group).map_or(DELIVERY_INTERVAL, |(w, _)| (*w * 2).min(MAX_BACKOFF));
                tracing::warn!(group = entry.group, bucket = %entry.bucket, error = %e, ?wait, "bucket state not delivered yet");
                backoff.insert(entry.group, (wait, tokio::time::Instant::now() + wait));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use coffer_proto::ErrorCode;
    use coffer_proto::pb::metadata::Versioning;

    use super::*;
    use crate::command::apply;
    use crate::range::Descriptor;
    use crate::range::tests::range;

    fn create_group(group: u64, start: (&str, &str), end: (&str, &str)) -> Command {
        Command::CreateRangeGroup { group, range: range(start, end), voters: vec![(1, "http://a".into())] }
    }

    fn create_bucket(name: &str) -> Command {
        Command::CreateBucket { bucket: BucketRecord { name: name.into(), ..Default::default() } }
    }

    /// A one-byte object of bucket "b", stored inline.
    pub(crate) fn put_inline(store: &Store, key: &str) -> Result<Applied, MetadataError> {
        let segment = coffer_proto::pb::metadata::Segment { size: 1, inline_data: b"x".to_vec(), ..Default::default() };
        let record = coffer_proto::pb::metadata::ObjectRecord {
            bucket: "b".into(),
            key: key.into(),
            size: 1,
            segments: vec![segment],
            ..Default::default()
        };
        let stamp = crate::command::tests::stamp(1);
        apply(store, Command::PutObject { record, intents: vec![], condition: Default::default(), stamp })
    }

    fn outbox(store: &Store) -> Vec<(u64, String, u64, bool)> {
        pending(store).unwrap().into_iter().map(|p| (p.group, p.bucket, p.generation, p.deleted)).collect()
    }

    #[test]
    fn group_0_queues_bucket_changes_for_the_range_groups_of_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        apply(&store, create_bucket("a")).unwrap();
        assert!(outbox(&store).is_empty(), "nothing to deliver without range groups");
        apply(&store, create_bucket("b")).unwrap();
        // A new group gets the buckets its range touches: "b" only.
        apply(&store, create_group(1, ("b", "k"), ("c", ""))).unwrap();
        assert_eq!(outbox(&store), [(1, "b".to_string(), 1, false)]);
        apply(&store, create_group(2, ("d", ""), ("", ""))).unwrap();
        assert_eq!(outbox(&store).len(), 1, "no bucket from d on yet");
        // A change replaces the pending entry with a newer generation.
        apply(&store, Command::SetBucketVersioning { name: "b".into(), versioning: Versioning::Enabled }).unwrap();
        let entries = pending(&store).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].generation, 2);
        let record = BucketRecord::decode(entries[0].record.as_slice()).unwrap();
        assert_eq!(record.versioning(), Versioning::Enabled);
        apply(&store, create_bucket("zz")).unwrap();
        assert_eq!(outbox(&store), [(1, "b".to_string(), 2, false), (2, "zz".to_string(), 3, false)]);
        // An acknowledgement of an older generation leaves the newer one queued.
        apply(&store, Command::BucketStateDelivered { group: 1, bucket: "b".into(), generation: 1 }).unwrap();
        assert_eq!(outbox(&store).len(), 2);
        apply(&store, Command::BucketStateDelivered { group: 1, bucket: "b".into(), generation: 2 }).unwrap();
        assert_eq!(outbox(&store), [(2, "zz".to_string(), 3, false)]);
        let stamp = crate::command::tests::stamp(1);
        apply(&store, Command::DeleteBucket { name: "zz".into(), stamp }).unwrap();
        assert_eq!(outbox(&store), [(2, "zz".to_string(), 4, true)]);
        let state = Command::SetBucketState {
            bucket: "b".into(),
            record: BucketRecord { name: "b".into(), ..Default::default() },
            deleted: false,
            generation: 9,
        };
        assert_eq!(apply(&store, state).unwrap_err().code(), ErrorCode::InvalidArgument, "not in group 0");
    }

    #[test]
    fn a_range_group_applies_newer_bucket_states_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_range(Descriptor { range: range(("b", ""), ("c", "")), epoch: 1 }).unwrap();
        let put = |key: &str| put_inline(&store, key);
        assert_eq!(put("k").unwrap_err().code(), ErrorCode::Unavailable, "the bucket's state has not arrived");
        let state = |generation, versioning: Versioning, deleted| {
            let mut record = BucketRecord { name: "b".into(), ..Default::default() };
            record.set_versioning(versioning);
            Command::SetBucketState { bucket: "b".into(), record, deleted, generation }
        };
        apply(&store, state(2, Versioning::Enabled, false)).unwrap();
        apply(&store, state(1, Versioning::Suspended, false)).unwrap();
        assert_eq!(store.bucket("b").unwrap().versioning(), Versioning::Enabled, "an older state is ignored");
        put("k").unwrap();
        apply(&store, state(3, Versioning::Enabled, true)).unwrap();
        assert!(store.find_bucket("b").unwrap().is_none());
        assert_eq!(put("k").unwrap_err().code(), ErrorCode::NoSuchBucket, "gone, not pending");
        let outside = Command::SetBucketState {
            bucket: "d".into(),
            record: BucketRecord { name: "d".into(), ..Default::default() },
            deleted: false,
            generation: 1,
        };
        assert_eq!(apply(&store, outside).unwrap_err().code(), ErrorCode::WrongRange);
    }

    #[test]
    fn a_fence_refuses_new_keys_of_an_empty_range_and_reports_a_non_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_range(Descriptor { range: range(("b", ""), ("c", "")), epoch: 1 }).unwrap();
        let put = |key: &str| put_inline(&store, key);
        let delete = |key: &str| {
            let stamp = crate::command::tests::stamp(2);
            apply(&store, Command::DeleteObject { bucket: "b".into(), key: key.into(), stamp })
        };
        let fence =
            |lift| apply(&store, Command::FenceBucket { bucket: "b".into(), lift }).unwrap().into_existed().unwrap();
        let state = |generation, created_unix_ms, deleted| {
            let record = BucketRecord { name: "b".into(), created_unix_ms, ..Default::default() };
            Command::SetBucketState { bucket: "b".into(), record, deleted, generation }
        };
        apply(&store, state(1, 10, false)).unwrap();
        put("k").unwrap();
        // Not empty: answered so, and nothing fenced.
        assert!(fence(false), "the range holds k");
        assert!(!fenced(&store, "b").unwrap());
        put("k2").unwrap();
        delete("k").unwrap();
        delete("k2").unwrap();
        // Empty: fenced, and new keys are refused (retryable) until the fence is lifted.
        assert!(!fence(false));
        assert_eq!(put("k3").unwrap_err().code(), ErrorCode::Unavailable, "fenced");
        // A settings change of the same bucket keeps the fence.
        apply(&store, state(2, 10, false)).unwrap();
        assert_eq!(put("k3").unwrap_err().code(), ErrorCode::Unavailable, "still fenced");
        assert!(!fence(true));
        put("k3").unwrap();
        delete("k3").unwrap();
        // The deletion ends the fence; a re-created bucket takes keys again.
        assert!(!fence(false));
        apply(&store, state(3, 10, true)).unwrap();
        assert!(!fenced(&store, "b").unwrap());
        assert!(!fence(false));
        // A record of another creation (deletion and re-creation coalesced) ends it too.
        apply(&store, state(4, 20, false)).unwrap();
        put("k4").unwrap();
        // Group 0 fences nothing.
        let dir0 = tempfile::tempdir().unwrap();
        let zero = Store::open(dir0.path()).unwrap();
        let refused = apply(&zero, Command::FenceBucket { bucket: "b".into(), lift: false }).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::InvalidArgument);
    }
}
