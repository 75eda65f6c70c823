//! The Raft log in the metadata database's own column families: `raft_log` (big-endian index →
//! entry) and `raft_state` (vote, committed id, last purged id). Every change is a synced write, so
//! a replica never forgets an entry or a vote it has acknowledged. The log lives beside the state
//! machine rather than in a second database so one WAL (one fsync) serves both.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogId, RaftLogReader};
use rocksdb::{WriteBatch, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote, io_error};
use crate::store::{Cf, Store};

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const PURGED_KEY: &[u8] = b"purged";

/// Entries one read returns at most (by encoded size, at least one entry). One read is one
/// AppendEntries to a lagging follower, and openraft 0.9 gives each AppendEntries only the
/// heartbeat interval (250 ms) to be encoded, sent, appended and fsync'd: with entries of up to
/// 256 commands (`batcher`), megabytes per message made catch-up time out again and again, and
/// the follower never caught up.
const MAX_READ_BYTES: usize = 512 << 10;

#[derive(Clone)]
pub struct LogStore {
    store: Arc<Store>,
    syncer: tokio::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
    /// This replica's node id (see [`not_leading_after_restart`]).
    id: NodeId,
}

/// Appends waiting for their fsync; beyond this, openraft's appends wait (back-pressure).
const SYNC_QUEUE_DEPTH: usize = 4096;

/// Group commit of the log: appends are written (unsynced, so readers see them at once) in the
/// order openraft makes them, and this thread makes all that are waiting durable with one WAL
/// fsync before it reports them flushed. Openraft counts an entry toward the commit quorum only
/// once it is reported flushed, so no write is acknowledged before its fsync.
fn run_syncer(store: Arc<Store>, mut rx: tokio::sync::mpsc::Receiver<LogFlushed<TypeConfig>>) {
    let mut waiting = Vec::with_capacity(SYNC_QUEUE_DEPTH);
    while let Some(first) = rx.blocking_recv() {
        waiting.push(first);
        while let Ok(next) = rx.try_recv() {
            waiting.push(next);
        }
        match store.sync_wal() {
            Ok(()) => waiting.drain(..).for_each(|done| done.log_io_completed(Ok(()))),
            Err(e) => {
                // The WAL's state on disk is unknown after a failed fsync: report every append as
                // failed, which stops this replica (openraft treats log IO errors as fatal).
                tracing::error!(error = %e, "raft log sync failed");
                waiting.drain(..).for_each(|done| done.log_io_completed(Err(std::io::Error::other(e.to_string()))));
            }
        }
    }
}

/// The vote a replica starts with: a replica that led when it stopped comes back as a follower.
///
/// Openraft 0.9 restores such a replica as leader of its old term at once (it reads its vote back
/// only at start-up). But a leader sends entries to followers before its own append is synced, so
/// a crash can cost it entries the followers keep — even committed ones. Leading the same term
/// again, it would write new entries under those entries' log ids (same term, same index, other
/// content), which followers take for the entries they have: the logs diverge. Uncommitted, the
/// vote makes it a follower, and a leader needs a new election in a higher term, which only a
/// replica holding every committed entry can win.
fn not_leading_after_restart(vote: Vote, id: NodeId) -> Vote {
    if vote.is_committed() && vote.leader_id().voted_for() == Some(id) {
        Vote::new(vote.leader_id().term, id)
    } else {
        vote
    }
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(value)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// The log part of `state_machine::seed_split_child`: no entry, no vote, and `origin` both
/// committed and purged.
pub(crate) fn seed(store: &Store, batch: &mut WriteBatch, origin: LogId) -> Result<(), crate::error::MetadataError> {
    let log = store.cf(Cf::RaftLog)?;
    // Every 8-byte index key sorts below 9 bytes of 0xFF.
    batch.delete_range_cf(log, &index_key(0)[..], &[0xFF; 9][..]);
    let state = store.cf(Cf::RaftState)?;
    batch.delete_cf(state, VOTE_KEY);
    let committed =
        encode(&Some(origin)).map_err(|e| crate::error::MetadataError::Internal(format!("raft state: {e}")))?;
    let purged = encode(&origin).map_err(|e| crate::error::MetadataError::Internal(format!("raft state: {e}")))?;
    batch.put_cf(state, COMMITTED_KEY, committed);
    batch.put_cf(state, PURGED_KEY, purged);
    Ok(())
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl LogStore {
    pub fn new(store: Arc<Store>, id: NodeId) -> Result<LogStore, crate::error::MetadataError> {
        let (syncer, rx) = tokio::sync::mpsc::channel(SYNC_QUEUE_DEPTH);
        let synced = store.clone();
        std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || run_syncer(synced, rx))
            .map_err(|e| crate::error::MetadataError::Internal(format!("cannot start the log sync thread: {e}")))?;
        Ok(LogStore { store, syncer, id })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        super::types::blocking(&self.store, ErrorSubject::Logs, work).await
    }

    fn read_state<T: DeserializeOwned>(store: &Store, key: &[u8]) -> Result<Option<T>, StorageError> {
        let read_error = |e: &dyn std::fmt::Display| io_error(ErrorSubject::Store, ErrorVerb::Read, e);
        let cf = store.cf(Cf::RaftState).map_err(|e| read_error(&e))?;
        match store.db().get_pinned_cf(cf, key).map_err(|e| read_error(&e))? {
            Some(bytes) => decode(&bytes).map(Some).map_err(|e| read_error(&e)),
            None => Ok(None),
        }
    }

    fn write_synced(store: &Store, batch: WriteBatch, subject: ErrorSubject<u64>) -> Result<(), StorageError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        store.db().write_opt(batch, &options).map_err(|e| io_error(subject, ErrorVerb::Write, e))
    }

    fn put_state<T: Serialize>(
        store: &Store,
        batch: &mut WriteBatch,
        key: &[u8],
        value: &T,
    ) -> Result<(), StorageError> {
        let cf = store.cf(Cf::RaftState).map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let bytes = encode(value).map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        batch.put_cf(cf, key, bytes);
        Ok(())
    }

    /// Entries in `[start, end)`, stopping early past [`MAX_READ_BYTES`].
    fn read_entries(store: &Store, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        let read_error = |e: &dyn std::fmt::Display| io_error(ErrorSubject::Logs, ErrorVerb::Read, e);
        let cf = store.cf(Cf::RaftLog).map_err(|e| read_error(&e))?;
        let mut iter = store.db().raw_iterator_cf(cf);
        iter.seek(index_key(start));
        let (mut entries, mut bytes) = (Vec::new(), 0usize);
        while let Some((key, value)) = iter.item() {
            let index = key.try_into().map(u64::from_be_bytes).map_err(|_| read_error(&"a malformed log key"))?;
            if index >= end || (bytes >= MAX_READ_BYTES && !entries.is_empty()) {
                break;
            }
            let entry: Entry = decode(value).map_err(|e| read_error(&e))?;
            if entry.get_log_id().index != index {
                return Err(read_error(&format!("log entry at {index} says it is {}", entry.get_log_id().index)));
            }
            bytes += value.len();
            entries.push(entry);
            iter.next();
        }
        iter.status().map_err(|e| read_error(&e))?;
        Ok(entries)
    }

    fn last_entry_id(store: &Store) -> Result<Option<LogId>, StorageError> {
        let read_error = |e: &dyn std::fmt::Display| io_error(ErrorSubject::Logs, ErrorVerb::Read, e);
        let cf = store.cf(Cf::RaftLog).map_err(|e| read_error(&e))?;
        let mut iter = store.db().raw_iterator_cf(cf);
        iter.seek_to_last();
        match iter.value() {
            Some(value) => decode::<Entry>(value).map(|e| Some(*e.get_log_id())).map_err(|e| read_error(&e)),
            None => iter.status().map(|()| None).map_err(|e| read_error(&e)),
        }
    }

    /// Removes the entries with index in `[from, to)`.
    fn delete_range(store: &Store, batch: &mut WriteBatch, from: u64, to: u64) -> Result<(), StorageError> {
        let cf = store.cf(Cf::RaftLog).map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        batch.delete_range_cf(cf, index_key(from), index_key(to));
        Ok(())
    }
}

fn range_to_indexes(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = range_to_indexes(&range);
        // Callers of this method expect the whole range: read it in bounded pieces.
        let mut all = Vec::new();
        let mut next = start;
        while next < end {
            let piece = self.blocking(move |store| LogStore::read_entries(store, next, end)).await?;
            let Some(last) = piece.last() else { break };
            next = last.get_log_id().index + 1;
            all.extend(piece);
        }
        Ok(all)
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        self.blocking(move |store| LogStore::read_entries(store, start, end)).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.blocking(|store| {
            let last_purged_log_id: Option<LogId> = LogStore::read_state(store, PURGED_KEY)?;
            let last_log_id = LogStore::last_entry_id(store)?.or(last_purged_log_id);
            Ok(LogState { last_purged_log_id, last_log_id })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(move |store| {
            let mut batch = WriteBatch::default();
            LogStore::put_state(store, &mut batch, VOTE_KEY, &vote)?;
            LogStore::write_synced(store, batch, ErrorSubject::Vote)
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let id = self.id;
        let vote: Option<Vote> = self.blocking(|store| LogStore::read_state(store, VOTE_KEY)).await?;
        Ok(vote.map(|vote| not_leading_after_restart(vote, id)))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.blocking(move |store| {
            let mut batch = WriteBatch::default();
            LogStore::put_state(store, &mut batch, COMMITTED_KEY, &committed)?;
            // Not synced: a lost committed id is only re-learned from the leader (openraft allows it).
            store.db().write(batch).map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Write, e))
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.blocking(|store| Ok(LogStore::read_state::<Option<LogId>>(store, COMMITTED_KEY)?.flatten())).await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.blocking(move |store| {
            let write_error = |e: &dyn std::fmt::Display| io_error(ErrorSubject::Logs, ErrorVerb::Write, e);
            let cf = store.cf(Cf::RaftLog).map_err(|e| write_error(&e))?;
            let mut batch = WriteBatch::default();
            for entry in &entries {
                let bytes = encode(entry).map_err(|e| write_error(&e))?;
                batch.put_cf(cf, index_key(entry.get_log_id().index), bytes);
            }
            store.write(batch).map_err(|e| write_error(&e))
        })
        .await?;
        self.syncer
            .send(callback)
            .await
            .map_err(|_| io_error(ErrorSubject::Logs, ErrorVerb::Write, "the log sync thread is gone"))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |store| {
            let mut batch = WriteBatch::default();
            LogStore::delete_range(store, &mut batch, log_id.index, u64::MAX)?;
            LogStore::write_synced(store, batch, ErrorSubject::Logs)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |store| {
            let mut batch = WriteBatch::default();
            // The purged id first in the same batch: the log state stays consistent whatever happens.
            LogStore::put_state(store, &mut batch, PURGED_KEY, &log_id)?;
            LogStore::delete_range(store, &mut batch, 0, log_id.index + 1)?;
            LogStore::write_synced(store, batch, ErrorSubject::Logs)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_that_led_restarts_as_a_follower_of_nobody_yet() {
        let led = Vote::new_committed(7, 3);
        let restored = not_leading_after_restart(led, 3);
        assert!(!restored.is_committed(), "it must win a new election before it leads");
        assert_eq!(restored.leader_id().term, 7, "the term is kept: it only ever grows");
        // Someone else's leadership, and a vote not yet committed, stay as they were.
        assert_eq!(not_leading_after_restart(led, 2), led);
        assert_eq!(not_leading_after_restart(Vote::new(7, 3), 3), Vote::new(7, 3));
    }
}
