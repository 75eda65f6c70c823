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

use super::types::{Entry, LogId, StorageError, TypeConfig, Vote, io_error};
use crate::store::{Cf, Store};

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const PURGED_KEY: &[u8] = b"purged";

/// Entries one read returns at most (by encoded size, at least one entry): bounds the memory a
/// lagging follower's replication stream takes on the leader.
const MAX_READ_BYTES: usize = 8 << 20;

#[derive(Clone)]
pub struct LogStore {
    store: Arc<Store>,
    syncer: tokio::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
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

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(value)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl LogStore {
    pub fn new(store: Arc<Store>) -> Result<LogStore, crate::error::MetadataError> {
        let (syncer, rx) = tokio::sync::mpsc::channel(SYNC_QUEUE_DEPTH);
        let synced = store.clone();
        std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || run_syncer(synced, rx))
            .map_err(|e| crate::error::MetadataError::Internal(format!("cannot start the log sync thread: {e}")))?;
        Ok(LogStore { store, syncer })
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
        self.blocking(|store| LogStore::read_state(store, VOTE_KEY)).await
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
