//! Every change to the database is a [`Command`] applied by [`apply`].
//!
//! `apply` is deterministic: it reads only the database and the command, never the clock or a
//! random source, so replaying the same commands on the same state (a Raft log, later) yields the
//! same state. Times, ids and placements are decided before a command is built.

use coffer_proto::Message;
use coffer_proto::limits::MAX_DATA_ID_BYTES;
use coffer_proto::pb::metadata::{
    BucketRecord, CompletedPart, DamagedShard, DataOwner, GcRecord, NodeAdmin, NodeInfo, ObjectRecord, PartRecord,
    ShardLocation, UploadRecord, WriteCondition,
};
use rocksdb::WriteBatch;

use crate::data;
use crate::error::MetadataError;
use crate::keys;
use crate::multipart;
use crate::repair;
use crate::store::{Cf, Store};
use crate::versions;

/// AWS's limit on a bucket policy.
pub const MAX_BUCKET_POLICY_BYTES: usize = 20 * 1024;
/// Bounds on a bucket's named configurations (`BucketRecord.configs`): every request reads the
/// bucket record, so it must stay small.
pub const MAX_BUCKET_CONFIGS: usize = 16;
pub const MAX_BUCKET_CONFIG_BYTES: usize = 64 * 1024;
const MAX_BUCKET_CONFIG_NAME: usize = 32;

/// The times one command works with, all taken from one clock reading before it was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub now_unix_ms: i64,
    /// When the data of a replaced or deleted object may go: readers still streaming it get this long.
    pub replaced_gc_unix_ms: i64,
    /// A commit refuses an intent due before this, since the collector may already be deleting it.
    pub intent_deadline_unix_ms: i64,
    /// The order (and id) a new version made by this command takes in a versioned bucket: counts
    /// down with time (see `versions`).
    pub version_order: u64,
}

impl Stamp {
    /// The stamp of work the metadata service starts itself (lifecycle, expiry): the clock now,
    /// replaced data kept for `gc_grace`, and a version order from the clock.
    pub fn background(gc_grace: std::time::Duration) -> Stamp {
        let now = crate::now_unix_ms();
        let micros =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let grace = i64::try_from(gc_grace.as_millis()).unwrap_or(i64::MAX);
        Stamp {
            now_unix_ms: now,
            replaced_gc_unix_ms: now.saturating_add(grace),
            intent_deadline_unix_ms: now,
            version_order: versions::order_of(micros),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    CreateBucket {
        #[serde(with = "crate::command_codec::pb_message")]
        bucket: BucketRecord,
    },
    DeleteBucket {
        name: String,
        stamp: Stamp,
    },
    /// `intent` is the gc key the record is stored at.
    RecordIntent {
        intent: Vec<u8>,
        #[serde(with = "crate::command_codec::pb_message")]
        record: GcRecord,
    },
    AbandonData {
        intent: Vec<u8>,
        stamp: Stamp,
    },
    PutObject {
        #[serde(with = "crate::command_codec::pb_message")]
        record: ObjectRecord,
        intents: Vec<Vec<u8>>,
        /// If-Match / If-None-Match, checked against the object this commit would replace.
        #[serde(with = "crate::command_codec::pb_message")]
        condition: WriteCondition,
        stamp: Stamp,
    },
    DeleteObject {
        bucket: String,
        key: String,
        stamp: Stamp,
    },
    /// Deletes one version for good (`versions::delete_version`), unless object lock protects it.
    DeleteVersion {
        bucket: String,
        key: String,
        version_id: String,
        /// A GOVERNANCE retention gives way (the gateway checked s3:BypassGovernanceRetention).
        bypass_governance: bool,
        stamp: Stamp,
    },
    /// Object lock: retention and/or legal hold of one version (`object_lock::update`).
    UpdateObjectLock {
        bucket: String,
        key: String,
        version_id: String,
        update: crate::object_lock::LockUpdate,
        stamp: Stamp,
    },
    SetBucketVersioning {
        name: String,
        #[serde(with = "crate::command_codec::pb_enum")]
        versioning: coffer_proto::pb::metadata::Versioning,
    },
    /// Tags of one version (`version_id` is an id or "null").
    SetVersionTags {
        bucket: String,
        key: String,
        version_id: String,
        tags: std::collections::HashMap<String, String>,
    },
    CreateUpload {
        #[serde(with = "crate::command_codec::pb_message")]
        upload: UploadRecord,
    },
    PutPart {
        bucket: String,
        key: String,
        #[serde(with = "crate::command_codec::pb_message")]
        part: PartRecord,
        intents: Vec<Vec<u8>>,
        stamp: Stamp,
    },
    CompleteUpload {
        bucket: String,
        key: String,
        upload_id: String,
        #[serde(with = "crate::command_codec::pb_messages")]
        parts: Vec<CompletedPart>,
        #[serde(with = "crate::command_codec::pb_message")]
        condition: WriteCondition,
        stamp: Stamp,
    },
    AbortUpload {
        bucket: String,
        key: String,
        upload_id: String,
        stamp: Stamp,
    },
    PutNode {
        #[serde(with = "crate::command_codec::pb_message")]
        node: NodeInfo,
    },
    ReportDamaged {
        #[serde(with = "crate::command_codec::pb_messages")]
        shards: Vec<DamagedShard>,
    },
    SetNodeAdmin {
        node_id: String,
        #[serde(with = "crate::command_codec::pb_enum")]
        admin: NodeAdmin,
    },
    SetObjectTags {
        bucket: String,
        key: String,
        tags: std::collections::HashMap<String, String>,
    },
    /// The canned ACL of the current object (`version_id` empty) or of one version.
    SetObjectAcl {
        bucket: String,
        key: String,
        version_id: String,
        acl: String,
    },
    /// Forgets a node: its stored info and holdings go, and it is marked removed.
    RemoveNode {
        node_id: String,
    },
    SetBucketTags {
        name: String,
        tags: std::collections::HashMap<String, String>,
    },
    SetBucketMetadata {
        name: String,
        metadata: std::collections::HashMap<String, String>,
    },
    SetBucketPolicy {
        name: String,
        policy: String,
    },
    /// Deletes an object whose expiry time (`expiry.rs`) has come, if it is still the indexed one.
    Expire {
        bucket: String,
        key: String,
        at_ms: i64,
        stamp: Stamp,
    },
    /// Sets one named configuration of a bucket; an empty value removes it.
    SetBucketConfig {
        name: String,
        key: String,
        value: Vec<u8>,
    },
    SetAccountMetadata {
        name: String,
        metadata: std::collections::HashMap<String, String>,
    },
    /// A repair worker rebuilt shard `index` of `data_id` at `target` (see `repair::complete`).
    CompleteRepair {
        data_id: Vec<u8>,
        index: u32,
        #[serde(with = "crate::command_codec::pb_message")]
        source: ShardLocation,
        #[serde(with = "crate::command_codec::pb_message")]
        target: ShardLocation,
        stamp: Stamp,
    },
    /// Damaged-shard reports that no longer apply.
    DropDamaged {
        keys: Vec<Vec<u8>>,
    },
    PutIam {
        #[serde(with = "crate::command_codec::pb_message")]
        entity: coffer_proto::pb::metadata::IamEntity,
        create_only: bool,
    },
    DeleteIam {
        #[serde(with = "crate::command_codec::pb_enum")]
        kind: coffer_proto::pb::metadata::IamKind,
        name: String,
    },
    /// The collector's results: entries whose data is gone, and entries to retry later.
    FinishGc {
        done: Vec<Vec<u8>>,
        retry: Vec<GcRetry>,
    },
    /// A lifecycle rule's action, checked again against the state (see `lifecycle::apply`).
    Lifecycle {
        action: crate::lifecycle::Action,
        stamp: Stamp,
    },
    /// Where the lifecycle worker's scan continues.
    SetLifecycleCursor {
        #[serde(with = "crate::command_codec::pb_message")]
        cursor: coffer_proto::pb::metadata::LifecycleCursor,
    },
    /// Bucket notifications delivered (or given up): removed from the queue.
    NotifyDone {
        keys: Vec<Vec<u8>>,
    },
    /// `command` (a PutObject) with how its object was created, for its notification event.
    CreatedBy {
        how: crate::notify::Created,
        #[serde(deserialize_with = "crate::command_codec::nested_command")]
        command: Box<Command>,
    },
    /// Group 0 only: records range group `group`, owning `range`, with its initial voters (node
    /// id, URL) — group 0's voters when it was proposed, so every replica starts the group's Raft
    /// with the same membership (see `range` and `groups`).
    CreateRangeGroup {
        group: u64,
        range: crate::range::Range,
        voters: Vec<(u64, String)>,
    },
    /// Range groups only: group 0's state of `bucket` (its record, or its deletion), applied only if
    /// `generation` is newer than the one the group holds (see `bucket_state`).
    SetBucketState {
        bucket: String,
        #[serde(with = "crate::command_codec::pb_message")]
        record: BucketRecord,
        deleted: bool,
        generation: u64,
    },
    /// Group 0 only: range group `group` acknowledged `bucket`'s state of `generation`; removes the
    /// outbox entry if it still holds that generation.
    BucketStateDelivered {
        group: u64,
        bucket: String,
        generation: u64,
    },
    /// Range groups only: DeleteBucket's fence of `bucket` (see `bucket_state::fence`); `lift`
    /// removes it. Produces `Existed(holds_keys)`.
    FenceBucket {
        bucket: String,
        lift: bool,
    },
    /// Range groups only: splits the group's range at (`at_bucket`, `at_key`); the right half
    /// becomes group `child`, with `voters` (see `split`). `epoch` is the range's epoch the split was
    /// planned against.
    SplitRange {
        at_bucket: String,
        at_key: String,
        child: u64,
        epoch: u64,
        voters: Vec<(u64, String)>,
    },
    /// Group 0 only: reserves group id `child` for a split of range group `parent` at
    /// (`at_bucket`, `at_key`) (see `split_plan`).
    ReserveSplit {
        parent: u64,
        child: u64,
        at_bucket: String,
        at_key: String,
    },
    /// Group 0 only: the parent applied the split reserved for `child`: both halves are recorded.
    FinishSplit {
        child: u64,
    },
    /// Group 0 only: starts a change of range group `group`'s replicas — `to` (node id, URL)
    /// joins, `from` leaves (see `group_move`).
    MoveReplica {
        group: u64,
        from: Option<u64>,
        to: Option<(u64, String)>,
    },
    /// Group 0 only: the range group's membership changed as its move said: the record's voters
    /// follow.
    FinishMove {
        group: u64,
    },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GcRetry {
    pub key: Vec<u8>,
    pub not_before_unix_ms: i64,
    /// The shards still to delete; the ones already deleted are not tried again.
    #[serde(with = "crate::command_codec::pb_messages")]
    pub remaining: Vec<ShardLocation>,
}

/// What a command produced, for the response.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Bucket(BucketRecord),
    Object(ObjectRecord),
    Existed(bool),
    Upload(UploadRecord),
    Part(PartRecord),
    Account(coffer_proto::pb::metadata::AccountRecord),
    /// The IAM generation after the change.
    IamGeneration(u64),
    /// Whether a repair took effect.
    Repaired(bool),
    /// A delete in a versioned bucket: the version removed or the delete marker made.
    Deleted {
        existed: bool,
        version_id: String,
        delete_marker: bool,
    },
    Done,
}

impl Applied {
    fn mismatch(self, wanted: &str) -> MetadataError {
        MetadataError::Internal(format!("command produced {self:?}, expected {wanted}"))
    }

    pub fn into_bucket(self) -> Result<BucketRecord, MetadataError> {
        match self {
            Applied::Bucket(b) => Ok(b),
            other => Err(other.mismatch("a bucket")),
        }
    }

    pub fn into_object(self) -> Result<ObjectRecord, MetadataError> {
        match self {
            Applied::Object(o) => Ok(o),
            other => Err(other.mismatch("an object")),
        }
    }

    pub fn into_existed(self) -> Result<bool, MetadataError> {
        match self {
            Applied::Existed(e) => Ok(e),
            other => Err(other.mismatch("an existed flag")),
        }
    }

    /// (existed, version id, delete marker) of any delete.
    pub fn into_deleted(self) -> Result<(bool, String, bool), MetadataError> {
        match self {
            Applied::Existed(e) => Ok((e, String::new(), false)),
            Applied::Deleted { existed, version_id, delete_marker } => Ok((existed, version_id, delete_marker)),
            other => Err(other.mismatch("a delete outcome")),
        }
    }

    pub fn into_upload(self) -> Result<UploadRecord, MetadataError> {
        match self {
            Applied::Upload(u) => Ok(u),
            other => Err(other.mismatch("an upload")),
        }
    }

    pub fn into_repaired(self) -> Result<bool, MetadataError> {
        match self {
            Applied::Repaired(r) => Ok(r),
            other => Err(other.mismatch("a repair outcome")),
        }
    }

    pub fn into_account(self) -> Result<coffer_proto::pb::metadata::AccountRecord, MetadataError> {
        match self {
            Applied::Account(a) => Ok(a),
            other => Err(other.mismatch("an account")),
        }
    }

    pub fn into_iam_generation(self) -> Result<u64, MetadataError> {
        match self {
            Applied::IamGeneration(g) => Ok(g),
            other => Err(other.mismatch("an IAM generation")),
        }
    }

    pub fn into_part(self) -> Result<PartRecord, MetadataError> {
        match self {
            Applied::Part(p) => Ok(p),
            other => Err(other.mismatch("a part")),
        }
    }
}

/// Applies one command as one atomic, unsynced write. On error nothing is written.
pub fn apply(store: &Store, command: Command) -> Result<Applied, MetadataError> {
    let mut batch = WriteBatch::default();
    let applied = apply_into(store, &mut batch, command)?;
    if !batch.is_empty() {
        store.write(batch)?;
    }
    Ok(applied)
}

/// Puts `command`'s changes into `batch` without writing it (the Raft state machine adds its
/// applied log id to the same batch). On error `batch` may hold part of the changes: drop them.
pub fn apply_into(store: &Store, batch: &mut WriteBatch, command: Command) -> Result<Applied, MetadataError> {
    // A range group applies nothing outside its range: checked against its stored descriptor, the
    // same on every replica, so the refusal is as deterministic as any other outcome.
    // Group 0 in turn refuses keys that a range group it recorded owns, against its own records,
    // which change only through the log (see `Store::check_directory_key`).
    match store.range() {
        Some(descriptor) => descriptor.admit(&command)?,
        None => crate::range::admit_in_directory(store, &command)?,
    }
    // Taken before `plan` consumes the command: the event goes into the same batch as the change.
    let event = crate::notify::Source::of(&command);
    // A bucket change in group 0 is queued, in the same batch, for the range groups of the bucket;
    // a keyed command in a range group that misses its bucket says whether the bucket is gone or
    // its state has not arrived yet (retryable).
    let bucket = crate::range::bucket_of(&command).map(str::to_string);
    let keyed_bucket = crate::range::keyed_bucket_of(&command).map(str::to_string);
    // DeleteBucket's fence: a range group that told group 0 it holds none of the bucket's keys
    // takes no new one until the deletion arrives or the fence is lifted (one read, range groups only).
    if store.range().is_some()
        && let Some(bucket) = keyed_bucket.as_deref()
        && crate::bucket_state::fenced(store, bucket)?
    {
        return Err(MetadataError::Unavailable(format!("bucket {bucket} is being deleted; retry")));
    }
    let applied = match plan(store, batch, command) {
        Ok(applied) => applied,
        Err(MetadataError::NoSuchBucket(name))
            if store.range().is_some()
                && keyed_bucket.as_deref() == Some(name.as_str())
                && !crate::bucket_state::received(store, &name)? =>
        {
            return Err(MetadataError::Unavailable(format!(
                "bucket {name}'s state has not reached this range group yet; retry"
            )));
        }
        Err(e) => return Err(e),
    };
    if let Some(bucket) = bucket {
        crate::bucket_state::after_bucket_change(store, batch, &bucket, &applied)?;
    }
    if let Some(event) = event {
        crate::notify::record(store, batch, event, &applied)?;
    }
    Ok(applied)
}

fn plan(store: &Store, batch: &mut WriteBatch, command: Command) -> Result<Applied, MetadataError> {
    match command {
        Command::CreateBucket { bucket } => create_bucket(store, batch, bucket),
        Command::DeleteBucket { name, stamp } => delete_bucket(store, batch, &name, &stamp),
        Command::RecordIntent { intent, record } => {
            data::parse_intent(&intent)?;
            data::hold(store, batch, &record.data_id, &record.shards)?;
            batch.put_cf(store.cf(Cf::Gc)?, &intent, record.encode_to_vec());
            Ok(Applied::Done)
        }
        Command::AbandonData { intent, stamp } => abandon_data(store, batch, &intent, &stamp),
        Command::PutObject { record, intents, condition, stamp } => {
            put_object(store, batch, record, &intents, &condition, &stamp)
        }
        Command::DeleteObject { bucket, key, stamp } => delete_object(store, batch, &bucket, &key, &stamp),
        Command::DeleteVersion { bucket, key, version_id, bypass_governance, stamp } => {
            versions::delete_version(store, batch, &bucket, &key, &version_id, bypass_governance, &stamp)
        }
        Command::UpdateObjectLock { bucket, key, version_id, update, stamp } => {
            crate::object_lock::update(store, batch, &bucket, &key, &version_id, &update, &stamp)
        }
        Command::SetBucketVersioning { name, versioning } => versions::set_versioning(store, batch, &name, versioning),
        Command::SetVersionTags { bucket, key, version_id, tags } => {
            versions::set_tags(store, batch, &bucket, &key, &version_id, tags)
        }
        Command::CreateUpload { upload } => multipart::create_upload(store, batch, upload),
        Command::PutPart { bucket, key, part, intents, stamp } => {
            multipart::put_part(store, batch, &bucket, &key, part, &intents, &stamp)
        }
        Command::CompleteUpload { bucket, key, upload_id, parts, condition, stamp } => {
            multipart::complete_upload(store, batch, &bucket, &key, &upload_id, &parts, &condition, &stamp)
        }
        Command::AbortUpload { bucket, key, upload_id, stamp } => {
            multipart::abort_upload(store, batch, &bucket, &key, &upload_id, &stamp)
        }
        Command::PutNode { node } => {
            validate_node(&node)?;
            batch.put_cf(store.cf(Cf::Nodes)?, keys::node(&node.node_id), node.encode_to_vec());
            Ok(Applied::Done)
        }
        Command::ReportDamaged { shards } => {
            // Reports go to every group once range groups exist: each keeps those of the data it
            // holds on the reported disk (its holdings, written when the data was allocated, so an
            // unwritten shard reported before the commit is kept too). Without range groups group
            // 0 keeps every report, as before (repair drops unowned ones after a while).
            let sharded = store.range().is_some() || !store.directory_records().is_empty();
            for shard in &shards {
                validate_damaged(shard)?;
                if sharded && !data::holds(store, &shard.node_id, &shard.disk_id, &shard.data_id)? {
                    continue;
                }
                let key = keys::damaged(&shard.disk_id, &shard.data_id, shard.stripe, shard.index);
                batch.put_cf(store.cf(Cf::Damaged)?, key, shard.encode_to_vec());
            }
            Ok(Applied::Done)
        }
        Command::SetNodeAdmin { node_id, admin } => {
            if node_id.is_empty() {
                return Err(MetadataError::InvalidArgument("a node id is required".into()));
            }
            let cf = store.cf(Cf::NodeAdmin)?;
            if admin == NodeAdmin::Active {
                batch.delete_cf(cf, keys::node(&node_id));
            } else {
                batch.put_cf(cf, keys::node(&node_id), [admin as u8]);
            }
            Ok(Applied::Done)
        }
        Command::SetObjectTags { bucket, key, tags } => {
            store.bucket(&bucket)?;
            let mut record = store.object(&bucket, &key)?;
            record.tags = tags;
            batch.put_cf(store.cf(Cf::Objects)?, keys::object(&bucket, &key), record.encode_to_vec());
            if record.version_order != 0 {
                // A versioned current version: its entry in `versions` carries the same tags.
                let at = keys::version(&bucket, &key, record.version_order);
                batch.put_cf(store.cf(Cf::Versions)?, at, record.encode_to_vec());
            }
            Ok(Applied::Object(record))
        }
        Command::SetObjectAcl { bucket, key, version_id, acl } => {
            crate::object_acl::set_acl(store, batch, &bucket, &key, &version_id, acl)
        }
        Command::RemoveNode { node_id } => {
            if node_id.is_empty() {
                return Err(MetadataError::InvalidArgument("a node id is required".into()));
            }
            let start = keys::node_holdings_prefix(&node_id);
            let end = keys::successor(&start).unwrap_or_default();
            batch.delete_range_cf(store.cf(Cf::Holdings)?, start, end);
            batch.delete_cf(store.cf(Cf::Nodes)?, keys::node(&node_id));
            batch.put_cf(store.cf(Cf::NodeAdmin)?, keys::node(&node_id), [NodeAdmin::Removed as u8]);
            Ok(Applied::Done)
        }
        Command::SetAccountMetadata { name, metadata } => {
            crate::accounts::set_metadata(store, batch, &name, metadata).map(Applied::Account)
        }
        Command::SetBucketMetadata { name, metadata } => {
            let mut bucket = store.bucket(&name)?;
            bucket.metadata = metadata;
            batch.put_cf(store.cf(Cf::Buckets)?, keys::bucket(&name), bucket.encode_to_vec());
            Ok(Applied::Bucket(bucket))
        }
        Command::SetBucketPolicy { name, policy } => {
            if policy.len() > MAX_BUCKET_POLICY_BYTES {
                return Err(MetadataError::InvalidArgument(format!(
                    "bucket policies are at most {MAX_BUCKET_POLICY_BYTES} bytes"
                )));
            }
            let mut bucket = store.bucket(&name)?;
            bucket.policy = policy;
            batch.put_cf(store.cf(Cf::Buckets)?, keys::bucket(&name), bucket.encode_to_vec());
            Ok(Applied::Bucket(bucket))
        }
        Command::Expire { bucket, key, at_ms, stamp } => {
            crate::expiry::expire(store, batch, &bucket, &key, at_ms, &stamp)
        }
        Command::SetBucketConfig { name, key, value } => {
            set_bucket_config(store, batch, &name, key, value).map(Applied::Bucket)
        }
        Command::SetBucketTags { name, tags } => {
            let mut bucket = store.bucket(&name)?;
            bucket.tags = tags;
            batch.put_cf(store.cf(Cf::Buckets)?, keys::bucket(&name), bucket.encode_to_vec());
            Ok(Applied::Bucket(bucket))
        }
        Command::CompleteRepair { data_id, index, source, target, stamp } => {
            repair::complete(store, batch, &data_id, index, &source, &target, &stamp)
        }
        Command::DropDamaged { keys } => {
            let cf = store.cf(Cf::Damaged)?;
            for key in keys {
                batch.delete_cf(cf, key);
            }
            Ok(Applied::Done)
        }
        Command::FinishGc { done, retry } => finish_gc(store, batch, &done, &retry),
        Command::Lifecycle { action, stamp } => crate::lifecycle::apply(store, batch, action, &stamp),
        Command::SetLifecycleCursor { cursor } => crate::lifecycle::set_cursor(store, batch, &cursor),
        Command::NotifyDone { keys } => crate::notify::finish(store, batch, &keys),
        Command::CreatedBy { command, .. } => plan(store, batch, *command),
        Command::CreateRangeGroup { group, range, voters } => {
            crate::range::create_group(store, batch, group, range, voters)
        }
        Command::SetBucketState { bucket, record, deleted, generation } => {
            crate::bucket_state::set_state(store, batch, &bucket, generation, (!deleted).then_some(record))
        }
        Command::BucketStateDelivered { group, bucket, generation } => {
            crate::bucket_state::delivered(store, batch, group, &bucket, generation)
        }
        Command::FenceBucket { bucket, lift } => crate::bucket_state::fence(store, batch, &bucket, lift),
        Command::SplitRange { at_bucket, at_key, child, epoch, voters } => {
            crate::split::split_range(store, batch, (at_bucket, at_key), child, epoch, voters)
        }
        Command::ReserveSplit { parent, child, at_bucket, at_key } => {
            crate::split_plan::reserve(store, batch, parent, child, (at_bucket, at_key))
        }
        Command::FinishSplit { child } => crate::split_plan::finish(store, batch, child),
        Command::MoveReplica { group, from, to } => crate::group_move::begin(store, batch, group, from, to),
        Command::FinishMove { group } => crate::group_move::finish(store, batch, group),
        Command::PutIam { entity, create_only } => {
            crate::iam::put(store, batch, entity, create_only).map(Applied::IamGeneration)
        }
        Command::DeleteIam { kind, name } => crate::iam::delete(store, batch, kind, &name).map(Applied::IamGeneration),
    }
}

fn validate_damaged(shard: &DamagedShard) -> Result<(), MetadataError> {
    let data_id_len = shard.data_id.len();
    if shard.disk_id.is_empty() || shard.disk_id.contains('\0') || data_id_len == 0 || data_id_len > MAX_DATA_ID_BYTES {
        return Err(MetadataError::InvalidArgument("damaged-shard report needs a disk id and a data id".into()));
    }
    Ok(())
}

/// Names end up in keys, where NUL is the separator.
pub fn validate_bucket_name(name: &str) -> Result<(), MetadataError> {
    if name.is_empty() || name.len() > 255 || name.contains('\0') {
        return Err(MetadataError::InvalidArgument(format!("invalid bucket name {name:?}")));
    }
    Ok(())
}

/// S3 keys are 1 to 1024 bytes of UTF-8; NUL would break the key layout.
pub fn validate_key(key: &str) -> Result<(), MetadataError> {
    if key.is_empty() || key.len() > 1024 || key.contains('\0') {
        return Err(MetadataError::InvalidArgument(format!("invalid object key {key:?}")));
    }
    Ok(())
}

pub fn validate_node(node: &NodeInfo) -> Result<(), MetadataError> {
    if node.node_id.is_empty() || node.address.is_empty() {
        return Err(MetadataError::InvalidArgument("a node needs an id and an address".into()));
    }
    let mut disk_ids: Vec<&str> = node.disks.iter().map(|d| d.disk_id.as_str()).collect();
    disk_ids.sort_unstable();
    if disk_ids.iter().any(|d| d.is_empty()) || disk_ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(MetadataError::InvalidArgument(format!("node {} has empty or duplicate disk ids", node.node_id)));
    }
    Ok(())
}

fn create_bucket(store: &Store, batch: &mut WriteBatch, bucket: BucketRecord) -> Result<Applied, MetadataError> {
    validate_bucket_name(&bucket.name)?;
    if store.find_bucket(&bucket.name)?.is_some() {
        return Err(MetadataError::BucketAlreadyOwnedByYou(bucket.name));
    }
    batch.put_cf(store.cf(Cf::Buckets)?, keys::bucket(&bucket.name), bucket.encode_to_vec());
    Ok(Applied::Bucket(bucket))
}

fn delete_bucket(store: &Store, batch: &mut WriteBatch, name: &str, stamp: &Stamp) -> Result<Applied, MetadataError> {
    store.bucket(name)?;
    if store.bucket_has_objects(name)? {
        return Err(MetadataError::BucketNotEmpty(name.to_string()));
    }
    for (upload_key, upload) in store.all_uploads(name)? {
        multipart::drop_upload(store, batch, &upload_key, &upload.upload_id, stamp.now_unix_ms)?;
    }
    batch.delete_cf(store.cf(Cf::Buckets)?, keys::bucket(name));
    crate::usage::forget(store, batch, name)?;
    Ok(Applied::Done)
}

fn abandon_data(store: &Store, batch: &mut WriteBatch, intent: &[u8], stamp: &Stamp) -> Result<Applied, MetadataError> {
    let (not_before, _) = data::parse_intent(intent)?;
    // Gone already (committed, abandoned before, collected): abandoning is idempotent.
    if let Some(record) = store.gc_entry(intent)?
        && not_before > stamp.now_unix_ms
    {
        data::expire_intent(store, batch, intent, &record, stamp.now_unix_ms)?;
    }
    Ok(Applied::Done)
}

/// Checks a conditional write against `current`, the object the write would replace. This runs
/// inside the apply, so no other write to the key can come between the check and the commit.
pub fn check_condition(
    condition: &WriteCondition,
    bucket: &str,
    key: &str,
    current: Option<&ObjectRecord>,
) -> Result<(), MetadataError> {
    if condition.if_none_match && current.is_some() {
        return Err(MetadataError::PreconditionFailed(format!("object {key} already exists")));
    }
    if condition.if_match.is_empty() {
        return Ok(());
    }
    // AWS answers If-Match on a key without an object with 404 NoSuchKey, not 412.
    let Some(current) = current else {
        return Err(MetadataError::NoSuchKey { bucket: bucket.to_string(), key: key.to_string() });
    };
    let wanted = condition.if_match.trim();
    let wanted = wanted.strip_prefix('"').and_then(|w| w.strip_suffix('"')).unwrap_or(wanted);
    if wanted != "*" && !wanted.eq_ignore_ascii_case(&current.etag) {
        return Err(MetadataError::PreconditionFailed(format!("object {key} has ETag {}, not {wanted}", current.etag)));
    }
    Ok(())
}

fn put_object(
    store: &Store,
    batch: &mut WriteBatch,
    mut record: ObjectRecord,
    intents: &[Vec<u8>],
    condition: &WriteCondition,
    stamp: &Stamp,
) -> Result<Applied, MetadataError> {
    validate_key(&record.key)?;
    let bucket = store.bucket(&record.bucket)?;
    data::validate_segments(&record.segments, record.size)?;
    crate::object_lock::on_write(&bucket, &mut record, stamp)?;
    record.last_modified_unix_ms = stamp.now_unix_ms;
    let replaced = store.find_object(&record.bucket, &record.key)?;
    check_condition(condition, &record.bucket, &record.key, replaced.as_ref())?;
    if versions::is_versioned(&bucket) {
        return versions::put_object(store, batch, &bucket, record, replaced, intents, stamp);
    }
    // Never versioned: the record replaces the current one, whose data goes to the collector.
    record.version_id.clear();
    record.version_order = 0;
    record.delete_marker = false;
    let replaced_segments = replaced.as_ref().map_or(&[][..], |r| &r.segments[..]);
    let owner = DataOwner { bucket: record.bucket.clone(), key: record.key.clone(), ..Default::default() };
    let ObjectRecord { segments, .. } = &mut record;
    data::commit(store, batch, intents, segments, replaced_segments, stamp, stamp.replaced_gc_unix_ms, &owner)?;
    crate::usage::account(store, batch, &record.bucket, replaced.as_ref(), Some(&record))?;
    batch.put_cf(store.cf(Cf::Objects)?, keys::object(&record.bucket, &record.key), record.encode_to_vec());
    Ok(Applied::Object(record))
}

pub(crate) fn delete_object(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    key: &str,
    stamp: &Stamp,
) -> Result<Applied, MetadataError> {
    let record = store.bucket(bucket)?;
    if versions::is_versioned(&record) {
        return versions::add_delete_marker(store, batch, &record, key, stamp);
    }
    let Some(existing) = store.find_object(bucket, key)? else {
        return Ok(Applied::Existed(false));
    };
    data::schedule_all(store, batch, stamp.replaced_gc_unix_ms, &existing.segments)?;
    crate::usage::account(store, batch, bucket, Some(&existing), None)?;
    batch.delete_cf(store.cf(Cf::Objects)?, keys::object(bucket, key));
    Ok(Applied::Existed(true))
}

fn finish_gc(
    store: &Store,
    batch: &mut WriteBatch,
    done: &[Vec<u8>],
    retry: &[GcRetry],
) -> Result<Applied, MetadataError> {
    let cf = store.cf(Cf::Gc)?;
    for key in done {
        if let Some(record) = store.gc_entry(key)? {
            data::release(store, batch, &record.data_id, &record.shards)?;
        }
        batch.delete_cf(cf, key);
    }
    for r in retry {
        // Only an entry that still exists is moved: never resurrect one another command removed.
        let Some(mut record) = store.gc_entry(&r.key)? else {
            continue;
        };
        let deleted: Vec<ShardLocation> = record.shards.iter().filter(|s| !r.remaining.contains(s)).cloned().collect();
        data::release(store, batch, &record.data_id, &deleted)?;
        batch.delete_cf(cf, &r.key);
        if r.remaining.is_empty() {
            continue;
        }
        record.shards.clone_from(&r.remaining);
        data::put_gc(store, batch, &keys::gc(r.not_before_unix_ms, &record.data_id), record)?;
    }
    Ok(Applied::Done)
}

fn set_bucket_config(
    store: &Store,
    batch: &mut WriteBatch,
    name: &str,
    key: String,
    value: Vec<u8>,
) -> Result<BucketRecord, MetadataError> {
    let valid_name = !key.is_empty()
        && key.len() <= MAX_BUCKET_CONFIG_NAME
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_name {
        return Err(MetadataError::InvalidArgument(format!("invalid bucket configuration name {key:?}")));
    }
    if value.len() > MAX_BUCKET_CONFIG_BYTES {
        return Err(MetadataError::InvalidArgument(format!(
            "bucket configurations are at most {MAX_BUCKET_CONFIG_BYTES} bytes"
        )));
    }
    let mut bucket = store.bucket(name)?;
    crate::object_lock::check_config_change(&bucket, &key, &value)?;
    if value.is_empty() {
        bucket.configs.remove(&key);
    } else {
        if !bucket.configs.contains_key(&key) && bucket.configs.len() >= MAX_BUCKET_CONFIGS {
            return Err(MetadataError::InvalidArgument(format!(
                "a bucket has at most {MAX_BUCKET_CONFIGS} configurations"
            )));
        }
        bucket.configs.insert(key, value);
    }
    batch.put_cf(store.cf(Cf::Buckets)?, keys::bucket(name), bucket.encode_to_vec());
    Ok(bucket)
}

#[cfg(test)]
pub(crate) mod tests {
    use coffer_proto::pb::metadata::{DataLayout, Segment};

    use super::*;

    pub const GRACE_MS: i64 = 900_000;

    pub fn stamp(now: i64) -> Stamp {
        Stamp {
            now_unix_ms: now,
            replaced_gc_unix_ms: now + GRACE_MS,
            intent_deadline_unix_ms: now + 60_000,
            version_order: versions::order_of(now as u64),
        }
    }

    pub fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    pub fn make_bucket(store: &Store, name: &str) {
        apply(store, Command::CreateBucket { bucket: BucketRecord { name: name.into(), ..Default::default() } })
            .unwrap();
    }

    /// Allocates data of `size` bytes on two shards with an intent due at `due`; returns (segment, intent).
    pub fn allocate(store: &Store, data_id: &[u8], size: u64, due: i64) -> (Segment, Vec<u8>) {
        let shards: Vec<ShardLocation> =
            (0..2).map(|i| ShardLocation { node_id: format!("n{i}"), disk_id: "d".into() }).collect();
        let intent = keys::gc(due, data_id);
        apply(
            store,
            Command::RecordIntent {
                intent: intent.clone(),
                record: GcRecord { data_id: data_id.to_vec(), shards: shards.clone(), ..Default::default() },
            },
        )
        .unwrap();
        let layout = DataLayout {
            data_id: data_id.to_vec(),
            data_shards: 1,
            parity_shards: 1,
            stripe_size: 1 << 20,
            size,
            shards,
        };
        (Segment { size, layout: Some(layout), etag: format!("{:032x}", size), ..Default::default() }, intent)
    }

    pub fn object(bucket: &str, key: &str, segment: Segment) -> ObjectRecord {
        ObjectRecord {
            bucket: bucket.into(),
            key: key.into(),
            size: segment.size,
            segments: vec![segment],
            ..Default::default()
        }
    }

    /// Every gc entry as (due, data id).
    pub fn gc_entries(store: &Store) -> Vec<(i64, Vec<u8>)> {
        store
            .due_gc(i64::MAX - 1, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(k, r)| (keys::parse_gc(&k).unwrap().0, r.data_id))
            .collect()
    }

    #[test]
    fn create_bucket_twice_is_already_owned() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let again = Command::CreateBucket { bucket: BucketRecord { name: "b".into(), ..Default::default() } };
        assert!(matches!(apply(&store, again), Err(MetadataError::BucketAlreadyOwnedByYou(_))));
        assert!(matches!(
            apply(&store, Command::CreateBucket { bucket: BucketRecord::default() }),
            Err(MetadataError::InvalidArgument(_))
        ));
    }

    #[test]
    fn bucket_configs_are_set_replaced_removed_and_bounded() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let set = |key: &str, value: &[u8]| {
            apply(&store, Command::SetBucketConfig { name: "b".into(), key: key.into(), value: value.to_vec() })
        };
        set("cors", b"one").unwrap();
        let bucket = set("cors", b"two").unwrap().into_bucket().unwrap();
        assert_eq!(bucket.configs.get("cors").map(Vec::as_slice), Some(&b"two"[..]));
        assert!(set("cors", b"").unwrap().into_bucket().unwrap().configs.is_empty());
        assert!(matches!(set("Bad Name", b"x"), Err(MetadataError::InvalidArgument(_))));
        assert!(matches!(set("big", &vec![0; MAX_BUCKET_CONFIG_BYTES + 1]), Err(MetadataError::InvalidArgument(_))));
        for i in 0..MAX_BUCKET_CONFIGS {
            set(&format!("c{i}"), b"x").unwrap();
        }
        assert!(matches!(set("one-too-many", b"x"), Err(MetadataError::InvalidArgument(_))));
        set("c0", b"replaced in place").unwrap();
        let missing =
            apply(&store, Command::SetBucketConfig { name: "nope".into(), key: "cors".into(), value: vec![1] });
        assert!(matches!(missing, Err(MetadataError::NoSuchBucket(_))));
    }

    #[test]
    fn put_object_needs_its_bucket() {
        let (_dir, store) = store();
        let record = ObjectRecord { bucket: "nope".into(), key: "k".into(), ..Default::default() };
        let result = apply(
            &store,
            Command::PutObject { record, intents: vec![], condition: Default::default(), stamp: stamp(1) },
        );
        assert!(matches!(result, Err(MetadataError::NoSuchBucket(_))));
    }

    #[test]
    fn commit_removes_the_intent_and_replacing_schedules_the_old_data_after_the_grace() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let (seg1, intent1) = allocate(&store, b"data-1", 10, 1_000_000);
        assert_eq!(gc_entries(&store), vec![(1_000_000, b"data-1".to_vec())]);

        let put = |segment: Segment, intent: Vec<u8>, now: i64| {
            let record = object("b", "k", segment);
            apply(
                &store,
                Command::PutObject { record, intents: vec![intent], condition: Default::default(), stamp: stamp(now) },
            )
        };
        let stored = put(seg1, intent1, 100).unwrap().into_object().unwrap();
        assert_eq!(stored.last_modified_unix_ms, 100);
        assert!(gc_entries(&store).is_empty(), "the commit removes the intent");

        let (seg2, intent2) = allocate(&store, b"data-2", 20, 1_000_000);
        put(seg2, intent2, 200).unwrap();
        assert_eq!(gc_entries(&store), vec![(200 + GRACE_MS, b"data-1".to_vec())]);
        assert_eq!(store.object("b", "k").unwrap().size, 20);

        let deleted = apply(&store, Command::DeleteObject { bucket: "b".into(), key: "k".into(), stamp: stamp(300) });
        assert!(deleted.unwrap().into_existed().unwrap());
        assert_eq!(
            gc_entries(&store),
            vec![(200 + GRACE_MS, b"data-1".to_vec()), (300 + GRACE_MS, b"data-2".to_vec())]
        );
        let again = apply(&store, Command::DeleteObject { bucket: "b".into(), key: "k".into(), stamp: stamp(400) });
        assert!(!again.unwrap().into_existed().unwrap());
    }

    #[test]
    fn retried_commit_and_metadata_rewrite_do_not_collect_live_data() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let (seg, intent) = allocate(&store, b"data-1", 10, 1_000_000);
        let cmd = Command::PutObject {
            record: object("b", "k", seg.clone()),
            intents: vec![intent],
            condition: Default::default(),
            stamp: stamp(1),
        };
        apply(&store, cmd.clone()).unwrap();
        apply(&store, cmd).unwrap();
        let mut rewrite = object("b", "k", seg);
        rewrite.content_type = "text/plain".into();
        apply(
            &store,
            Command::PutObject { record: rewrite, intents: vec![], condition: Default::default(), stamp: stamp(2) },
        )
        .unwrap();
        assert!(gc_entries(&store).is_empty());
        assert_eq!(store.object("b", "k").unwrap().content_type, "text/plain");
    }

    #[test]
    fn commit_refuses_data_without_a_live_intent() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let (seg, intent) = allocate(&store, b"data-1", 10, 1_000_000);
        // Never allocated at all.
        let no_intent = Command::PutObject {
            record: object("b", "k", seg.clone()),
            intents: vec![],
            condition: Default::default(),
            stamp: stamp(1),
        };
        assert!(matches!(apply(&store, no_intent), Err(MetadataError::InvalidArgument(_))));
        // Too close to its expiry: the collector may be deleting it.
        let late = Command::PutObject {
            record: object("b", "k", seg.clone()),
            intents: vec![intent.clone()],
            condition: Default::default(),
            stamp: stamp(999_000),
        };
        assert!(matches!(apply(&store, late), Err(MetadataError::InvalidArgument(_))));
        // Abandoned: the collector owns it now.
        apply(&store, Command::AbandonData { intent: intent.clone(), stamp: stamp(5) }).unwrap();
        assert_eq!(gc_entries(&store), vec![(5, b"data-1".to_vec())]);
        let abandoned = Command::PutObject {
            record: object("b", "k", seg),
            intents: vec![intent],
            condition: Default::default(),
            stamp: stamp(6),
        };
        assert!(matches!(apply(&store, abandoned), Err(MetadataError::InvalidArgument(_))));
        assert!(store.find_object("b", "k").unwrap().is_none());
    }

    #[test]
    fn intents_the_record_does_not_use_are_collected_at_once() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let (_unused, intent) = allocate(&store, b"data-1", 10, 1_000_000);
        let inline = Segment { size: 3, inline_data: b"abc".to_vec(), ..Default::default() };
        let cmd = Command::PutObject {
            record: object("b", "k", inline),
            intents: vec![intent],
            condition: Default::default(),
            stamp: stamp(7),
        };
        apply(&store, cmd).unwrap();
        assert_eq!(gc_entries(&store), vec![(7, b"data-1".to_vec())]);
    }

    #[test]
    fn conditional_put_is_checked_against_the_object_it_would_replace() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let inline =
            |body: &[u8]| Segment { size: body.len() as u64, inline_data: body.to_vec(), ..Default::default() };
        let put = |condition: WriteCondition, etag: &str| {
            let mut record = object("b", "k", inline(b"x"));
            record.etag = etag.into();
            apply(&store, Command::PutObject { record, intents: vec![], condition, stamp: stamp(1) })
        };
        let none_match = || WriteCondition { if_none_match: true, ..Default::default() };
        let if_match = |etag: &str| WriteCondition { if_match: etag.into(), ..Default::default() };

        // If-Match on a free key: NoSuchKey (as AWS); If-None-Match: * creates it.
        assert!(matches!(put(if_match("*"), "e1"), Err(MetadataError::NoSuchKey { .. })));
        assert!(matches!(put(if_match("e1"), "e1"), Err(MetadataError::NoSuchKey { .. })));
        put(none_match(), "e1").unwrap();
        // Now it exists: If-None-Match: * is refused and changes nothing.
        assert!(matches!(put(none_match(), "e2"), Err(MetadataError::PreconditionFailed(_))));
        assert_eq!(store.object("b", "k").unwrap().etag, "e1");
        // If-Match: a different ETag is refused; the current one (quoted or not, any case) or * is accepted.
        assert!(matches!(put(if_match("\"other\""), "e2"), Err(MetadataError::PreconditionFailed(_))));
        put(if_match("\"E1\""), "e2").unwrap();
        put(if_match("*"), "e3").unwrap();
        assert_eq!(store.object("b", "k").unwrap().etag, "e3");
    }

    #[test]
    fn refused_conditional_put_leaves_the_intent_for_the_gateway_to_abandon() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let inline = Segment { size: 1, inline_data: b"x".to_vec(), ..Default::default() };
        let first = Command::PutObject {
            record: object("b", "k", inline),
            intents: vec![],
            condition: Default::default(),
            stamp: stamp(1),
        };
        apply(&store, first).unwrap();
        let (seg, intent) = allocate(&store, b"data-1", 10, 1_000_000);
        let refused = Command::PutObject {
            record: object("b", "k", seg),
            intents: vec![intent.clone()],
            condition: WriteCondition { if_none_match: true, ..Default::default() },
            stamp: stamp(2),
        };
        assert!(matches!(apply(&store, refused), Err(MetadataError::PreconditionFailed(_))));
        // Nothing was written: the intent still owns the data, and abandoning it hands it to the collector now.
        assert_eq!(gc_entries(&store), vec![(1_000_000, b"data-1".to_vec())]);
        apply(&store, Command::AbandonData { intent, stamp: stamp(3) }).unwrap();
        assert_eq!(gc_entries(&store), vec![(3, b"data-1".to_vec())]);
    }

    #[test]
    fn abandon_is_idempotent_and_rejects_garbage() {
        let (_dir, store) = store();
        let (_, intent) = allocate(&store, b"data-1", 10, 1_000_000);
        apply(&store, Command::AbandonData { intent: intent.clone(), stamp: stamp(5) }).unwrap();
        apply(&store, Command::AbandonData { intent, stamp: stamp(6) }).unwrap();
        assert_eq!(gc_entries(&store), vec![(5, b"data-1".to_vec())]);
        let garbage = Command::AbandonData { intent: b"x".to_vec(), stamp: stamp(6) };
        assert!(matches!(apply(&store, garbage), Err(MetadataError::InvalidArgument(_))));
    }

    #[test]
    fn finish_gc_removes_done_entries_and_moves_retries_with_what_remains() {
        let (_dir, store) = store();
        let (_, a) = allocate(&store, b"a", 1, 10);
        let (_, b) = allocate(&store, b"b", 1, 10);
        let remaining = vec![ShardLocation { node_id: "n1".into(), disk_id: "d".into() }];
        let retry = GcRetry { key: b.clone(), not_before_unix_ms: 50, remaining: remaining.clone() };
        apply(&store, Command::FinishGc { done: vec![a], retry: vec![retry.clone()] }).unwrap();
        assert_eq!(gc_entries(&store), vec![(50, b"b".to_vec())]);
        assert_eq!(store.gc_entry(&keys::gc(50, b"b")).unwrap().unwrap().shards, remaining);
        // A retry of an entry that is gone does not bring it back.
        apply(&store, Command::FinishGc { done: vec![], retry: vec![retry] }).unwrap();
        assert_eq!(gc_entries(&store), vec![(50, b"b".to_vec())]);
    }

    #[test]
    fn delete_bucket_refuses_objects_and_aborts_uploads() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let inline = Segment { size: 1, inline_data: b"x".to_vec(), ..Default::default() };
        apply(
            &store,
            Command::PutObject {
                record: object("b", "k", inline),
                intents: vec![],
                condition: Default::default(),
                stamp: stamp(1),
            },
        )
        .unwrap();
        let delete = Command::DeleteBucket { name: "b".into(), stamp: stamp(2) };
        assert!(matches!(apply(&store, delete.clone()), Err(MetadataError::BucketNotEmpty(_))));
        apply(&store, Command::DeleteObject { bucket: "b".into(), key: "k".into(), stamp: stamp(3) }).unwrap();

        let template = ObjectRecord { bucket: "b".into(), key: "u".into(), ..Default::default() };
        let upload = UploadRecord {
            upload_id: "up".into(),
            bucket: "b".into(),
            key: "u".into(),
            template: Some(template),
            ..Default::default()
        };
        apply(&store, Command::CreateUpload { upload }).unwrap();
        let (seg, intent) = allocate(&store, b"part-1", 10, 1_000_000);
        let part = PartRecord { upload_id: "up".into(), part_number: 1, segment: Some(seg), ..Default::default() };
        let put_part =
            Command::PutPart { bucket: "b".into(), key: "u".into(), part, intents: vec![intent], stamp: stamp(4) };
        apply(&store, put_part).unwrap();

        apply(&store, delete).unwrap();
        assert!(matches!(store.bucket("b"), Err(MetadataError::NoSuchBucket(_))));
        assert!(store.all_uploads("b").unwrap().is_empty());
        assert!(store.all_parts("up").unwrap().is_empty());
        assert_eq!(gc_entries(&store), vec![(2, b"part-1".to_vec())]);
        let missing = Command::DeleteBucket { name: "b".into(), stamp: stamp(5) };
        assert!(matches!(apply(&store, missing), Err(MetadataError::NoSuchBucket(_))));
    }
}
