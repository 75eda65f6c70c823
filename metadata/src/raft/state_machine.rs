//! The Raft state machine: the metadata database itself. Each entry is applied with
//! [`crate::command::apply_into`] and its log id is written in the same RocksDB batch, so after a
//! crash the database and its applied id agree and an entry is never applied twice. The writes
//! are not synced: the log (synced) replays whatever the crash lost.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftLogId, RaftSnapshotBuilder};
use rocksdb::WriteBatch;

use super::log_store::{decode, encode};
use super::proposals::Proposals;
use super::snapshot_file;
use super::types::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig, io_error};
use crate::command;
use crate::error::MetadataError;
use crate::store::{Cf, Store};

/// Keys of the state machine's own bookkeeping in the `meta` column family (replicated with it).
const APPLIED_KEY: &[u8] = b"raft.applied";
const MEMBERSHIP_KEY: &[u8] = b"raft.membership";
/// In `raft_state`: a snapshot install began and has not finished (redone at start).
const INSTALLING_KEY: &[u8] = b"installing";

const CURRENT_SNAPSHOT: &str = "current.snap";
const INCOMING_SNAPSHOT: &str = "incoming.snap";
const CHECKPOINT_DIR: &str = "checkpoint";
/// Bytes of records written per batch while installing a snapshot.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

pub struct StateMachine {
    store: Arc<Store>,
    proposals: Arc<Proposals>,
    /// Where snapshot files and the checkpoint they are made from live.
    dir: PathBuf,
}

fn sm_error(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    io_error(ErrorSubject::StateMachine, verb, e)
}

fn snapshot_error(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    io_error(ErrorSubject::Snapshot(None), verb, e)
}

impl StateMachine {
    /// Opens the state machine over `store`, finishing a snapshot install a crash interrupted.
    /// In-memory views of the state (the node table) are rebuilt when a replica becomes leader
    /// (`leader_tasks`), so nothing else needs to know that a snapshot replaced the state.
    pub fn open(store: Arc<Store>, proposals: Arc<Proposals>, dir: PathBuf) -> Result<StateMachine, MetadataError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| MetadataError::Internal(format!("creating {}: {e}", dir.display())))?;
        let installing =
            store.db().get_cf(store.cf(Cf::RaftState)?, INSTALLING_KEY).map_err(MetadataError::db("reading"))?;
        if installing.is_some() {
            tracing::warn!("finishing a snapshot install that a crash interrupted");
            install_file(&store, &dir.join(CURRENT_SNAPSHOT))?;
        }
        Ok(StateMachine { store, proposals, dir })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        super::types::blocking(&self.store, ErrorSubject::StateMachine, work).await
    }
}

fn meta_value<T: serde::de::DeserializeOwned>(store: &Store, key: &[u8]) -> Result<Option<T>, MetadataError> {
    match store.db().get_pinned_cf(store.cf(Cf::Meta)?, key).map_err(MetadataError::db("reading"))? {
        Some(bytes) => decode(&bytes).map(Some).map_err(|e| MetadataError::Internal(format!("raft state: {e}"))),
        None => Ok(None),
    }
}

fn put_meta<T: serde::Serialize>(
    store: &Store,
    batch: &mut WriteBatch,
    key: &[u8],
    value: &T,
) -> Result<(), MetadataError> {
    let bytes = encode(value).map_err(|e| MetadataError::Internal(format!("raft state: {e}")))?;
    batch.put_cf(store.cf(Cf::Meta)?, key, bytes);
    Ok(())
}

/// Applies one entry, its log id in the same batch. Returns the outcome of a command entry.
fn apply_entry(store: &Store, entry: Entry) -> Result<Option<(u64, super::proposals::Outcome)>, MetadataError> {
    let log_id = *entry.get_log_id();
    let mut batch = WriteBatch::default();
    let mut outcome = None;
    match entry.payload {
        EntryPayload::Blank => {}
        EntryPayload::Normal(proposal) => {
            let result = command::apply_into(store, &mut batch, proposal.command);
            if result.is_err() {
                // A refused command changes nothing; only its log id is recorded.
                batch.clear();
            }
            outcome = Some((proposal.id, result));
        }
        EntryPayload::Membership(membership) => {
            put_meta(store, &mut batch, MEMBERSHIP_KEY, &StoredMembership::new(Some(log_id), membership))?;
        }
    }
    put_meta(store, &mut batch, APPLIED_KEY, &log_id)?;
    store.write(batch)?;
    Ok(outcome)
}

/// Removes every key of the state machine's column families.
fn clear_state(store: &Store) -> Result<(), MetadataError> {
    let mut batch = WriteBatch::default();
    for cf in Cf::STATE_MACHINE {
        let handle = store.cf(cf)?;
        let mut iter = store.db().raw_iterator_cf(handle);
        iter.seek_to_first();
        let Some(first) = iter.key().map(<[u8]>::to_vec) else { continue };
        iter.seek_to_last();
        if let Some(last) = iter.key() {
            batch.delete_range_cf(handle, first.as_slice(), last);
            batch.delete_cf(handle, last);
        }
        iter.status().map_err(MetadataError::db("scanning"))?;
    }
    store.write(batch)
}

/// Replaces the state machine with the snapshot at `path`, marked as in progress until done.
fn install_file(store: &Store, path: &Path) -> Result<SnapshotMeta, MetadataError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| MetadataError::Internal(format!("opening snapshot {}: {e}", path.display())))?;
    let meta = snapshot_file::verify(&mut file)?;
    let state = store.cf(Cf::RaftState)?;
    let mut options = rocksdb::WriteOptions::default();
    options.set_sync(true);
    store.db().put_cf_opt(state, INSTALLING_KEY, b"1", &options).map_err(MetadataError::db("marking an install"))?;
    clear_state(store)?;
    let mut batch = WriteBatch::default();
    snapshot_file::for_each_record(&mut file, |cf, key, value| {
        batch.put_cf(store.cf(cf)?, key, value);
        if batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
            store.write(std::mem::take(&mut batch))?;
        }
        Ok(())
    })?;
    store.write(batch)?;
    store.sync_wal()?;
    store.db().delete_cf_opt(state, INSTALLING_KEY, &options).map_err(MetadataError::db("ending an install"))?;
    Ok(meta)
}

fn snapshot_id(log_id: Option<LogId>) -> String {
    let (term, index) = log_id.map_or((0, 0), |l| (l.leader_id.term, l.index));
    format!("{term}-{index}-{:016x}", rand::random::<u64>())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.blocking(|store| {
            let applied = meta_value(store, APPLIED_KEY).map_err(|e| sm_error(ErrorVerb::Read, e))?;
            let membership = meta_value(store, MEMBERSHIP_KEY).map_err(|e| sm_error(ErrorVerb::Read, e))?;
            Ok((applied, membership.unwrap_or_default()))
        })
        .await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let proposals = self.proposals.clone();
        self.blocking(move |store| {
            let count = entries.len();
            for entry in entries {
                let log_id = *entry.get_log_id();
                let outcome = apply_entry(store, entry)
                    .map_err(|e| io_error(ErrorSubject::Apply(log_id), ErrorVerb::Write, e))?;
                if let Some((id, outcome)) = outcome {
                    proposals.deliver(id, outcome);
                }
            }
            Ok(vec![(); count])
        })
        .await
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // The checkpoint is taken here, between two applies, so it holds exactly the applied state;
        // the file is written from it in the background while applying goes on.
        let checkpoint = self.dir.join(CHECKPOINT_DIR);
        let taken = (|| {
            if checkpoint.exists() {
                std::fs::remove_dir_all(&checkpoint)
                    .map_err(|e| MetadataError::Internal(format!("removing an old checkpoint: {e}")))?;
            }
            rocksdb::checkpoint::Checkpoint::new(self.store.db())
                .and_then(|c| c.create_checkpoint(&checkpoint))
                .map_err(MetadataError::db("creating a checkpoint"))
        })();
        SnapshotBuilder { dir: self.dir.clone(), checkpoint: taken.map(|()| checkpoint).map_err(|e| e.to_string()) }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self.dir.join(INCOMING_SNAPSHOT);
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        let expected = meta.last_log_id;
        let file = snapshot.into_std().await;
        let installed = self
            .blocking(move |store| {
                let error = |e: &dyn std::fmt::Display| snapshot_error(ErrorVerb::Write, e);
                file.sync_all().map_err(|e| error(&e))?;
                drop(file);
                let current = dir.join(CURRENT_SNAPSHOT);
                std::fs::rename(dir.join(INCOMING_SNAPSHOT), &current).map_err(|e| error(&e))?;
                let installed = install_file(store, &current).map_err(|e| error(&e))?;
                if installed.last_log_id != expected {
                    return Err(error(&"the received snapshot is not the one announced"));
                }
                Ok(installed)
            })
            .await?;
        tracing::info!(last_log_id = ?installed.last_log_id, "installed a snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let path = self.dir.join(CURRENT_SNAPSHOT);
        if !path.exists() {
            return Ok(None);
        }
        let (meta, file) = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&path).map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
            let meta = snapshot_file::verify(&mut file).map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
            Ok::<_, StorageError>((meta, file))
        })
        .await
        .map_err(|e| snapshot_error(ErrorVerb::Read, e))??;
        let mut file = tokio::fs::File::from_std(file);
        tokio::io::AsyncSeekExt::rewind(&mut file).await.map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
    }
}

pub struct SnapshotBuilder {
    dir: PathBuf,
    /// The checkpoint to write the snapshot from, or why it could not be taken.
    checkpoint: Result<PathBuf, String>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let checkpoint = self.checkpoint.clone().map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        let dir = self.dir.clone();
        let (meta, file) = tokio::task::spawn_blocking(move || {
            let error = |e: &dyn std::fmt::Display| snapshot_error(ErrorVerb::Write, e);
            let (applied, membership) = {
                let names: Vec<&str> = Cf::STATE_MACHINE.iter().map(|cf| cf.name()).collect();
                let db = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), &checkpoint, &names, false)
                    .map_err(|e| error(&e))?;
                let meta_cf = db.cf_handle(Cf::Meta.name()).ok_or_else(|| error(&"no meta column family"))?;
                let read = |key: &[u8]| db.get_cf(meta_cf, key).map_err(|e| error(&e));
                let applied: Option<LogId> =
                    read(APPLIED_KEY)?.map(|b| decode(&b)).transpose().map_err(|e| error(&e))?;
                let membership: Option<StoredMembership> =
                    read(MEMBERSHIP_KEY)?.map(|b| decode(&b)).transpose().map_err(|e| error(&e))?;
                (applied, membership.unwrap_or_default())
            };
            let meta =
                SnapshotMeta { last_log_id: applied, last_membership: membership, snapshot_id: snapshot_id(applied) };
            let building = dir.join(format!("{}.building", meta.snapshot_id));
            snapshot_file::write(&checkpoint, &meta, &building).map_err(|e| error(&e))?;
            let current = dir.join(CURRENT_SNAPSHOT);
            std::fs::rename(&building, &current).map_err(|e| error(&e))?;
            std::fs::remove_dir_all(&checkpoint).map_err(|e| error(&e))?;
            let file = std::fs::File::open(&current).map_err(|e| error(&e))?;
            Ok::<_, StorageError>((meta, file))
        })
        .await
        .map_err(|e| snapshot_error(ErrorVerb::Write, e))??;
        let file = tokio::fs::File::from_std(file);
        let size = file.metadata().await.map_or(0, |m| m.len());
        metrics::gauge!("coffer_metadata_raft_snapshot_bytes").set(size as f64);
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = size, "built a snapshot");
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}
