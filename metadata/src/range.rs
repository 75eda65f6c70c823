//! Ranges of the (bucket, key) space and the range groups that own them (issue 11, step 1:
//! "groups on a node"; see docs/design/metadata-sharding.md).
//!
//! A range is half-open, `[start, end)`, over (bucket, key) ordered by bucket then key, bytewise —
//! the order of the `objects` column family's keys (`bucket 0x00 key`, bucket names never hold a
//! 0x00). An empty end is the end of the key space. Group 0, the directory, has no range and
//! accepts every command (today's single group); a range group stores its [`Descriptor`] in its own
//! database (`meta`) before its Raft starts, and `command::apply_into` refuses, with
//! [`MetadataError::WrongRange`], every command outside it — deterministically, since every replica
//! holds the same descriptor and the descriptor only changes through the log (splits, later).
//!
//! Group 0 records every range group it created (`CreateRangeGroup`) under [`GROUP_RECORD_PREFIX`]
//! in its `meta` column family: the range, its epoch and the group's initial voters.

use coffer_proto::pb::metadata::{KeyBound, KeyRange};
use rocksdb::WriteBatch;

use crate::command::{Applied, Command};
use crate::error::MetadataError;
use crate::store::{Cf, Store};

/// Group 0's `meta` key prefix of its range-group records: the prefix, then the group id as a
/// big-endian u64, so they list in group order.
pub const GROUP_RECORD_PREFIX: &[u8] = b"range_group/";
/// A range group's own `meta` key of its descriptor.
pub const DESCRIPTOR_KEY: &[u8] = b"range_descriptor";
/// The first byte of the stored forms below (postcard after it).
const RECORD_VERSION: u8 = 1;
/// The first byte of a [`GroupRecord`]'s stored form since moves (version 1 is still read).
const GROUP_RECORD_VERSION: u8 = 2;

/// `[start, end)` over (bucket, key). An end with an empty bucket and key is "to the end".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Range {
    pub start_bucket: String,
    pub start_key: String,
    pub end_bucket: String,
    pub end_key: String,
}

impl Range {
    fn start(&self) -> (&[u8], &[u8]) {
        (self.start_bucket.as_bytes(), self.start_key.as_bytes())
    }

    fn end(&self) -> Option<(&[u8], &[u8])> {
        if self.end_bucket.is_empty() && self.end_key.is_empty() {
            None
        } else {
            Some((self.end_bucket.as_bytes(), self.end_key.as_bytes()))
        }
    }

    /// Refuses an empty range (end at or before start) and an end with a key but no bucket.
    pub fn validate(&self) -> Result<(), MetadataError> {
        if self.end_bucket.is_empty() && !self.end_key.is_empty() {
            return Err(MetadataError::InvalidArgument("a range end with a key needs a bucket".into()));
        }
        if let Some(end) = self.end()
            && end <= self.start()
        {
            return Err(MetadataError::InvalidArgument(format!("empty range {self}")));
        }
        Ok(())
    }

    /// Whether (bucket, key) is in `[start, end)`.
    pub fn contains(&self, bucket: &str, key: &str) -> bool {
        let at = (bucket.as_bytes(), key.as_bytes());
        at >= self.start() && self.end().is_none_or(|end| at < end)
    }

    /// [`Range::contains`] of raw key bytes: a listing's start need not be a key (the byte
    /// successor of a common prefix may not be UTF-8).
    pub fn contains_bytes(&self, bucket: &str, key: &[u8]) -> bool {
        let at = (bucket.as_bytes(), key);
        at >= self.start() && self.end().is_none_or(|end| at < end)
    }

    /// Whether the range starts at (bucket, key).
    pub fn starts_at(&self, bucket: &str, key: &str) -> bool {
        self.start_bucket == bucket && self.start_key == key
    }

    /// Whether a split at (bucket, key) leaves both halves non-empty: inside, after the start.
    pub fn splits_at(&self, bucket: &str, key: &str) -> bool {
        self.contains(bucket, key) && !self.starts_at(bucket, key)
    }

    /// Whether some key of `bucket` is in the range: bucket-level commands (create, settings)
    /// belong to every range group that holds part of the bucket.
    pub fn touches_bucket(&self, bucket: &str) -> bool {
        let bucket = bucket.as_bytes();
        // (bucket, start_key) is the start itself when the buckets are equal, and below any valid end.
        bucket >= self.start_bucket.as_bytes()
            && self.end().is_none_or(|end| bucket == self.start_bucket.as_bytes() || (bucket, &b""[..]) < end)
    }

    /// Whether the two ranges share a key.
    pub fn overlaps(&self, other: &Range) -> bool {
        let below = |a: &Range, b: &Range| a.end().is_some_and(|end| end <= b.start());
        !below(self, other) && !below(other, self)
    }

    pub fn from_pb(range: &KeyRange) -> Range {
        let (start, end) = (range.start.clone().unwrap_or_default(), range.end.clone().unwrap_or_default());
        Range { start_bucket: start.bucket, start_key: start.key, end_bucket: end.bucket, end_key: end.key }
    }

    pub fn to_pb(&self, epoch: u64) -> KeyRange {
        KeyRange {
            start: Some(KeyBound { bucket: self.start_bucket.clone(), key: self.start_key.clone() }),
            end: Some(KeyBound { bucket: self.end_bucket.clone(), key: self.end_key.clone() }),
            epoch,
        }
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}/{}, ", self.start_bucket, self.start_key)?;
        match self.end() {
            Some(_) => write!(f, "{}/{})", self.end_bucket, self.end_key),
            None => f.write_str("end)"),
        }
    }
}

/// What a range group stores about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Descriptor {
    pub range: Range,
    /// Bumped by every change of the range (none in step 1: always 1).
    pub epoch: u64,
}

/// Group 0's record of a range group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupRecord {
    pub group: u64,
    pub descriptor: Descriptor,
    /// The voters (node id, URL): group 0's voters when the creation was proposed (a split's child:
    /// its parent's), then as moves left them (see `group_move`).
    pub voters: Vec<(u64, String)>,
    /// How many moves have started on the group: after one, no replica initializes it.
    pub moves: u64,
    /// The move under way, if any.
    pub moving: Option<Move>,
}

/// A change of a range group's replicas: one replica joins, one leaves, or both (see `group_move`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Move {
    /// The replica leaving the group.
    pub from: Option<u64>,
    /// The replica joining it (node id in group 0, URL).
    pub to: Option<(u64, String)>,
}

impl GroupRecord {
    /// A new group's record: its voters as given, no move yet.
    pub fn new(group: u64, descriptor: Descriptor, voters: Vec<(u64, String)>) -> GroupRecord {
        GroupRecord { group, descriptor, voters, moves: 0, moving: None }
    }

    /// Whether node `id` keeps a replica of the group: one of its voters, or the one joining it.
    pub fn lists(&self, id: u64) -> bool {
        self.voters.iter().any(|(voter, _)| *voter == id)
            || self.moving.as_ref().and_then(|m| m.to.as_ref()).is_some_and(|(to, _)| *to == id)
    }

    /// Whether the voters start the group themselves, each proposing the recorded membership:
    /// only a group created empty whose voters never changed. Any other replica waits for the
    /// group's leader to send it the log or a snapshot — one that initialized with a later voter
    /// list would hold a first entry that differs from the group's.
    pub fn voters_initialize(&self) -> bool {
        self.descriptor.epoch == 1 && self.moves == 0
    }
}

/// The stored form of a [`GroupRecord`] before moves existed.
#[derive(serde::Deserialize)]
struct GroupRecordV1 {
    group: u64,
    descriptor: Descriptor,
    voters: Vec<(u64, String)>,
}

pub(crate) fn to_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // As in `command_codec::encode`: a Vec grows and every sequence knows its length.
    postcard::to_extend(value, vec![RECORD_VERSION]).expect("a range record always encodes into a Vec")
}

pub(crate) fn from_bytes<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, MetadataError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => postcard::from_bytes(body).map_err(|e| MetadataError::corrupt(what, e)),
        Some((version, _)) => Err(MetadataError::corrupt(what, format!("unknown format version {version}"))),
        None => Err(MetadataError::corrupt(what, "no bytes")),
    }
}

pub fn encode_descriptor(descriptor: &Descriptor) -> Vec<u8> {
    to_bytes(descriptor)
}

pub fn decode_descriptor(bytes: &[u8]) -> Result<Descriptor, MetadataError> {
    from_bytes("range descriptor", bytes)
}

pub(crate) fn encode_record(record: &GroupRecord) -> Vec<u8> {
    postcard::to_extend(record, vec![GROUP_RECORD_VERSION]).expect("a range record always encodes into a Vec")
}

/// Reads a record in either stored form (version 1 has no moves).
pub(crate) fn decode_record(bytes: &[u8]) -> Result<GroupRecord, MetadataError> {
    const WHAT: &str = "range group record";
    match bytes.split_first() {
        Some((&GROUP_RECORD_VERSION, body)) => postcard::from_bytes(body).map_err(|e| MetadataError::corrupt(WHAT, e)),
        Some((&RECORD_VERSION, _)) => {
            let GroupRecordV1 { group, descriptor, voters } = from_bytes(WHAT, bytes)?;
            Ok(GroupRecord::new(group, descriptor, voters))
        }
        Some((version, _)) => Err(MetadataError::corrupt(WHAT, format!("unknown format version {version}"))),
        None => Err(MetadataError::corrupt(WHAT, "no bytes")),
    }
}

pub(crate) fn group_record_key(group: u64) -> Vec<u8> {
    [GROUP_RECORD_PREFIX, &group.to_be_bytes()].concat()
}

/// Every range group group 0 has recorded, in group order. Blocking.
pub fn group_records(store: &Store) -> Result<Vec<GroupRecord>, MetadataError> {
    let cf = store.cf(Cf::Meta)?;
    let mut records = Vec::new();
    for item in store.db().prefix_iterator_cf(cf, GROUP_RECORD_PREFIX) {
        let (key, value) = item.map_err(MetadataError::db("listing range groups"))?;
        if !key.starts_with(GROUP_RECORD_PREFIX) {
            break;
        }
        records.push(decode_record(&value)?);
    }
    Ok(records)
}

/// Applies `CreateRangeGroup` in group 0: refuses group 0, an existing group, an empty range, a
/// range that overlaps another group's, and no voters; otherwise records the group.
pub fn create_group(
    store: &Store,
    batch: &mut WriteBatch,
    group: u64,
    range: Range,
    voters: Vec<(u64, String)>,
) -> Result<Applied, MetadataError> {
    if group == 0 {
        return Err(MetadataError::InvalidArgument("group 0 is the directory, not a range group".into()));
    }
    range.validate()?;
    if voters.is_empty() {
        return Err(MetadataError::InvalidArgument("a range group needs voters".into()));
    }
    for existing in group_records(store)? {
        if existing.group == group {
            return Err(MetadataError::EntityAlreadyExists(format!("metadata group {group}")));
        }
        if existing.descriptor.range.overlaps(&range) {
            return Err(MetadataError::InvalidArgument(format!(
                "range {range} overlaps group {}'s range {}",
                existing.group, existing.descriptor.range
            )));
        }
    }
    if let Some((what, key)) = first_key_in(store, &range)? {
        return Err(MetadataError::InvalidArgument(format!(
            "group 0 holds {what} in range {range} ({}): nothing moves metadata between groups until splits \
             exist, so a range group can only be created over keys group 0 does not hold",
            String::from_utf8_lossy(&key).replace('\0', "/")
        )));
    }
    let record = GroupRecord::new(group, Descriptor { range, epoch: 1 }, voters);
    batch.put_cf(store.cf(Cf::Meta)?, group_record_key(group), encode_record(&record));
    // The new group gets every bucket its range touches before it serves them.
    crate::bucket_state::enqueue_for_new_group(store, batch, &record)?;
    // The write of this batch reloads the store's copy of the records (see `Store::write`).
    store.directory_changing();
    Ok(Applied::Done)
}

/// The first object, version or upload key `store` holds in `range`, with what it is. Those keys
/// all start `bucket 0x00 key` (see `keys`), and since names and keys hold no NUL, a key's stored
/// form (also with a version or upload suffix) sorts between the encoded range bounds exactly
/// when its (bucket, key) is in the range. Blocking.
fn first_key_in(store: &Store, range: &Range) -> Result<Option<(&'static str, Vec<u8>)>, MetadataError> {
    let start = crate::keys::object(&range.start_bucket, &range.start_key);
    let end = range.end().map(|_| crate::keys::object(&range.end_bucket, &range.end_key));
    for (cf, what) in [(Cf::Objects, "an object"), (Cf::Versions, "a version"), (Cf::Uploads, "an upload")] {
        let mut iter = store.db().raw_iterator_cf(store.cf(cf)?);
        iter.seek(&start);
        if let Some(key) = iter.key()
            && end.as_ref().is_none_or(|end| key < end.as_slice())
        {
            return Ok(Some((what, key.to_vec())));
        }
        iter.status().map_err(MetadataError::db("looking for keys in a new range"))?;
    }
    Ok(None)
}

/// The bucket a bucket-level command changes (create, settings, delete), not `SetBucketState`.
pub(crate) fn bucket_of(command: &Command) -> Option<&str> {
    match (scope(command), command) {
        (_, Command::SetBucketState { .. } | Command::FenceBucket { .. }) => None,
        (Scope::Bucket(bucket), _) => Some(bucket),
        _ => None,
    }
}

/// The bucket of a keyed command.
pub(crate) fn keyed_bucket_of(command: &Command) -> Option<&str> {
    match scope(command) {
        Scope::Key(bucket, _) => Some(bucket),
        _ => None,
    }
}

/// Group 0's check of a command: keyed commands whose (bucket, key) a range group owns are refused
/// with `WrongRange` (see `Store::check_directory_key`); bucket and directory commands are its own.
pub(crate) fn admit_in_directory(store: &Store, command: &Command) -> Result<(), MetadataError> {
    match scope(command) {
        Scope::Key(bucket, key) => store.check_directory_key(bucket, key),
        Scope::Bucket(_) | Scope::Directory | Scope::Own => Ok(()),
    }
}

/// Where the stretch of the key space that `store`'s group owns from (bucket, `at`) on ends, for
/// a forward listing starting there: `None` when the group owns everything after `at`, else the
/// (bucket, key) where the next group's range starts. A range group owns its range; group 0 owns
/// every gap between the range groups it recorded, so its stretch ends where the next one starts.
/// `WrongRange` when (bucket, `at`) is not the group's at all: the caller's range table is stale.
/// Blocking (group 0 reads its records).
pub fn listing_end(store: &Store, bucket: &str, at: &[u8]) -> Result<Option<(String, String)>, MetadataError> {
    let end_of = |range: &Range| range.end().map(|_| (range.end_bucket.clone(), range.end_key.clone()));
    if let Some(descriptor) = store.range() {
        if !descriptor.range.contains_bytes(bucket, at) {
            return Err(descriptor.wrong(format!(
                "a listing of {bucket} from {} starts outside this group's range {}",
                String::from_utf8_lossy(at),
                descriptor.range
            )));
        }
        return Ok(end_of(&descriptor.range));
    }
    let mut next: Option<Range> = None;
    for record in group_records(store)? {
        let range = record.descriptor.range;
        if range.contains_bytes(bucket, at) {
            return Err(MetadataError::WrongRange {
                epoch: record.descriptor.epoch,
                detail: format!(
                    "a listing of {bucket} from {} starts in range group {}'s range {range}",
                    String::from_utf8_lossy(at),
                    record.group
                ),
            });
        }
        if range.start() > (bucket.as_bytes(), at) && next.as_ref().is_none_or(|n| range.start() < n.start()) {
            next = Some(range);
        }
    }
    Ok(next.map(|range| (range.start_bucket, range.start_key)))
}

/// What a command is about, for the range check.
enum Scope<'a> {
    Key(&'a str, &'a str),
    Bucket(&'a str),
    /// State group 0 keeps (nodes, IAM, repair, accounts, range groups, …).
    Directory,
    /// Each group's own bookkeeping, by data id or of its own workers (abandoned intents, the
    /// collector's results, damaged-shard reports and repairs, the lifecycle cursor, delivered
    /// notifications): every group applies it to its own entries.
    Own,
}

fn scope(command: &Command) -> Scope<'_> {
    match command {
        Command::PutObject { record, .. } => Scope::Key(&record.bucket, &record.key),
        Command::CreateUpload { upload } => Scope::Key(&upload.bucket, &upload.key),
        Command::DeleteObject { bucket, key, .. }
        | Command::DeleteVersion { bucket, key, .. }
        | Command::UpdateObjectLock { bucket, key, .. }
        | Command::SetVersionTags { bucket, key, .. }
        | Command::PutPart { bucket, key, .. }
        | Command::CompleteUpload { bucket, key, .. }
        | Command::AbortUpload { bucket, key, .. }
        | Command::SetObjectTags { bucket, key, .. }
        | Command::SetObjectAcl { bucket, key, .. }
        | Command::Expire { bucket, key, .. } => Scope::Key(bucket, key),
        Command::CreatedBy { command, .. } => scope(command),
        Command::CreateBucket { bucket } => Scope::Bucket(&bucket.name),
        Command::DeleteBucket { name, .. }
        | Command::SetBucketVersioning { name, .. }
        | Command::SetBucketTags { name, .. }
        | Command::SetBucketMetadata { name, .. }
        | Command::SetBucketPolicy { name, .. }
        | Command::SetBucketConfig { name, .. } => Scope::Bucket(name),
        Command::SetBucketState { bucket, .. } | Command::FenceBucket { bucket, .. } => Scope::Bucket(bucket),
        // An intent lives with the record that will commit it: in the group owning its key. One
        // from a writer that named no key is group 0's (as before range groups).
        Command::RecordIntent { record, .. } if !record.bucket.is_empty() => Scope::Key(&record.bucket, &record.key),
        // Each group's leader runs its own lifecycle worker, expirer and notification dispatcher
        // over the keys it holds.
        Command::Lifecycle { action, .. } => {
            let (bucket, key) = action.target();
            Scope::Key(bucket, key)
        }
        // By data id, in the group that holds the intent or the gc entry (a group that holds none
        // changes nothing), and each group's own worker state.
        // Damaged-shard reports go to every group, and each keeps those of the data it holds; repair
        // is planned and completed in the group holding the data's record.
        Command::AbandonData { .. }
        | Command::FinishGc { .. }
        | Command::SetLifecycleCursor { .. }
        | Command::NotifyDone { .. }
        | Command::ReportDamaged { .. }
        | Command::DropDamaged { .. }
        | Command::CompleteRepair { .. }
        // Refused by group 0 in its apply (it has no range to split).
        | Command::SplitRange { .. } => Scope::Own,
        // Nodes, IAM, accounts and the range table are group 0's.
        Command::RecordIntent { .. }
        | Command::PutNode { .. }
        | Command::SetNodeAdmin { .. }
        | Command::RemoveNode { .. }
        | Command::SetAccountMetadata { .. }
        | Command::PutIam { .. }
        | Command::DeleteIam { .. }
        | Command::CreateRangeGroup { .. }
        | Command::BucketStateDelivered { .. }
        | Command::ReserveSplit { .. }
        | Command::FinishSplit { .. }
        | Command::MoveReplica { .. }
        | Command::FinishMove { .. } => Scope::Directory,
    }
}

impl Descriptor {
    fn wrong(&self, detail: String) -> MetadataError {
        MetadataError::WrongRange { epoch: self.epoch, detail }
    }

    /// The range check of a point read or a keyed call.
    pub fn check_key(&self, bucket: &str, key: &str) -> Result<(), MetadataError> {
        if self.range.contains(bucket, key) {
            return Ok(());
        }
        Err(self.wrong(format!("{bucket}/{key} is outside this group's range {}", self.range)))
    }

    pub fn check_bucket(&self, bucket: &str) -> Result<(), MetadataError> {
        if self.range.touches_bucket(bucket) {
            return Ok(());
        }
        Err(self.wrong(format!("bucket {bucket} has no key in this group's range {}", self.range)))
    }

    /// Whether a range group may apply `command` (see the module doc).
    pub fn admit(&self, command: &Command) -> Result<(), MetadataError> {
        match scope(command) {
            Scope::Key(bucket, key) => self.check_key(bucket, key),
            Scope::Bucket(bucket) => self.check_bucket(bucket),
            Scope::Own => Ok(()),
            Scope::Directory => Err(self.wrong("this command belongs to group 0, not a range group".into())),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `[start, end)`, each given as (bucket, key); shared with other modules' tests.
    pub(crate) fn range(start: (&str, &str), end: (&str, &str)) -> Range {
        Range {
            start_bucket: start.0.into(),
            start_key: start.1.into(),
            end_bucket: end.0.into(),
            end_key: end.1.into(),
        }
    }

    #[test]
    fn ranges_are_half_open_in_byte_order() {
        let r = range(("b", "k"), ("b", "m"));
        assert!(r.contains("b", "k"));
        assert!(r.contains("b", "l/deep"));
        assert!(!r.contains("b", "m"), "the end is excluded");
        assert!(!r.contains("b", "j"));
        assert!(!r.contains("a", "z"));
        assert!(!r.contains("c", ""));
        // Bytewise: "B" < "b", and a longer key after its prefix.
        assert!(!r.contains("B", "k"));
        assert!(r.contains("b", "k\u{0}"));
    }

    #[test]
    fn an_empty_end_is_the_end_of_the_key_space() {
        let r = range(("m", ""), ("", ""));
        assert!(r.contains("m", ""));
        assert!(r.contains("zzz", "anything"));
        assert!(!r.contains("l", "zzz"));
        let all = range(("", ""), ("", ""));
        assert!(all.contains("", ""));
        assert!(all.contains("a", "b"));
    }

    #[test]
    fn bucket_commands_belong_to_every_range_touching_the_bucket() {
        let r = range(("b", "k"), ("d", ""));
        assert!(r.touches_bucket("b"), "keys of b from k on");
        assert!(r.touches_bucket("c"));
        assert!(!r.touches_bucket("d"), "(d, \"\") is the end itself");
        assert!(!r.touches_bucket("a"));
        assert!(range(("b", "k"), ("d", "x")).touches_bucket("d"));
        assert!(range(("b", "k"), ("b", "m")).touches_bucket("b"));
        assert!(range(("b", ""), ("", "")).touches_bucket("zz"));
    }

    #[test]
    fn validation_refuses_empty_and_malformed_ranges() {
        assert!(range(("b", "k"), ("b", "m")).validate().is_ok());
        assert!(range(("b", "k"), ("", "")).validate().is_ok());
        assert!(range(("b", "k"), ("b", "k")).validate().is_err());
        assert!(range(("b", "k"), ("a", "z")).validate().is_err());
        assert!(range(("b", "k"), ("", "x")).validate().is_err());
    }

    #[test]
    fn overlap() {
        let left = range(("a", ""), ("m", ""));
        let right = range(("m", ""), ("", ""));
        assert!(!left.overlaps(&right) && !right.overlaps(&left));
        assert!(left.overlaps(&range(("l", "z"), ("n", ""))));
        assert!(right.overlaps(&range(("z", ""), ("", ""))));
        assert!(range(("", ""), ("", "")).overlaps(&left));
    }

    #[test]
    fn descriptors_round_trip_and_pin_their_bytes() {
        let descriptor = Descriptor { range: range(("b", "k"), ("", "")), epoch: 3 };
        let bytes = encode_descriptor(&descriptor);
        // Version 1, then four length-prefixed strings and the varint epoch.
        assert_eq!(bytes, [1, 1, b'b', 1, b'k', 0, 0, 3]);
        assert_eq!(decode_descriptor(&bytes).unwrap(), descriptor);
        assert!(decode_descriptor(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_descriptor(&[2, 0]).is_err());
        assert!(decode_descriptor(&[]).is_err());
        let pb = descriptor.range.to_pb(3);
        assert_eq!(Range::from_pb(&pb), descriptor.range);
    }

    fn create(group: u64, start: (&str, &str), end: (&str, &str)) -> Command {
        Command::CreateRangeGroup { group, range: range(start, end), voters: vec![(1, "http://a".into())] }
    }

    #[test]
    fn group_0_records_range_groups_and_refuses_duplicates_and_overlaps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        crate::command::apply(&store, create(1, ("b", ""), ("b", "m"))).unwrap();
        crate::command::apply(&store, create(2, ("b", "m"), ("", ""))).unwrap();
        let again = crate::command::apply(&store, create(1, ("x", ""), ("y", ""))).unwrap_err();
        assert_eq!(again.code(), coffer_proto::ErrorCode::EntityAlreadyExists);
        let overlapping = crate::command::apply(&store, create(3, ("b", "a"), ("b", "c"))).unwrap_err();
        assert_eq!(overlapping.code(), coffer_proto::ErrorCode::InvalidArgument);
        assert!(crate::command::apply(&store, create(0, ("a", ""), ("a", "b"))).is_err());
        let records = group_records(&store).unwrap();
        assert_eq!(records.iter().map(|r| r.group).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(records[0].descriptor, Descriptor { range: range(("b", ""), ("b", "m")), epoch: 1 });
        assert_eq!(records[0].voters, [(1, "http://a".to_string())]);
    }

    #[test]
    fn a_range_group_keeps_its_descriptor_and_applies_only_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let descriptor = Descriptor { range: range(("b", ""), ("b", "m")), epoch: 1 };
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(store.range().is_none(), "a new database is group 0's or a lone service's");
            store.set_range(descriptor.clone()).unwrap();
            store.set_range(descriptor.clone()).unwrap();
            let other = Descriptor { range: range(("c", ""), ("", "")), epoch: 1 };
            assert!(store.set_range(other).is_err(), "a descriptor changes only through the log");
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.range().as_deref(), Some(&descriptor), "read back at open");
        let bucket = coffer_proto::pb::metadata::BucketRecord { name: "b".into(), ..Default::default() };
        crate::command::apply(&store, Command::CreateBucket { bucket }).unwrap();
        let stamp = crate::command::Stamp {
            now_unix_ms: 0,
            replaced_gc_unix_ms: 0,
            intent_deadline_unix_ms: 0,
            version_order: 0,
        };
        let delete = |key: &str| Command::DeleteObject { bucket: "b".into(), key: key.into(), stamp };
        assert!(crate::command::apply(&store, delete("apple")).is_ok());
        let refused = crate::command::apply(&store, delete("zebra")).unwrap_err();
        assert_eq!(refused.code(), coffer_proto::ErrorCode::WrongRange);
        let refused = crate::command::apply(&store, create(5, ("x", ""), ("y", ""))).unwrap_err();
        assert_eq!(refused.code(), coffer_proto::ErrorCode::WrongRange, "range groups create no groups");
    }

    /// An intent on two shards for `key` of bucket "b" (no key: an older writer's).
    fn intent(data_id: &[u8], key: Option<&str>) -> (Vec<u8>, Command) {
        let shards: Vec<coffer_proto::pb::metadata::ShardLocation> = (0..2)
            .map(|i| coffer_proto::pb::metadata::ShardLocation { node_id: format!("n{i}"), disk_id: "d".into() })
            .collect();
        let gc_key = crate::keys::gc(1_000_000, data_id);
        let record = coffer_proto::pb::metadata::GcRecord {
            data_id: data_id.to_vec(),
            shards,
            bucket: key.map_or(String::new(), |_| "b".into()),
            key: key.unwrap_or_default().into(),
        };
        (gc_key.clone(), Command::RecordIntent { intent: gc_key, record })
    }

    #[test]
    fn data_lives_in_the_group_of_the_key_it_is_written_for() {
        use coffer_proto::pb::metadata::{DataLayout, Segment};
        let wrong = Err(coffer_proto::ErrorCode::WrongRange);
        let code = |result: Result<Applied, MetadataError>| result.map(|_| ()).map_err(|e| e.code());
        let dir = tempfile::tempdir().unwrap();
        let group = Store::open(dir.path()).unwrap();
        group.set_range(Descriptor { range: range(("b", "k"), ("b", "m")), epoch: 1 }).unwrap();
        let bucket = coffer_proto::pb::metadata::BucketRecord { name: "b".into(), ..Default::default() };
        crate::command::apply(
            &group,
            Command::SetBucketState { bucket: "b".into(), record: bucket, deleted: false, generation: 1 },
        )
        .unwrap();
        // A range group takes intents for its own keys only, never one that names no key.
        assert_eq!(code(crate::command::apply(&group, intent(b"out", Some("zebra")).1)), wrong);
        assert_eq!(code(crate::command::apply(&group, intent(b"anon", None).1)), wrong);
        let (kept, record) = intent(b"kept", Some("kite"));
        crate::command::apply(&group, record).unwrap();
        let (dropped, record) = intent(b"dropped", Some("kite"));
        crate::command::apply(&group, record).unwrap();

        // The commit finds the intent in the same database: the data's owner and holdings are here.
        let layout = DataLayout {
            data_id: b"kept".to_vec(),
            data_shards: 1,
            parity_shards: 1,
            stripe_size: 1 << 20,
            size: 10,
            shards: group.gc_entry(&kept).unwrap().unwrap().shards,
        };
        let mut object = inline("kite");
        object.size = 10;
        object.segments = vec![Segment { size: 10, layout: Some(layout), ..Default::default() }];
        let stamp = crate::command::tests::stamp(10);
        let put =
            Command::PutObject { record: object, intents: vec![kept.clone()], condition: Default::default(), stamp };
        crate::command::apply(&group, put).unwrap();
        assert!(group.gc_entry(&kept).unwrap().is_none(), "committed: no longer garbage");
        assert_eq!(group.owner(b"kept").unwrap().map(|o| o.key), Some("kite".to_string()));

        // Abandoning and the collector's results are the group's own, by data id.
        crate::command::apply(
            &group,
            Command::AbandonData { intent: dropped, stamp: crate::command::tests::stamp(11) },
        )
        .unwrap();
        let due = group.due_gc(11, 10).unwrap();
        assert_eq!(due.iter().map(|(_, r)| r.data_id.clone()).collect::<Vec<_>>(), [b"dropped".to_vec()]);
        crate::command::apply(&group, Command::FinishGc { done: vec![due[0].0.clone()], retry: vec![] }).unwrap();
        assert!(group.due_gc(i64::MAX - 1, 10).unwrap().is_empty());

        // A damaged-shard report reaches every group; each keeps those of the data it holds.
        let report = |data_id: &[u8]| coffer_proto::pb::metadata::DamagedShard {
            node_id: "n0".into(),
            disk_id: "d".into(),
            data_id: data_id.to_vec(),
            reason: "missing".into(),
            ..Default::default()
        };
        let reports = Command::ReportDamaged { shards: vec![report(b"kept"), report(b"elsewhere")] };
        crate::command::apply(&group, reports).unwrap();
        let kept: Vec<Vec<u8>> = group.damaged_shards(10).unwrap().into_iter().map(|s| s.data_id).collect();
        assert_eq!(kept, [b"kept".to_vec()]);

        // Group 0 refuses an intent for a range group's key and keeps taking unkeyed ones.
        let dir = tempfile::tempdir().unwrap();
        let zero = Store::open(dir.path()).unwrap();
        crate::command::apply(&zero, create(1, ("b", "k"), ("b", "m"))).unwrap();
        assert_eq!(code(crate::command::apply(&zero, intent(b"in-1", Some("kite")).1)), wrong);
        crate::command::apply(&zero, intent(b"anon", None).1).unwrap();
        crate::command::apply(&zero, intent(b"zero", Some("zebra")).1).unwrap();
        // With range groups, group 0 too keeps only the reports of the data it holds.
        let reports = Command::ReportDamaged { shards: vec![report(b"zero"), report(b"kept")] };
        crate::command::apply(&zero, reports).unwrap();
        let kept: Vec<Vec<u8>> = zero.damaged_shards(10).unwrap().into_iter().map(|s| s.data_id).collect();
        assert_eq!(kept, [b"zero".to_vec()]);
    }

    fn inline(key: &str) -> coffer_proto::pb::metadata::ObjectRecord {
        let segment = coffer_proto::pb::metadata::Segment { size: 1, inline_data: b"x".to_vec(), ..Default::default() };
        coffer_proto::pb::metadata::ObjectRecord {
            bucket: "b".into(),
            key: key.into(),
            size: 1,
            segments: vec![segment],
            ..Default::default()
        }
    }

    fn put(key: &str, now: i64) -> Command {
        let stamp = crate::command::tests::stamp(now);
        Command::PutObject { record: inline(key), intents: vec![], condition: Default::default(), stamp }
    }

    fn upload(key: &str) -> Command {
        let upload = coffer_proto::pb::metadata::UploadRecord {
            upload_id: format!("up-{key}"),
            bucket: "b".into(),
            key: key.into(),
            ..Default::default()
        };
        Command::CreateUpload { upload }
    }

    #[test]
    fn group_0_refuses_the_keys_of_its_range_groups_once_they_exist() {
        let dir = tempfile::tempdir().unwrap();
        let code = |result: Result<Applied, MetadataError>| result.map(|_| ()).map_err(|e| e.code());
        {
            let store = Store::open(dir.path()).unwrap();
            let bucket = coffer_proto::pb::metadata::BucketRecord { name: "b".into(), ..Default::default() };
            crate::command::apply(&store, Command::CreateBucket { bucket }).unwrap();
            // Before any range group, group 0 takes every key.
            crate::command::apply(&store, put("kite", 1)).unwrap();
            crate::command::apply(
                &store,
                Command::DeleteObject {
                    bucket: "b".into(),
                    key: "kite".into(),
                    stamp: crate::command::tests::stamp(2),
                },
            )
            .unwrap();
            assert!(store.check_directory_key("b", "kite").is_ok());

            crate::command::apply(&store, create(1, ("b", "k"), ("b", "m"))).unwrap();
            let wrong = Err(coffer_proto::ErrorCode::WrongRange);
            assert_eq!(code(crate::command::apply(&store, put("kite", 3))), wrong);
            assert_eq!(code(crate::command::apply(&store, upload("k"))), wrong, "the range start is the group's");
            let nested = Command::CreatedBy { how: crate::notify::Created::Copy, command: Box::new(put("lark", 4)) };
            assert_eq!(code(crate::command::apply(&store, nested)), wrong);
            assert_eq!(store.check_directory_key("b", "kite").unwrap_err().code(), coffer_proto::ErrorCode::WrongRange);
            // Outside the range, and bucket-level commands, group 0 still applies.
            crate::command::apply(&store, put("apple", 5)).unwrap();
            crate::command::apply(&store, upload("m")).unwrap();
            crate::command::apply(&store, Command::SetBucketTags { name: "b".into(), tags: Default::default() })
                .unwrap();
            assert!(store.check_directory_key("b", "m").is_ok());
            assert!(store.check_directory_key("a", "kite").is_ok());
        }
        // The records come back with the database.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(code(crate::command::apply(&store, put("kite", 6))), Err(coffer_proto::ErrorCode::WrongRange));
        crate::command::apply(&store, put("zebra", 7)).unwrap();
    }

    #[test]
    fn a_range_group_is_not_created_over_keys_group_0_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bucket = coffer_proto::pb::metadata::BucketRecord { name: "b".into(), ..Default::default() };
        crate::command::apply(&store, Command::CreateBucket { bucket }).unwrap();
        crate::command::apply(&store, put("q", 1)).unwrap();
        crate::command::apply(&store, upload("u")).unwrap();
        // A version only: a delete marker is the current version of "v", so "v" is not in `objects`.
        let versioning = coffer_proto::pb::metadata::Versioning::Enabled;
        crate::command::apply(&store, Command::SetBucketVersioning { name: "b".into(), versioning }).unwrap();
        crate::command::apply(&store, put("v", 2)).unwrap();
        let stamp = crate::command::tests::stamp(3);
        crate::command::apply(&store, Command::DeleteObject { bucket: "b".into(), key: "v".into(), stamp }).unwrap();
        assert!(store.object("b", "v").is_err(), "the delete marker is current");

        let refused = |group, start, end| {
            let error = crate::command::apply(&store, create(group, start, end)).unwrap_err();
            assert_eq!(error.code(), coffer_proto::ErrorCode::InvalidArgument, "{start:?}..{end:?}: {error}");
            error.to_string()
        };
        assert!(refused(1, ("b", "p"), ("b", "r")).contains("an object"));
        assert!(refused(1, ("b", "q"), ("b", "q0")).contains("an object"), "at the range start");
        assert!(refused(1, ("b", "t"), ("b", "u0")).contains("an upload"));
        assert!(refused(1, ("b", "u/"), ("", "")).contains("a version"));
        assert!(refused(1, ("a", ""), ("c", "")).contains("an object"));
        // Ranges between the keys, and ending right at one (the end is excluded), are fine.
        crate::command::apply(&store, create(1, ("a", ""), ("b", "q"))).unwrap();
        crate::command::apply(&store, create(2, ("b", "q0"), ("b", "u"))).unwrap();
        crate::command::apply(&store, create(3, ("b", "v0"), ("", ""))).unwrap();
        assert_eq!(group_records(&store).unwrap().len(), 3);
    }

    #[test]
    fn commands_are_admitted_by_scope() {
        let d = Descriptor { range: range(("b", "k"), ("b", "m")), epoch: 1 };
        let stamp = crate::command::Stamp {
            now_unix_ms: 0,
            replaced_gc_unix_ms: 0,
            intent_deadline_unix_ms: 0,
            version_order: 0,
        };
        let delete = |key: &str| Command::DeleteObject { bucket: "b".into(), key: key.into(), stamp };
        assert!(d.admit(&delete("kite")).is_ok());
        let wrong = d.admit(&delete("zebra")).unwrap_err();
        assert_eq!(wrong.code(), coffer_proto::ErrorCode::WrongRange);
        let nested = Command::CreatedBy { how: crate::notify::Created::Copy, command: Box::new(delete("a")) };
        assert!(d.admit(&nested).is_err());
        let bucket = coffer_proto::pb::metadata::BucketRecord { name: "b".into(), ..Default::default() };
        assert!(d.admit(&Command::CreateBucket { bucket }).is_ok());
        assert!(d.admit(&Command::SetBucketTags { name: "c".into(), tags: Default::default() }).is_err());
        assert!(d.admit(&Command::RemoveNode { node_id: "n".into() }).is_err());
    }
}
