//! A [`Command`] as the bytes of one replicated-log entry: a format-version byte, then the command
//! in postcard.
//!
//! Every replica decodes what the leader encoded and runs it through the same deterministic
//! `apply`, so the bytes must read back as the same command on every build that knows their
//! version. Fields that are protobuf messages travel as their protobuf encoding (the project's
//! evolvable wire format: [`pb_message`], [`pb_messages`]), protobuf enums as their number
//! ([`pb_enum`]).
//!
//! Postcard is positional: a variant is its index in declaration order, and fields are read in
//! order, without names. So a new `Command` variant goes at the end, and changing the fields of an
//! existing variant (or of `Stamp`, `GcRetry`, `LockUpdate`, `lifecycle::Action`, `notify::Created`)
//! needs a new [`FORMAT_VERSION`] with a decoder kept for the old one. Protobuf messages may grow
//! fields freely, as anywhere else. The `pins_the_format` test fails on an accidental change.
//!
//! A Raft entry carries a batch of commands ([`encode_batch`], [`decode_proposal`]): its own
//! format-version byte ([`BATCH_FORMAT_VERSION`]), then each command's id and versioned bytes. An
//! entry written before batching held one command whose bytes began with [`LONE_COMMAND`]; both
//! decode, told apart by that first byte.

use std::fmt;
use std::marker::PhantomData;

use coffer_proto::Message;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

use crate::command::Command;
use crate::error::MetadataError;

/// The first byte of every encoded command.
pub const FORMAT_VERSION: u8 = 1;

/// Boxed commands (`CreatedBy`) nested deeper than this are refused, so hostile bytes cannot
/// recurse the decoder off the stack. One level is all `notify::hinted` makes.
const MAX_NESTED_COMMANDS: usize = 4;

/// Elements reserved up front for a decoded sequence, whatever length the bytes claim.
const MAX_PREALLOCATED: usize = 1024;

const WHAT: &str = "replicated command";

/// The log-entry bytes of `command`. Not canonical: maps are written in their iteration order,
/// so equal commands may encode differently; they always decode equal.
pub fn encode(command: &Command) -> Vec<u8> {
    postcard::to_extend(command, vec![FORMAT_VERSION])
        // Postcard fails only on a sequence of unknown length or a full fixed buffer; a Vec grows
        // and every sequence of a command (Vec, HashMap, the pb_messages slice) knows its length.
        .expect("a command always encodes into a Vec")
}

/// The command `bytes` (from [`encode`]) hold; an error, never a panic, for bytes of an unknown
/// format version, truncated, with bytes left over, or otherwise not a command.
pub fn decode(bytes: &[u8]) -> Result<Command, MetadataError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(MetadataError::corrupt(WHAT, "no bytes"));
    };
    if version != FORMAT_VERSION {
        return Err(MetadataError::corrupt(
            WHAT,
            format!("unknown format version {version} (this build reads version {FORMAT_VERSION})"),
        ));
    }
    let (command, rest) = postcard::take_from_bytes::<Command>(body).map_err(|e| MetadataError::corrupt(WHAT, e))?;
    if !rest.is_empty() {
        return Err(MetadataError::corrupt(WHAT, format!("{} bytes after the command", rest.len())));
    }
    Ok(command)
}

/// The first byte of a Raft entry's command bytes written before batching: one command in the
/// layout of [`FORMAT_VERSION`] 1, its caller's id beside the bytes. Never written any more; read
/// so that a log from before batching still replays.
pub const LONE_COMMAND: u8 = 1;

/// The first byte of a batch of commands (see [`encode_batch`]). Its own number space from here on:
/// the commands inside carry their own [`FORMAT_VERSION`] byte.
pub const BATCH_FORMAT_VERSION: u8 = 2;

const BATCH_WHAT: &str = "replicated batch of commands";

/// The bytes of one Raft entry's batch: [`BATCH_FORMAT_VERSION`], then postcard of the sequence
/// of (id, bytes of [`encode`]) — a varint count, then per command a varint id, a varint length
/// and the command's versioned bytes. Ids are the proposing replica's waiters (see
/// `raft::proposals`); other replicas ignore them.
pub fn encode_batch<'a>(commands: impl IntoIterator<Item = (u64, &'a [u8])>) -> Vec<u8> {
    let commands: Vec<(u64, &[u8])> = commands.into_iter().collect();
    postcard::to_extend(&commands, vec![BATCH_FORMAT_VERSION])
        // As in `encode`: a Vec grows, and the sequence knows its length.
        .expect("a batch always encodes into a Vec")
}

/// The commands (id, versioned bytes) of a Raft entry whose bytes are `bytes` and whose id field
/// is `lone_id`: a batch of [`encode_batch`], or a lone command from before batching (then
/// `lone_id` is its id). Each command's format version is checked here, so an entry from a newer
/// build is refused on arrival rather than halfway through applying it; the commands themselves
/// are decoded when applied.
pub fn decode_proposal(lone_id: u64, bytes: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, MetadataError> {
    match bytes.first() {
        Some(&LONE_COMMAND) => Ok(vec![(lone_id, bytes.to_vec())]),
        Some(&BATCH_FORMAT_VERSION) => {
            let (commands, rest) = postcard::take_from_bytes::<Vec<(u64, &[u8])>>(&bytes[1..])
                .map_err(|e| MetadataError::corrupt(BATCH_WHAT, e))?;
            if !rest.is_empty() {
                return Err(MetadataError::corrupt(BATCH_WHAT, format!("{} bytes after the batch", rest.len())));
            }
            if let Some((id, command)) = commands.iter().find(|(_, c)| c.first() != Some(&FORMAT_VERSION)) {
                let version = command.first().map_or("none (no bytes)".to_string(), u8::to_string);
                return Err(MetadataError::corrupt(
                    BATCH_WHAT,
                    format!("command {id} is in format version {version} (this build reads version {FORMAT_VERSION})"),
                ));
            }
            Ok(commands.into_iter().map(|(id, command)| (id, command.to_vec())).collect())
        }
        Some(version) => Err(MetadataError::corrupt(
            BATCH_WHAT,
            format!("unknown format version {version} (this build reads {LONE_COMMAND} and {BATCH_FORMAT_VERSION})"),
        )),
        None => Err(MetadataError::corrupt(BATCH_WHAT, "no bytes")),
    }
}

/// `#[serde(with)]` for a protobuf message field: its protobuf encoding as one byte string.
pub mod pb_message {
    use super::*;

    pub fn serialize<T: Message, S: Serializer>(message: &T, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&message.encode_to_vec())
    }

    pub fn deserialize<'de, T: Message + Default, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_bytes(MessageVisitor(PhantomData))
    }
}

/// `#[serde(with)]` for a `Vec` of protobuf messages: a sequence of their encodings.
pub mod pb_messages {
    use super::*;

    pub fn serialize<T: Message, S: Serializer>(messages: &[T], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(messages.iter().map(Encoded))
    }

    pub fn deserialize<'de, T: Message + Default, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_seq(MessagesVisitor(PhantomData))
    }
}

/// `#[serde(with)]` for a protobuf enum field (`Versioning`, `NodeAdmin`, `IamKind`): its number.
/// A number this build does not know is refused rather than applied as something else.
pub mod pb_enum {
    use super::*;

    pub fn serialize<T: Copy + Into<i32>, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32((*value).into())
    }

    pub fn deserialize<'de, T: TryFrom<i32>, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
        let number = i32::deserialize(deserializer)?;
        T::try_from(number).map_err(|_| {
            de::Error::custom(format_args!("{number} is not a {} this build knows", std::any::type_name::<T>()))
        })
    }
}

/// `#[serde(deserialize_with)]` for a boxed command inside a command, at most
/// [`MAX_NESTED_COMMANDS`] deep.
pub(crate) fn nested_command<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Box<Command>, D::Error> {
    thread_local! {
        static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    /// Leaves the level however its decoding ends.
    struct Level;
    impl Drop for Level {
        fn drop(&mut self) {
            DEPTH.set(DEPTH.get().saturating_sub(1));
        }
    }

    if DEPTH.get() >= MAX_NESTED_COMMANDS {
        return Err(de::Error::custom(format_args!("commands nested more than {MAX_NESTED_COMMANDS} deep")));
    }
    DEPTH.set(DEPTH.get() + 1);
    let _level = Level;
    Command::deserialize(deserializer).map(Box::new)
}

struct Encoded<'a, T>(&'a T);

impl<T: Message> Serialize for Encoded<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        pb_message::serialize(self.0, serializer)
    }
}

struct Decoded<T>(T);

impl<'de, T: Message + Default> Deserialize<'de> for Decoded<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        pb_message::deserialize(deserializer).map(Decoded)
    }
}

struct MessageVisitor<T>(PhantomData<T>);

impl<T: Message + Default> Visitor<'_> for MessageVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "the protobuf encoding of a {}", std::any::type_name::<T>())
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<T, E> {
        T::decode(bytes).map_err(E::custom)
    }
}

struct MessagesVisitor<T>(PhantomData<T>);

impl<'de, T: Message + Default> Visitor<'de> for MessagesVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a sequence of protobuf encodings of {}", std::any::type_name::<T>())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut messages = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PREALLOCATED));
        while let Some(Decoded(message)) = seq.next_element::<Decoded<T>>()? {
            messages.push(message);
        }
        Ok(messages)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use coffer_proto::pb::metadata::iam_entity::Entity;
    use coffer_proto::pb::metadata::{
        BucketRecord, CompletedPart, DamagedShard, DataLayout, DiskInfo, GcRecord, IamAccessKey, IamEntity, IamKind,
        IamUser, LifecycleCursor, NodeAdmin, NodeInfo, ObjectRecord, PartRecord, Segment, ShardLocation, UploadRecord,
        Versioning, WriteCondition,
    };

    use super::*;
    use crate::command::{GcRetry, Stamp};
    use crate::lifecycle::Action;
    use crate::notify::Created;
    use crate::object_lock::LockUpdate;

    fn stamp() -> Stamp {
        Stamp {
            now_unix_ms: 1_700_000_000_123,
            replaced_gc_unix_ms: 1_700_000_900_123,
            intent_deadline_unix_ms: -5,
            version_order: u64::MAX - 7,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn shard(n: u32) -> ShardLocation {
        ShardLocation { node_id: format!("node-{n}"), disk_id: format!("disk-{n}") }
    }

    fn segment() -> Segment {
        let layout = DataLayout {
            data_id: vec![0, 1, 2, 255],
            data_shards: 4,
            parity_shards: 2,
            stripe_size: 1 << 20,
            size: 12_345,
            shards: (0..6).map(shard).collect(),
        };
        Segment {
            size: 12_345,
            layout: Some(layout),
            etag: "0123456789abcdef0123456789abcdef".into(),
            part_number: 3,
            checksums: map(&[("CRC32", "AAAAAA=="), ("SHA256", "abc=")]),
            stored_size: 12_400,
            ..Default::default()
        }
    }

    fn object() -> ObjectRecord {
        ObjectRecord {
            bucket: "photos".into(),
            key: "2024/été/ü.jpg".into(),
            size: 12_345,
            etag: "0123456789abcdef0123456789abcdef".into(),
            last_modified_unix_ms: 1_700_000_000_000,
            content_type: "image/jpeg".into(),
            user_metadata: map(&[("camera", "x100"), ("lens", "23mm")]),
            segments: vec![segment(), Segment { size: 3, inline_data: b"abc".to_vec(), ..Default::default() }],
            version_id: "v-42".into(),
            tags: map(&[("project", "coffer")]),
            version_order: 99,
            lock_mode: "GOVERNANCE".into(),
            lock_retain_until_unix_ms: 1_800_000_000_000,
            legal_hold: "ON".into(),
            acl: "public-read".into(),
            ..Default::default()
        }
    }

    fn condition() -> WriteCondition {
        WriteCondition { if_match: "0123456789abcdef".into(), if_none_match: true }
    }

    fn put_object() -> Command {
        Command::PutObject {
            record: object(),
            intents: vec![vec![1, 2, 3], vec![], vec![0xff; 40]],
            condition: condition(),
            stamp: stamp(),
        }
    }

    /// One command of every variant (several for variants holding an enum), all fields set.
    fn samples() -> Vec<Command> {
        let bucket = BucketRecord {
            name: "photos".into(),
            created_unix_ms: 1_600_000_000_000,
            owner: "alice".into(),
            region: "eu-west-1".into(),
            tags: map(&[("team", "storage")]),
            metadata: map(&[("x-container-meta-color", "blue")]),
            versioning: Versioning::Enabled as i32,
            policy: r#"{"Version":"2012-10-17"}"#.into(),
            configs: [("cors".to_string(), b"<CORSConfiguration/>".to_vec())].into_iter().collect(),
        };
        let node = NodeInfo {
            node_id: "node-1".into(),
            address: "http://10.0.0.1:9200".into(),
            disks: vec![DiskInfo {
                disk_id: "disk-1".into(),
                path: "/srv/disk1".into(),
                capacity_bytes: 1 << 40,
                used_bytes: 1 << 30,
                healthy: true,
                state: 2,
            }],
        };
        let damaged = DamagedShard {
            node_id: "node-1".into(),
            disk_id: "disk-1".into(),
            data_id: vec![9, 8, 7],
            stripe: 5,
            index: 2,
            reason: "corrupt".into(),
            detail: "crc mismatch".into(),
            reported_unix_ms: 1_700_000_000_001,
        };
        let user =
            IamUser { name: "bob".into(), disabled: true, policies: vec!["readonly".into()], created_unix_ms: 7 };
        let key = IamAccessKey {
            access_key: "AKIA123".into(),
            user: "bob".into(),
            sealed_secret: vec![1; 48],
            service_account: true,
            description: "ci".into(),
            ..Default::default()
        };
        vec![
            Command::CreateBucket { bucket },
            Command::DeleteBucket { name: "photos".into(), stamp: stamp() },
            Command::RecordIntent {
                intent: vec![0, 0, 1, 2],
                record: GcRecord { data_id: vec![4, 5, 6], shards: vec![shard(1), shard(2)], ..Default::default() },
            },
            Command::AbandonData { intent: vec![3, 3, 3], stamp: stamp() },
            put_object(),
            Command::DeleteObject { bucket: "photos".into(), key: "a/b".into(), stamp: stamp() },
            Command::DeleteVersion {
                bucket: "photos".into(),
                key: "a/b".into(),
                version_id: "v-1".into(),
                bypass_governance: true,
                stamp: stamp(),
            },
            Command::UpdateObjectLock {
                bucket: "photos".into(),
                key: "a/b".into(),
                version_id: "v-2".into(),
                update: LockUpdate {
                    retention: Some(("COMPLIANCE".into(), 1_900_000_000_000)),
                    legal_hold: Some("OFF".into()),
                    bypass_governance: true,
                },
                stamp: stamp(),
            },
            Command::SetBucketVersioning { name: "photos".into(), versioning: Versioning::Suspended },
            Command::SetVersionTags {
                bucket: "photos".into(),
                key: "a/b".into(),
                version_id: "null".into(),
                tags: map(&[("k1", "v1"), ("k2", "")]),
            },
            Command::CreateUpload {
                upload: UploadRecord {
                    upload_id: "up-1".into(),
                    bucket: "photos".into(),
                    key: "big".into(),
                    initiated_unix_ms: 11,
                    template: Some(object()),
                },
            },
            Command::PutPart {
                bucket: "photos".into(),
                key: "big".into(),
                part: PartRecord {
                    upload_id: "up-1".into(),
                    part_number: 7,
                    last_modified_unix_ms: 12,
                    segment: Some(segment()),
                },
                intents: vec![vec![7; 20]],
                stamp: stamp(),
            },
            Command::CompleteUpload {
                bucket: "photos".into(),
                key: "big".into(),
                upload_id: "up-1".into(),
                parts: vec![
                    CompletedPart { part_number: 1, etag: "e1".into() },
                    CompletedPart { part_number: 7, etag: "e7".into() },
                ],
                condition: condition(),
                stamp: stamp(),
            },
            Command::AbortUpload {
                bucket: "photos".into(),
                key: "big".into(),
                upload_id: "up-2".into(),
                stamp: stamp(),
            },
            Command::PutNode { node },
            Command::ReportDamaged { shards: vec![damaged.clone(), DamagedShard { stripe: 6, ..damaged }] },
            Command::SetNodeAdmin { node_id: "node-1".into(), admin: NodeAdmin::Draining },
            Command::SetObjectTags { bucket: "photos".into(), key: "a/b".into(), tags: map(&[("x", "y")]) },
            Command::SetObjectAcl {
                bucket: "photos".into(),
                key: "a/b".into(),
                version_id: "v-3".into(),
                acl: "authenticated-read".into(),
            },
            Command::RemoveNode { node_id: "node-9".into() },
            Command::SetBucketTags { name: "photos".into(), tags: map(&[("a", "1"), ("b", "2"), ("c", "3")]) },
            Command::SetBucketMetadata { name: "photos".into(), metadata: map(&[("x-container-meta-a", "b")]) },
            Command::SetBucketPolicy { name: "photos".into(), policy: r#"{"Statement":[]}"#.into() },
            Command::Expire { bucket: "photos".into(), key: "tmp/x".into(), at_ms: 1_700_000_000_999, stamp: stamp() },
            Command::SetBucketConfig { name: "photos".into(), key: "lifecycle".into(), value: vec![0x0a, 0x02, 0, 1] },
            Command::SetAccountMetadata { name: "AUTH_test".into(), metadata: map(&[("x-account-meta-q", "1")]) },
            Command::CompleteRepair {
                data_id: vec![1, 1, 2, 3, 5, 8],
                index: 4,
                source: shard(3),
                target: shard(4),
                stamp: stamp(),
            },
            Command::DropDamaged { keys: vec![b"d1".to_vec(), b"d2".to_vec()] },
            Command::PutIam { entity: IamEntity { entity: Some(Entity::User(user)) }, create_only: true },
            Command::PutIam { entity: IamEntity { entity: Some(Entity::Key(key)) }, create_only: false },
            Command::DeleteIam { kind: IamKind::AccessKey, name: "AKIA123".into() },
            Command::FinishGc {
                done: vec![b"gc-1".to_vec()],
                retry: vec![
                    GcRetry { key: b"gc-2".to_vec(), not_before_unix_ms: 1_700_000_100_000, remaining: vec![shard(5)] },
                    GcRetry { key: b"gc-3".to_vec(), not_before_unix_ms: -1, remaining: vec![] },
                ],
            },
            Command::Lifecycle {
                action: Action::ExpireCurrent {
                    bucket: "photos".into(),
                    key: "old".into(),
                    version_order: 17,
                    last_modified_unix_ms: 1_500_000_000_000,
                },
                stamp: stamp(),
            },
            Command::Lifecycle {
                action: Action::RemoveVersion {
                    bucket: "photos".into(),
                    key: "old".into(),
                    version_order: 18,
                    sole_delete_marker: true,
                },
                stamp: stamp(),
            },
            Command::Lifecycle {
                action: Action::AbortUpload { bucket: "photos".into(), key: "big".into(), upload_id: "up-3".into() },
                stamp: stamp(),
            },
            Command::SetLifecycleCursor {
                cursor: LifecycleCursor { bucket: "photos".into(), phase: 1, after: b"big\0up-3".to_vec() },
            },
            Command::NotifyDone { keys: vec![b"n1".to_vec(), b"n2".to_vec()] },
            Command::CreatedBy { how: Created::Post, command: Box::new(put_object()) },
            Command::CreatedBy { how: Created::Copy, command: Box::new(put_object()) },
            Command::CreateRangeGroup {
                group: 7,
                range: crate::range::Range {
                    start_bucket: "photos".into(),
                    start_key: "m".into(),
                    end_bucket: String::new(),
                    end_key: String::new(),
                },
                voters: vec![(1, "http://10.0.0.1:9100".into()), (2, "http://10.0.0.2:9100".into())],
            },
            Command::SetBucketState {
                bucket: "photos".into(),
                record: BucketRecord { name: "photos".into(), ..Default::default() },
                deleted: false,
                generation: 12,
            },
            Command::BucketStateDelivered { group: 7, bucket: "photos".into(), generation: 12 },
            Command::FenceBucket { bucket: "photos".into(), lift: true },
            Command::SplitRange {
                at_bucket: "photos".into(),
                at_key: "m".into(),
                child: 8,
                epoch: 3,
                voters: vec![(1, "http://10.0.0.1:9100".into())],
            },
            Command::ReserveSplit { parent: 7, child: 8, at_bucket: "photos".into(), at_key: "m".into() },
            Command::FinishSplit { child: 8 },
            Command::MoveReplica { group: 3, from: Some(1), to: Some((4, "http://d:9100".into())) },
            Command::FinishMove { group: 3 },
        ]
    }

    /// No wildcard: a new `Command` variant does not compile until it is named here, and
    /// `every_variant_has_a_round_trip_case` fails until `samples` holds one.
    fn variant_name(command: &Command) -> &'static str {
        match command {
            Command::CreateBucket { .. } => "CreateBucket",
            Command::DeleteBucket { .. } => "DeleteBucket",
            Command::RecordIntent { .. } => "RecordIntent",
            Command::AbandonData { .. } => "AbandonData",
            Command::PutObject { .. } => "PutObject",
            Command::DeleteObject { .. } => "DeleteObject",
            Command::DeleteVersion { .. } => "DeleteVersion",
            Command::UpdateObjectLock { .. } => "UpdateObjectLock",
            Command::SetBucketVersioning { .. } => "SetBucketVersioning",
            Command::SetVersionTags { .. } => "SetVersionTags",
            Command::CreateUpload { .. } => "CreateUpload",
            Command::PutPart { .. } => "PutPart",
            Command::CompleteUpload { .. } => "CompleteUpload",
            Command::AbortUpload { .. } => "AbortUpload",
            Command::PutNode { .. } => "PutNode",
            Command::ReportDamaged { .. } => "ReportDamaged",
            Command::SetNodeAdmin { .. } => "SetNodeAdmin",
            Command::SetObjectTags { .. } => "SetObjectTags",
            Command::SetObjectAcl { .. } => "SetObjectAcl",
            Command::RemoveNode { .. } => "RemoveNode",
            Command::SetBucketTags { .. } => "SetBucketTags",
            Command::SetBucketMetadata { .. } => "SetBucketMetadata",
            Command::SetBucketPolicy { .. } => "SetBucketPolicy",
            Command::Expire { .. } => "Expire",
            Command::SetBucketConfig { .. } => "SetBucketConfig",
            Command::SetAccountMetadata { .. } => "SetAccountMetadata",
            Command::CompleteRepair { .. } => "CompleteRepair",
            Command::DropDamaged { .. } => "DropDamaged",
            Command::PutIam { .. } => "PutIam",
            Command::DeleteIam { .. } => "DeleteIam",
            Command::FinishGc { .. } => "FinishGc",
            Command::Lifecycle { .. } => "Lifecycle",
            Command::SetLifecycleCursor { .. } => "SetLifecycleCursor",
            Command::NotifyDone { .. } => "NotifyDone",
            Command::CreatedBy { .. } => "CreatedBy",
            Command::CreateRangeGroup { .. } => "CreateRangeGroup",
            Command::SetBucketState { .. } => "SetBucketState",
            Command::BucketStateDelivered { .. } => "BucketStateDelivered",
            Command::FenceBucket { .. } => "FenceBucket",
            Command::SplitRange { .. } => "SplitRange",
            Command::ReserveSplit { .. } => "ReserveSplit",
            Command::FinishSplit { .. } => "FinishSplit",
            Command::MoveReplica { .. } => "MoveReplica",
            Command::FinishMove { .. } => "FinishMove",
        }
    }

    /// Reads the variant names serde's derive gives `Command` (all of them, in declaration order).
    struct VariantNames(&'static [&'static str]);

    impl<'de> Deserializer<'de> for &mut VariantNames {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not an enum"))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = variants;
            Err(de::Error::custom("variant names read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }

    fn serde_variants() -> &'static [&'static str] {
        let mut names = VariantNames(&[]);
        assert!(Command::deserialize(&mut names).is_err());
        names.0
    }

    #[test]
    fn every_variant_round_trips() {
        for command in samples() {
            let bytes = encode(&command);
            assert_eq!(bytes[0], FORMAT_VERSION);
            assert_eq!(decode(&bytes).unwrap(), command, "{}", variant_name(&command));
        }
    }

    #[test]
    fn every_variant_has_a_round_trip_case() {
        let covered: BTreeSet<&str> = samples().iter().map(variant_name).collect();
        let all: BTreeSet<&str> = serde_variants().iter().copied().collect();
        assert_eq!(all.len(), serde_variants().len());
        assert_eq!(covered, all, "every Command variant needs a case in samples()");
    }

    #[test]
    fn pins_the_format() {
        // Changing these bytes breaks decoding of entries already in a log: see the module doc.
        let stamp = Stamp { now_unix_ms: 1, replaced_gc_unix_ms: -1, intent_deadline_unix_ms: 2, version_order: 300 };
        let delete = Command::DeleteBucket { name: "b".into(), stamp };
        // Version, variant 1, "b", zigzag varints 1 and -1 and 2, varint 300.
        assert_eq!(encode(&delete), [1, 1, 1, b'b', 2, 1, 4, 0xac, 0x02]);
        let create = Command::CreateBucket { bucket: BucketRecord { name: "b".into(), ..Default::default() } };
        // Variant 0, then the 3 protobuf bytes of the record (field 1, length 1, "b").
        assert_eq!(encode(&create), [1, 0, 3, 0x0a, 1, b'b']);
        let versioning = Command::SetBucketVersioning { name: "b".into(), versioning: Versioning::Suspended };
        assert_eq!(encode(&versioning), [1, 8, 1, b'b', 4]);
        let created = Command::CreatedBy {
            how: Created::Copy,
            command: Box::new(Command::DeleteObject { bucket: "b".into(), key: "k".into(), stamp }),
        };
        assert_eq!(encode(&created), [1, 34, 1, 5, 1, b'b', 1, b'k', 2, 1, 4, 0xac, 0x02]);
        let group = Command::CreateRangeGroup {
            group: 1,
            range: crate::range::Range {
                start_bucket: "b".into(),
                start_key: "k".into(),
                end_bucket: String::new(),
                end_key: String::new(),
            },
            voters: vec![(2, "u".into())],
        };
        // Variant 35, group 1, the range's four strings, one voter (id 2, "u").
        assert_eq!(encode(&group), [1, 35, 1, 1, b'b', 1, b'k', 0, 0, 1, 2, 1, b'u']);
        // Variant 37, group 7, "b", generation 3.
        let delivered = Command::BucketStateDelivered { group: 7, bucket: "b".into(), generation: 3 };
        assert_eq!(encode(&delivered), [1, 37, 7, 1, b'b', 3]);
        for bytes in [encode(&delete), encode(&create), encode(&versioning), encode(&created), encode(&group)] {
            assert!(decode(&bytes).is_ok());
        }
    }

    #[test]
    fn truncated_or_extended_bytes_are_errors() {
        for command in samples() {
            let bytes = encode(&command);
            for end in 0..bytes.len() {
                assert!(decode(&bytes[..end]).is_err(), "{} cut at {end}", variant_name(&command));
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(decode(&longer), Err(MetadataError::Corrupt { .. })));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[FORMAT_VERSION, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[FORMAT_VERSION, 200]).is_err(), "no such variant");
        // A CreateBucket whose record bytes are not protobuf (field 1 as a 10-byte length).
        assert!(decode(&[FORMAT_VERSION, 0, 2, 0x0a, 0xff]).is_err());
        // Random bytes behind a good version byte: any outcome but a panic.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut bytes = vec![FORMAT_VERSION];
            for _ in 0..64 {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                bytes.push((state >> 56) as u8);
            }
            // Mostly small variant indexes, so the fields behind them get exercised too.
            bytes[1] %= 40;
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut bytes = encode(&put_object());
        for version in [0, 2, 255] {
            bytes[0] = version;
            let error = decode(&bytes).unwrap_err();
            assert!(matches!(error, MetadataError::Corrupt { .. }), "{error:?}");
            assert!(error.to_string().contains(&format!("unknown format version {version}")), "{error}");
        }
        assert!(matches!(decode(&[]), Err(MetadataError::Corrupt { .. })));
    }

    #[test]
    fn batches_keep_their_commands_ids_and_order() {
        let commands: Vec<(u64, Vec<u8>)> =
            samples().iter().enumerate().map(|(i, c)| (i as u64 * 7, encode(c))).collect();
        let bytes = encode_batch(commands.iter().map(|(id, c)| (*id, c.as_slice())));
        assert_eq!(bytes[0], BATCH_FORMAT_VERSION);
        let decoded = decode_proposal(99, &bytes).unwrap();
        assert_eq!(decoded, commands, "the lone id is ignored for a batch");
        let back: Vec<Command> = decoded.iter().map(|(_, c)| decode(c).unwrap()).collect();
        assert_eq!(back, samples());
        assert!(decode_proposal(5, &encode_batch(std::iter::empty())).unwrap().is_empty());
    }

    #[test]
    fn pins_the_batch_format() {
        let stamp = Stamp { now_unix_ms: 1, replaced_gc_unix_ms: -1, intent_deadline_unix_ms: 2, version_order: 300 };
        let delete = encode(&Command::DeleteBucket { name: "b".into(), stamp });
        let versioning = encode(&Command::SetBucketVersioning { name: "b".into(), versioning: Versioning::Suspended });
        let bytes = encode_batch([(300, delete.as_slice()), (1, versioning.as_slice())]);
        // Version 2, two commands: id 300 (varint), 9 bytes of DeleteBucket; id 1, 5 bytes of SetBucketVersioning.
        assert_eq!(bytes, [2, 2, 0xac, 0x02, 9, 1, 1, 1, b'b', 2, 1, 4, 0xac, 0x02, 1, 5, 1, 8, 1, b'b', 4]);
    }

    #[test]
    fn an_entry_from_before_batching_is_one_command() {
        // What a log entry's command bytes were before batching: the command alone, id beside it.
        let lone = encode(&put_object());
        assert_eq!(lone[0], LONE_COMMAND);
        assert_eq!(decode_proposal(42, &lone).unwrap(), vec![(42, lone.clone())]);
    }

    #[test]
    fn broken_batches_are_errors() {
        let command = encode(&put_object());
        let bytes = encode_batch([(1, command.as_slice()), (2, command.as_slice())]);
        for end in 0..bytes.len() {
            assert!(decode_proposal(0, &bytes[..end]).is_err(), "cut at {end}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_proposal(0, &longer).is_err());
        for version in [0, 3, 255] {
            let mut other = bytes.clone();
            other[0] = version;
            let error = decode_proposal(0, &other).unwrap_err();
            assert!(error.to_string().contains(&format!("unknown format version {version}")), "{error}");
        }
        // A command of a format this build does not know, inside a well-formed batch.
        let mut newer = command.clone();
        newer[0] = FORMAT_VERSION + 1;
        let error = decode_proposal(0, &encode_batch([(1, newer.as_slice())])).unwrap_err();
        assert!(error.to_string().contains("command 1 is in format version 2"), "{error}");
        // A count far beyond the bytes: an error, without reserving memory for it.
        assert!(decode_proposal(0, &[BATCH_FORMAT_VERSION, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    #[test]
    fn an_unknown_enum_number_is_refused() {
        let mut bytes = encode(&Command::SetBucketVersioning { name: "b".into(), versioning: Versioning::Enabled });
        assert_eq!(bytes.pop(), Some(2), "zigzag of Enabled (1)");
        bytes.extend([0xc6, 0x01]); // zigzag of 99
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        let created_by = encode(&Command::CreatedBy { how: Created::Post, command: Box::new(put_object()) })[1];
        let mut bytes = vec![FORMAT_VERSION];
        for _ in 0..100_000 {
            bytes.extend([created_by, 0]);
        }
        bytes.extend(&encode(&put_object())[1..]);
        assert!(decode(&bytes).is_err());

        // Nesting within the limit still decodes.
        let mut command = put_object();
        for _ in 0..MAX_NESTED_COMMANDS {
            command = Command::CreatedBy { how: Created::Copy, command: Box::new(command) };
        }
        assert_eq!(decode(&encode(&command)).unwrap(), command);
        let deeper = Command::CreatedBy { how: Created::Copy, command: Box::new(command) };
        assert!(decode(&encode(&deeper)).is_err());
    }
}
