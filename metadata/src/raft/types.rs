//! The Raft type configuration: what a log entry carries and how replicas are named.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use crate::command_codec;

/// The writes of one log entry: commands this replica's callers submitted together (see
/// `batcher`), in the order they are applied, each with the id by which the proposing replica
/// finds its caller (see `proposals`). Outcomes never cross the network: every replica computes
/// the same ones by applying the same commands. Commands stay in their versioned bytes
/// (`command_codec::encode`) until applied, so the log, the network and the byte bound handle
/// them without encoding them again.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Proposal {
    pub commands: Vec<ProposedCommand>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProposedCommand {
    pub id: u64,
    pub bytes: Vec<u8>,
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proposal of {} commands", self.commands.len())
    }
}

/// On the wire and in the log a proposal keeps the shape entries had before batching — an id, then
/// one byte string — so that entries of either kind decode (`command_codec::decode_proposal`
/// tells them apart by the string's first byte). A batch leaves the id 0: its ids are inside.
impl Serialize for Proposal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = command_codec::encode_batch(self.commands.iter().map(|c| (c.id, c.bytes.as_slice())));
        let mut fields = serializer.serialize_tuple(2)?;
        fields.serialize_element(&0u64)?;
        fields.serialize_element(&AsBytes(&bytes))?;
        fields.end()
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Proposal, D::Error> {
        deserializer.deserialize_tuple(2, ProposalVisitor)
    }
}

struct AsBytes<'a>(&'a [u8]);

impl Serialize for AsBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// A byte string, borrowed from the input where the format allows it.
struct ByteString(Vec<u8>);

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ByteString, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = ByteString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<ByteString, E> {
                Ok(ByteString(bytes.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<ByteString, E> {
                Ok(ByteString(bytes))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

struct ProposalVisitor;

impl<'de> Visitor<'de> for ProposalVisitor {
    type Value = Proposal;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a proposal: an id and the bytes of its commands")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Proposal, A::Error> {
        let lone_id: u64 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let ByteString(bytes) = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let commands = command_codec::decode_proposal(lone_id, &bytes).map_err(de::Error::custom)?;
        Ok(Proposal { commands: commands.into_iter().map(|(id, bytes)| ProposedCommand { id, bytes }).collect() })
    }
}

openraft::declare_raft_types!(
    /// Coffer's metadata group: batches of commands in, nothing out (outcomes go to local waiters), replicas
    /// named by a number and reached at a URL, snapshots as files.
    pub TypeConfig:
        D = Proposal,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Raft = openraft::Raft<TypeConfig>;

/// A storage failure in openraft's terms (it stops the node rather than go on with a damaged store).
pub fn io_error(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    error: impl std::fmt::Display,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::error(error.to_string())).into()
}
pub type Snapshot = openraft::Snapshot<TypeConfig>;

/// Runs a blocking database call on tokio's blocking pool. Openraft calls the log and the state
/// machine one operation at a time, so awaiting each keeps them in order.
pub async fn blocking<T: Send + 'static>(
    store: &std::sync::Arc<crate::store::Store>,
    subject: openraft::ErrorSubject<NodeId>,
    work: impl FnOnce(&crate::store::Store) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || work(&store))
        .await
        .map_err(|e| io_error(subject, openraft::ErrorVerb::Write, format!("storage task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::command_codec::encode;

    fn command(name: &str) -> Vec<u8> {
        encode(&Command::CreateBucket {
            bucket: coffer_proto::pb::metadata::BucketRecord { name: name.into(), ..Default::default() },
        })
    }

    #[test]
    fn a_batch_round_trips_through_the_log_encoding() {
        let proposal = Proposal {
            commands: (0..3).map(|i| ProposedCommand { id: 10 + i, bytes: command(&format!("b{i}")) }).collect(),
        };
        let entry = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(3, 1), 17),
            payload: openraft::EntryPayload::Normal(proposal.clone()),
        };
        let bytes = super::super::log_store::encode(&entry).unwrap();
        let back: Entry = super::super::log_store::decode(&bytes).unwrap();
        match back.payload {
            openraft::EntryPayload::Normal(p) => assert_eq!(p, proposal),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_entry_written_before_batching_is_a_batch_of_one() {
        // The layout entries had before batching: `Proposal { id, command }`, the command as its
        // versioned bytes.
        let lone = command("old");
        let before = postcard::to_stdvec(&(0xdead_beef_u64, AsBytes(&lone))).unwrap();
        let proposal: Proposal = postcard::from_bytes(&before).unwrap();
        assert_eq!(proposal.commands, vec![ProposedCommand { id: 0xdead_beef, bytes: lone }]);
    }
}
