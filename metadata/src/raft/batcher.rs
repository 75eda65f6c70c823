//! Groups the commands submitted to the leader into Raft entries. Openraft takes one client write
//! per entry, and every entry costs the leader and each follower a log append, a place in a
//! replication message and an apply, so commands that arrive together share one entry.
//!
//! No command waits for company: the batcher proposes whatever is queued as soon as fewer than
//! [`MAX_IN_FLIGHT`] entries are on their way; while they are, new commands gather in the queue
//! and go together in the next entry. A lone command goes at once; a crowd goes in few entries.
//! Entries are handed to openraft in queue order.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::ClientWriteError;
use tokio::sync::{Semaphore, mpsc};

use super::proposals::Proposals;
use super::types::{Proposal, ProposedCommand, Raft};
use crate::error::MetadataError;

/// Commands in one entry at most.
pub const MAX_COMMANDS: usize = 256;
/// Bytes of encoded commands in one entry at most; a larger command goes alone. With the log's
/// 8 MiB bound on one read of entries, an AppendEntries message stays within gRPC's 16 MiB.
pub const MAX_BYTES: usize = 1 << 20;
/// Commands waiting for a place in an entry; beyond it, submitters wait (back-pressure).
pub const QUEUE_DEPTH: usize = 1024;
/// Entries proposed and not yet answered at once.
pub const MAX_IN_FLIGHT: usize = 4;

/// A submitted command: its waiter's id and its versioned bytes (`command_codec::encode`).
#[derive(Debug)]
pub struct Queued {
    pub id: u64,
    pub bytes: Vec<u8>,
}

/// The queue into the batcher task. Cheap to clone; the task ends when every clone is gone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Queued>,
}

fn stopped() -> MetadataError {
    MetadataError::Unavailable("the metadata write path is stopped".into())
}

impl Batcher {
    /// Starts the batcher task; an entry gets `write_timeout` to be committed and applied.
    pub fn start(raft: Raft, proposals: Arc<Proposals>, write_timeout: Duration) -> Batcher {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(raft, proposals, rx, write_timeout));
        Batcher { tx }
    }

    /// A place in the queue. Taken before the caller registers its waiter, so the waiters are
    /// bounded by the queue and the entries in flight.
    pub async fn reserve(&self) -> Result<mpsc::Permit<'_, Queued>, MetadataError> {
        self.tx.reserve().await.map_err(|_| stopped())
    }
}

async fn run(raft: Raft, proposals: Arc<Proposals>, mut rx: mpsc::Receiver<Queued>, write_timeout: Duration) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // A command that did not fit in the last entry: the first of the next.
    let mut held_over: Option<Queued> = None;
    loop {
        let Ok(slot) = in_flight.clone().acquire_owned().await else { return };
        let first = match held_over.take() {
            Some(first) => first,
            None => match rx.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let commands = gather(first, &mut rx, &mut held_over);
        metrics::histogram!("coffer_metadata_raft_batch_commands").record(commands.len() as f64);
        let ids: Vec<u64> = commands.iter().map(|c| c.id).collect();
        let proposal = Proposal {
            commands: commands.into_iter().map(|Queued { id, bytes }| ProposedCommand { id, bytes }).collect(),
        };
        // Awaited here, so entries reach openraft in queue order; only the answer is awaited apart.
        let answer = match raft.client_write_ff(proposal).await {
            Ok(answer) => answer,
            Err(fatal) => {
                let error = MetadataError::Unavailable(format!("raft: {fatal}"));
                fail_all(&proposals, &ids, || clone_error(&error));
                continue;
            }
        };
        let proposals = proposals.clone();
        tokio::spawn(async move {
            let error = match tokio::time::timeout(write_timeout, answer).await {
                // Applied: the state machine handed every command's outcome to its waiter. A
                // waiter still here would wait in vain; none should be.
                Ok(Ok(Ok(_))) => MetadataError::Internal("a committed command had no outcome".into()),
                Ok(Ok(Err(ClientWriteError::ForwardToLeader(forward)))) => {
                    MetadataError::NotLeader { leader: forward.leader_node.map(|n| n.addr) }
                }
                Ok(Ok(Err(e))) => MetadataError::Unavailable(format!("raft: {e}")),
                Ok(Err(_)) => stopped(),
                // The entry may still commit later; its outcomes then go nowhere.
                Err(_) => MetadataError::Unavailable(format!("no metadata quorum within {write_timeout:?}")),
            };
            fail_all(&proposals, &ids, || clone_error(&error));
            drop(slot);
        });
    }
}

/// `first` and whatever else is queued, up to [`MAX_COMMANDS`] and [`MAX_BYTES`].
fn gather(first: Queued, rx: &mut mpsc::Receiver<Queued>, held_over: &mut Option<Queued>) -> Vec<Queued> {
    let mut bytes = first.bytes.len();
    let mut commands = vec![first];
    while commands.len() < MAX_COMMANDS {
        let Ok(next) = rx.try_recv() else { break };
        if bytes + next.bytes.len() > MAX_BYTES {
            *held_over = Some(next);
            break;
        }
        bytes += next.bytes.len();
        commands.push(next);
    }
    commands
}

/// Hands `error` to every waiter of `ids` still waiting (those already answered are gone).
fn fail_all(proposals: &Proposals, ids: &[u64], error: impl Fn() -> MetadataError) {
    for &id in ids {
        proposals.fail(id, &error);
    }
}

/// The errors a batch can end with, once per waiter (`MetadataError` is not `Clone`).
fn clone_error(error: &MetadataError) -> MetadataError {
    match error {
        MetadataError::NotLeader { leader } => MetadataError::NotLeader { leader: leader.clone() },
        MetadataError::Unavailable(message) => MetadataError::Unavailable(message.clone()),
        other => MetadataError::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::BucketRecord;

    use super::*;
    use crate::command::{Applied, Command};
    use crate::raft::{Membership, RaftOptions, Replication};
    use crate::store::Store;

    fn queued(id: u64, len: usize) -> Queued {
        Queued { id, bytes: vec![1; len] }
    }

    #[tokio::test]
    async fn entries_take_what_is_queued_within_their_bounds() {
        let (tx, mut rx) = mpsc::channel(QUEUE_DEPTH);
        for id in 0..600 {
            tx.send(queued(id, 10)).await.unwrap();
        }
        let mut held_over = None;
        let first = rx.recv().await.unwrap();
        let entry = gather(first, &mut rx, &mut held_over);
        assert_eq!(entry.iter().map(|c| c.id).collect::<Vec<_>>(), (0..256).collect::<Vec<_>>());
        assert!(held_over.is_none());

        // A command that would pass the byte bound starts the next entry.
        let (tx, mut rx) = mpsc::channel(QUEUE_DEPTH);
        for (id, len) in [(1, MAX_BYTES / 2), (2, MAX_BYTES / 2), (3, 1), (4, 1)] {
            tx.send(queued(id, len)).await.unwrap();
        }
        let first = rx.recv().await.unwrap();
        let entry = gather(first, &mut rx, &mut held_over);
        assert_eq!(entry.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2]);
        let next = gather(held_over.take().unwrap(), &mut rx, &mut held_over);
        assert_eq!(next.iter().map(|c| c.id).collect::<Vec<_>>(), [3, 4]);

        // A command above the bound goes alone.
        let (tx, mut rx) = mpsc::channel(QUEUE_DEPTH);
        tx.send(queued(5, 1)).await.unwrap();
        let entry = gather(queued(6, MAX_BYTES + 1), &mut rx, &mut held_over);
        assert_eq!(entry.iter().map(|c| c.id).collect::<Vec<_>>(), [6]);
        assert_eq!(held_over.take().map(|c| c.id), Some(5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commands_share_entries_and_each_gets_its_own_outcome() {
        let (db, snapshots) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = Arc::new(Store::open(db.path()).unwrap());
        let url = "http://127.0.0.1:1".to_string();
        let options = RaftOptions {
            membership: Membership::Peers(vec![url.clone()]),
            advertise: url,
            snapshot_dir: snapshots.path().to_path_buf(),
            snapshot_entries: 100_000,
            client: Default::default(),
            group: 0,
            node_id: None,
        };
        let replication = Replication::start(store.clone(), options).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !replication.is_leader() {
            assert!(tokio::time::Instant::now() < deadline, "a group of one elects itself");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let last_index = || replication.raft().metrics().borrow().last_log_index.unwrap_or(0);
        let before = last_index();

        // 400 creates of 300 names, all at once: each name is created once, and every other create
        // of it fails alone, whichever entries they share.
        let submitted: Vec<_> = (0..400)
            .map(|i| {
                let replication = replication.clone();
                let bucket = BucketRecord { name: format!("b{:03}", i % 300), ..Default::default() };
                tokio::spawn(async move { replication.submit(Command::CreateBucket { bucket }).await })
            })
            .collect();
        let (mut created, mut refused) = (0, 0);
        for task in submitted {
            match task.await.unwrap() {
                Ok(Applied::Bucket(_)) => created += 1,
                Err(MetadataError::BucketAlreadyOwnedByYou(_)) => refused += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((created, refused), (300, 100));
        assert_eq!(store.list_buckets().unwrap().len(), 300);
        let entries = last_index() - before;
        eprintln!("400 concurrent commands took {entries} log entries");
        assert!(entries < 400, "commands submitted together share entries ({entries} entries)");

        // A lone command still goes at once, and read-your-writes holds across entries.
        let again = replication
            .submit(Command::CreateBucket { bucket: BucketRecord { name: "b000".into(), ..Default::default() } })
            .await;
        assert!(matches!(again, Err(MetadataError::BucketAlreadyOwnedByYou(_))), "{again:?}");
        replication.shutdown().await;
    }
}
