//! The Raft state machine: the metadata database itself. An entry carries a batch of commands
//! (see `batcher`), applied in order, each with [`crate::command::apply_into`] and each with its
//! own outcome: a refused command changes nothing and fails alone.
//!
//! Each command is written as its own RocksDB batch, because `apply_into` reads the database
//! itself (bucket lookups, version chains, usage counters…) and a later command of the entry must
//! see what the earlier ones did. The bookkeeping goes into the same batches: the last command's
//! batch carries the entry's log id (as the one batch of a blank or membership entry does), every
//! earlier one the entry's progress ([`APPLYING_KEY`]). So after a crash the database, its applied
//! id and its progress agree, and a command is never applied twice: an entry cut short is
//! applied again from the first command it had not applied. The writes are not synced: the log
//! (synced) replays whatever the crash lost.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftLogId, RaftSnapshotBuilder};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::log_store::{decode, encode};
use super::proposals::{Outcome, Proposals};
use super::snapshot_file;
use super::types::{
    Entry, LogId, ProposedCommand, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig, io_error,
};
use crate::error::MetadataError;
use crate::store::{Cf, Store};
use crate::{command, command_codec};

/// Keys of the state machine's own bookkeeping in the `meta` column family (replicated with it).
const APPLIED_KEY: &[u8] = b"raft.applied";
const MEMBERSHIP_KEY: &[u8] = b"raft.membership";
/// The entry whose commands are being applied and how many of them are, while it is unfinished
/// ([`Applying`]); absent between entries.
const APPLYING_KEY: &[u8] = b"raft.applying";
/// In `raft_state`: a snapshot install began and has not finished (redone at start).
const INSTALLING_KEY: &[u8] = b"installing";

const CURRENT_SNAPSHOT: &str = "current.snap";
const INCOMING_SNAPSHOT: &str = "incoming.snap";
const CHECKPOINT_DIR: &str = "checkpoint";
/// Bytes of records written per batch while installing a snapshot.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

/// Whether `dir` (a group's snapshot folder) holds a snapshot to send.
pub(crate) fn has_snapshot(dir: &Path) -> bool {
    dir.join(CURRENT_SNAPSHOT).exists()
}

pub struct StateMachine {
    store: Arc<Store>,
    proposals: Arc<Proposals>,
    /// Where snapshot files and the checkpoint they are made from live.
    dir: PathBuf,
    /// The group's id, the label of its metrics.
    group: u64,
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
    pub fn open(
        store: Arc<Store>,
        proposals: Arc<Proposals>,
        dir: PathBuf,
        group: u64,
    ) -> Result<StateMachine, MetadataError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| MetadataError::Internal(format!("creating {}: {e}", dir.display())))?;
        let installing =
            store.db().get_cf(store.cf(Cf::RaftState)?, INSTALLING_KEY).map_err(MetadataError::db("reading"))?;
        if installing.is_some() {
            tracing::warn!("finishing a snapshot install that a crash interrupted");
            install_file(&store, &dir.join(CURRENT_SNAPSHOT))?;
        }
        Ok(StateMachine { store, proposals, dir, group })
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

/// The Raft state of a group born of a split (`split`), written into its seed: everything up to
/// log index 0 is applied (the seed itself) and purged, under the membership `voters`, with no
/// vote and no log. A replica holding the seed starts as an initialized member; one without it
/// (empty) can only be brought up to date by a snapshot, since the log before index 1 is gone.
pub(crate) fn seed_split_child(
    store: &Store,
    batch: &mut WriteBatch,
    voters: &[(u64, String)],
) -> Result<(), MetadataError> {
    let origin = LogId::new(openraft::CommittedLeaderId::new(0, 0), 0);
    let nodes: std::collections::BTreeMap<u64, openraft::BasicNode> =
        voters.iter().map(|(id, url)| (*id, openraft::BasicNode::new(url))).collect();
    let ids = nodes.keys().copied().collect();
    let membership = StoredMembership::new(Some(origin), openraft::Membership::new(vec![ids], nodes));
    put_meta(store, batch, APPLIED_KEY, &origin)?;
    put_meta(store, batch, MEMBERSHIP_KEY, &membership)?;
    batch.delete_cf(store.cf(Cf::Meta)?, APPLYING_KEY);
    super::log_store::seed(store, batch, origin)
}

/// How far the commands of an unfinished entry went (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Applying {
    log_id: LogId,
    /// Commands of the entry applied so far: it goes on with the command at this position.
    applied: u32,
}

/// Applies one entry, handing each command's outcome to `outcome` (id, result) as soon as it is
/// written. Commands already applied before a crash (see [`APPLYING_KEY`]) are skipped, and their
/// outcomes are gone with the callers that waited for them.
fn apply_entry(store: &Store, entry: Entry, mut outcome: impl FnMut(u64, Outcome)) -> Result<(), MetadataError> {
    let log_id = *entry.get_log_id();
    let applying: Option<Applying> = meta_value(store, APPLYING_KEY)?;
    if let Some(unfinished) = applying
        && unfinished.log_id != log_id
    {
        return Err(MetadataError::corrupt(
            "raft state",
            format!("entry {} was left half applied, yet entry {log_id} comes next", unfinished.log_id),
        ));
    }
    let mut batch = WriteBatch::default();
    match entry.payload {
        EntryPayload::Normal(proposal) if !proposal.commands.is_empty() => {
            let count = proposal.commands.len();
            let done = applying.map_or(0, |a| a.applied as usize);
            if done >= count {
                return Err(MetadataError::corrupt(
                    "raft state",
                    format!("entry {log_id} has {count} commands, {done} of them recorded as applied"),
                ));
            }
            for (position, proposed) in proposal.commands.into_iter().enumerate().skip(done) {
                let (id, result) = apply_command(store, log_id, position, count, proposed)?;
                outcome(id, result);
            }
            return Ok(());
        }
        EntryPayload::Normal(_) | EntryPayload::Blank => {}
        EntryPayload::Membership(membership) => {
            put_meta(store, &mut batch, MEMBERSHIP_KEY, &StoredMembership::new(Some(log_id), membership))?;
        }
    }
    put_meta(store, &mut batch, APPLIED_KEY, &log_id)?;
    store.write(batch)
}

/// Applies the command at `position` of the `count` of entry `log_id`, its bookkeeping in the
/// same write: the entry's progress, or for the last command the entry's log id. Returns the
/// command's id and outcome. An error is the database's, or bytes no command decodes from: the
/// replica stops rather than skip (and so diverge from) a command the others apply.
fn apply_command(
    store: &Store,
    log_id: LogId,
    position: usize,
    count: usize,
    proposed: ProposedCommand,
) -> Result<(u64, Outcome), MetadataError> {
    let command = command_codec::decode(&proposed.bytes)?;
    let splits = matches!(command, command::Command::SplitRange { .. });
    let mut batch = WriteBatch::default();
    let result = command::apply_into(store, &mut batch, command);
    if splits && let Err(e @ (MetadataError::Db { .. } | MetadataError::Internal(_))) = result {
        // A split that could not write its new group's database is not a refusal the other
        // replicas share: this replica stops and applies it again after a restart.
        return Err(e);
    }
    if result.is_err() {
        // A refused command changes nothing; only the bookkeeping is written.
        batch.clear();
    }
    if position + 1 == count {
        put_meta(store, &mut batch, APPLIED_KEY, &log_id)?;
        if count > 1 {
            batch.delete_cf(store.cf(Cf::Meta)?, APPLYING_KEY);
        }
    } else {
        let applied = u32::try_from(position + 1).map_err(|_| MetadataError::Internal("an entry too long".into()))?;
        put_meta(store, &mut batch, APPLYING_KEY, &Applying { log_id, applied })?;
    }
    store.write(batch)?;
    Ok((proposed.id, result))
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

/// Replaces the state machine with the snapshot at `path`, marked as in progress until done, and
/// reloads the store's copy of group 0's range-group records (the snapshot may bring or drop
/// some), whatever came of the install, before any later entry is applied.
fn install_file(store: &Store, path: &Path) -> Result<SnapshotMeta, MetadataError> {
    let installed = install_records(store, path);
    store.reload_directory()?;
    // A range group's snapshot may come from after a split of its range.
    store.reload_range()?;
    installed
}

fn install_records(store: &Store, path: &Path) -> Result<SnapshotMeta, MetadataError> {
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
                apply_entry(store, entry, |id, outcome| proposals.deliver(id, outcome))
                    .map_err(|e| io_error(ErrorSubject::Apply(log_id), ErrorVerb::Write, e))?;
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
        SnapshotBuilder {
            dir: self.dir.clone(),
            checkpoint: taken.map(|()| checkpoint).map_err(|e| e.to_string()),
            group: self.group,
        }
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
    group: u64,
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
        metrics::gauge!("coffer_metadata_raft_snapshot_bytes", "group" => self.group.to_string()).set(size as f64);
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = size, "built a snapshot");
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::BucketRecord;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::command::tests::stamp;
    use crate::command::{Applied, Command};
    use crate::raft::types::Proposal;

    fn create(name: &str) -> Command {
        Command::CreateBucket { bucket: BucketRecord { name: name.into(), ..Default::default() } }
    }

    fn delete(name: &str) -> Command {
        Command::DeleteBucket { name: name.into(), stamp: stamp(1_000) }
    }

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    /// An entry at `index` of `commands`, their ids 100, 101, …
    fn entry(index: u64, commands: &[Command]) -> Entry {
        let commands = commands
            .iter()
            .enumerate()
            .map(|(i, c)| ProposedCommand { id: 100 + i as u64, bytes: command_codec::encode(c) })
            .collect();
        Entry { log_id: log_id(index), payload: EntryPayload::Normal(Proposal { commands }) }
    }

    fn apply(store: &Store, entry: Entry) -> Result<Vec<(u64, Outcome)>, MetadataError> {
        let mut outcomes = Vec::new();
        apply_entry(store, entry, |id, outcome| outcomes.push((id, outcome)))?;
        Ok(outcomes)
    }

    fn buckets(store: &Store) -> Vec<String> {
        store.list_buckets().unwrap().into_iter().map(|b| b.name).collect()
    }

    fn applied(store: &Store) -> Option<LogId> {
        meta_value(store, APPLIED_KEY).unwrap()
    }

    fn range_group(group: u64, start: &str, end: &str) -> Command {
        let range = crate::range::Range {
            start_bucket: "b".into(),
            start_key: start.into(),
            end_bucket: "b".into(),
            end_key: end.into(),
        };
        Command::CreateRangeGroup { group, range, voters: vec![(1, "http://a".into())] }
    }

    fn delete_object(key: &str) -> Command {
        Command::DeleteObject { bucket: "b".into(), key: key.into(), stamp: stamp(1_000) }
    }

    fn wrong_range(outcome: &Outcome) -> bool {
        matches!(outcome, Err(MetadataError::WrongRange { .. }))
    }

    #[test]
    fn a_command_after_a_range_group_creation_in_the_same_entry_sees_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let commands = [create("b"), delete_object("kite"), range_group(1, "k", "m"), delete_object("kite")];
        let outcomes = apply(&store, entry(1, &commands)).unwrap();
        assert!(outcomes[1].1.is_ok(), "before the group: {:?}", outcomes[1].1);
        assert!(outcomes[2].1.is_ok(), "{:?}", outcomes[2].1);
        assert!(wrong_range(&outcomes[3].1), "after the group: {:?}", outcomes[3].1);
    }

    /// A snapshot file of `store`'s state machine.
    fn snapshot_of(store: &Store, dir: &Path, index: u64) -> PathBuf {
        let checkpoint = dir.join(format!("checkpoint-{index}"));
        rocksdb::checkpoint::Checkpoint::new(store.db()).unwrap().create_checkpoint(&checkpoint).unwrap();
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(index)),
            last_membership: StoredMembership::default(),
            snapshot_id: snapshot_id(Some(log_id(index))),
        };
        let path = dir.join(format!("snapshot-{index}"));
        snapshot_file::write(&checkpoint, &meta, &path).unwrap();
        path
    }

    #[test]
    fn installing_a_snapshot_brings_and_drops_the_range_check() {
        let dir = tempfile::tempdir().unwrap();
        let with_group = Store::open(&dir.path().join("with")).unwrap();
        apply(&with_group, entry(1, &[create("b"), range_group(1, "k", "m")])).unwrap();
        let without = Store::open(&dir.path().join("without")).unwrap();
        apply(&without, entry(1, &[create("b")])).unwrap();
        let (grouped, plain) = (snapshot_of(&with_group, dir.path(), 1), snapshot_of(&without, dir.path(), 2));

        let store = Store::open(&dir.path().join("replica")).unwrap();
        apply(&store, entry(1, &[create("b")])).unwrap();
        assert!(apply(&store, entry(2, &[delete_object("kite")])).unwrap()[0].1.is_ok());
        install_file(&store, &grouped).unwrap();
        assert!(wrong_range(&apply(&store, entry(2, &[delete_object("kite")])).unwrap()[0].1));
        install_file(&store, &plain).unwrap();
        assert!(apply(&store, entry(3, &[delete_object("kite")])).unwrap()[0].1.is_ok());
    }

    #[test]
    fn a_batch_applies_in_order_and_a_refused_command_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let outcomes = apply(
            &store,
            entry(1, &[create("a"), create("a"), create(""), create("b"), delete("a"), create("a"), delete("zz")]),
        )
        .unwrap();
        let ids: Vec<u64> = outcomes.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (100..107).collect::<Vec<_>>(), "one outcome per command, in order");
        let results: Vec<&Outcome> = outcomes.iter().map(|(_, o)| o).collect();
        assert!(matches!(results[0], Ok(Applied::Bucket(_))));
        // The second create sees the first one's bucket: read-your-writes within the entry.
        assert!(matches!(results[1], Err(MetadataError::BucketAlreadyOwnedByYou(_))), "{:?}", results[1]);
        assert!(matches!(results[2], Err(MetadataError::InvalidArgument(_))), "{:?}", results[2]);
        assert!(matches!(results[3], Ok(Applied::Bucket(_))));
        assert!(matches!(results[4], Ok(Applied::Done)), "{:?}", results[4]);
        assert!(matches!(results[5], Ok(Applied::Bucket(_))), "deleted, so created anew: {:?}", results[5]);
        assert!(matches!(results[6], Err(MetadataError::NoSuchBucket(_))), "{:?}", results[6]);
        assert_eq!(buckets(&store), ["a", "b"]);
        assert_eq!(applied(&store), Some(log_id(1)));
        assert_eq!(meta_value::<Applying>(&store, APPLYING_KEY).unwrap(), None, "no progress left behind");

        // An entry whose last command is refused still counts as applied.
        let outcomes = apply(&store, entry(2, &[create("c"), create("b")])).unwrap();
        assert!(outcomes[0].1.is_ok() && outcomes[1].1.is_err());
        assert_eq!(applied(&store), Some(log_id(2)));
        assert_eq!(buckets(&store), ["a", "b", "c"]);
    }

    #[test]
    fn an_entry_cut_short_by_a_crash_goes_on_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let proposals = Arc::new(Proposals::default());
        {
            let store = Arc::new(Store::open(dir.path()).unwrap());
            apply(&store, entry(1, &[create("a")])).unwrap();
            // Entry 2 applies its first two commands, then the process dies.
            let Entry { payload: EntryPayload::Normal(proposal), .. } =
                entry(2, &[create("c"), delete("c"), create("d")])
            else {
                unreachable!()
            };
            for (position, proposed) in proposal.commands.into_iter().take(2).enumerate() {
                apply_command(&store, log_id(2), position, 3, proposed).unwrap().1.unwrap();
            }
            assert_eq!(buckets(&store), ["a"]);
        }
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut machine = StateMachine::open(store.clone(), proposals, dir.path().join("snapshots"), 0).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (last, _) = rt.block_on(machine.applied_state()).unwrap();
        assert_eq!(last, Some(log_id(1)), "the cut entry is not applied yet, so openraft applies it again");
        assert!(
            apply(&store, entry(3, &[create("x")])).is_err(),
            "no other entry may come before the cut one is finished"
        );

        // Applied again from the log: "create c" and "delete c" must not run a second time (that
        // would leave c behind); only "create d" runs.
        let outcomes = apply(&store, entry(2, &[create("c"), delete("c"), create("d")])).unwrap();
        assert_eq!(outcomes.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [102]);
        assert!(outcomes[0].1.is_ok());
        assert_eq!(buckets(&store), ["a", "d"]);
        assert_eq!(applied(&store), Some(log_id(2)));
        assert_eq!(meta_value::<Applying>(&store, APPLYING_KEY).unwrap(), None);
        let (last, _) = rt.block_on(machine.applied_state()).unwrap();
        assert_eq!(last, Some(log_id(2)));
        apply(&store, entry(3, &[create("x")])).unwrap();
        assert_eq!(buckets(&store), ["a", "d", "x"]);
    }

    #[test]
    fn undecodable_command_bytes_stop_the_replica_instead_of_being_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut bad = entry(1, &[create("a"), create("b")]);
        if let EntryPayload::Normal(proposal) = &mut bad.payload {
            proposal.commands[1].bytes.truncate(2);
        }
        assert!(apply(&store, bad).is_err());
        assert_eq!(buckets(&store), ["a"], "the first command was applied, and recorded as such");
        assert_eq!(applied(&store), None);
    }
}
