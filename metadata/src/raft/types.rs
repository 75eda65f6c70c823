//! The Raft type configuration: what a log entry carries and how replicas are named.

use serde::{Deserialize, Serialize};

use crate::command::Command;

/// One write proposed to the group: a command, and an id by which the replica that proposed it
/// finds the caller waiting for its outcome (see `proposals`). Outcomes never cross the network:
/// every replica computes the same one by applying the same command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: u64,
    #[serde(with = "crate::command_codec::versioned")]
    pub command: Command,
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proposal {}", self.id)
    }
}

openraft::declare_raft_types!(
    /// Coffer's metadata group: commands in, nothing out (outcomes go to local waiters), replicas
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
