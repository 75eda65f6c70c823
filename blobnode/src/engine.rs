//! One disk's storage engine: shard records and packs appended to chunk files, an index of where each shard lives,
//! and a committer (a writer and a syncer thread) that turns concurrent puts into group commits.
//!
//! Writes: a put hands its sealed record to the committer's bounded queue and waits. The writer takes what has
//! queued up (bounded in records, bytes and linger time), places the records back to back in the active chunk and
//! writes them through a contiguous staging buffer; one `fdatasync` makes the batch durable, and only then are its
//! puts answered (see `committer`). Reads go straight to the index (or the synced locations of batches not indexed
//! yet) and the chunk file from any thread, and verify the header (the record's own, or its pack's entry) and
//! every block they touch.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::aligned::BufferPool;
use crate::chunk::ChunkFile;
use crate::committer::Committer;
use crate::disk::{Disk, DiskUsage};
use crate::doorbell::Doorbell;
use crate::error::BlobnodeError;
use crate::index::{Index, Location};
use crate::key::ShardKey;
use crate::pack;
use crate::record::{HEADER_BYTES, RecordHeader, SealedShard};
use crate::recovery;

/// A full disk turns writable again only with this much room above its reserve, so it does not flap.
const RECOVER_MARGIN_BYTES: u64 = 256 << 20;
/// Puts and deletes waiting for the committer; senders wait when it is full.
const JOB_QUEUE: usize = 1024;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Largest size of one chunk file.
    pub chunk_bytes: u64,
    /// Whether a new chunk's whole size is reserved on disk when it is made.
    pub preallocate: bool,
    /// How long the committer lingers for more puts after the first of a batch (zero: take what has queued).
    pub commit_window: Duration,
    /// Free space the disk keeps: below it the disk turns read-only.
    pub reserve_bytes: u64,
}

/// What a disk can do now; reported in every heartbeat and consulted before every put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DiskState {
    Ok = 0,
    /// Full (ENOSPC or below the reserve): reads only, until space frees up.
    ReadOnly = 1,
    /// An I/O error (EIO) was seen: no new data until the node restarts; reads are still tried.
    Faulty = 2,
    /// The disk's folder vanished or its identity no longer reads back.
    Missing = 3,
}

impl DiskState {
    fn from_u8(v: u8) -> DiskState {
        match v {
            0 => DiskState::Ok,
            1 => DiskState::ReadOnly,
            2 => DiskState::Faulty,
            _ => DiskState::Missing,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DiskState::Ok => "ok",
            DiskState::ReadOnly => "read-only",
            DiskState::Faulty => "faulty",
            DiskState::Missing => "missing",
        }
    }
}

/// Counters a benchmark or the metrics endpoint reads: puts per sync is the group-commit ratio.
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub puts: AtomicU64,
    pub syncs: AtomicU64,
    pub batches: AtomicU64,
    pub bytes_written: AtomicU64,
    pub deletes: AtomicU64,
    pub scrubbed_bytes: AtomicU64,
    pub damaged_found: AtomicU64,
    pub compacted_bytes: AtomicU64,
}

/// What the committer and the readers share.
pub(crate) struct Shared {
    pub disk: Disk,
    pub index: Index,
    pub chunks: RwLock<HashMap<u32, Arc<ChunkFile>>>,
    pub state: AtomicU8,
    pub counters: EngineCounters,
    pub config: EngineConfig,
    pub pool: BufferPool,
    /// Puts answered (their records synced) whose index write has not landed yet: the batch whose index work the
    /// writer holds back and those queued for the syncer thread, a few at most (its queue is bounded).
    synced: RwLock<HashMap<ShardKey, Location>>,
    /// Rung by every job sent to the committer, so the writer can sleep until as many as it expects have come.
    pub doorbell: Doorbell,
}

impl Shared {
    /// Where a shard lives: the synced locations of the batch being indexed first, then the index.
    pub fn locate(&self, key: &ShardKey) -> Result<Option<Location>, BlobnodeError> {
        if let Some(location) = self.synced.read().ok().and_then(|synced| synced.get(key).copied()) {
            return Ok(Some(location));
        }
        self.index.get(key)
    }

    pub fn publish_synced(&self, entries: impl Iterator<Item = (ShardKey, Location)>) {
        if let Ok(mut synced) = self.synced.write() {
            synced.extend(entries);
        }
    }

    /// Forgets synced locations once the index has them (unless a later put replaced one meanwhile).
    pub fn unpublish_synced<'a>(&self, entries: impl Iterator<Item = (&'a ShardKey, Location)>) {
        if let Ok(mut synced) = self.synced.write() {
            for (key, location) in entries {
                if synced.get(key) == Some(&location) {
                    synced.remove(key);
                }
            }
        }
    }

    pub fn state(&self) -> DiskState {
        DiskState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether the disk takes new records now, as the error a put gets when it does not.
    pub fn writable(&self) -> Result<(), BlobnodeError> {
        match self.state() {
            DiskState::Ok => Ok(()),
            state => Err(self.unavailable(state)),
        }
    }

    /// The error a write gets from this disk in `state`.
    pub fn unavailable(&self, state: DiskState) -> BlobnodeError {
        BlobnodeError::DiskUnavailable { disk_id: self.disk.id().to_string(), state: state.as_str() }
    }

    /// Moves to a worse state (never back from Faulty or Missing here); returns whether it changed.
    pub fn degrade(&self, to: DiskState, why: &dyn std::fmt::Display) -> bool {
        let previous = self.state.fetch_max(to as u8, Ordering::AcqRel);
        let changed = previous < to as u8;
        if changed {
            tracing::error!(disk = %self.disk.root().display(), disk_id = %self.disk.id(), state = to.as_str(),
                error = %why, "disk state changed");
        }
        changed
    }

    /// Looks at an I/O failure and degrades the disk accordingly: EIO → faulty, ENOSPC → read-only.
    pub fn note_error(&self, error: &BlobnodeError) {
        if let BlobnodeError::Io { source, .. } = error {
            match source.raw_os_error() {
                Some(libc::EIO) => {
                    self.degrade(DiskState::Faulty, error);
                }
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
                    self.degrade(DiskState::ReadOnly, error);
                }
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => {
                    self.degrade(DiskState::Missing, error);
                }
                _ => {}
            }
        }
    }

    pub fn chunk(&self, id: u32) -> Option<Arc<ChunkFile>> {
        self.chunks.read().ok().and_then(|map| map.get(&id).cloned())
    }

    pub fn chunks_dir(&self) -> PathBuf {
        self.disk.chunks_dir()
    }
}

pub(crate) enum JobKind {
    /// `expect`: for a relocation, the location the shard must still have for the copy to take over.
    Put {
        shard: SealedShard,
        expect: Option<Location>,
    },
    Delete {
        data_id: Vec<u8>,
    },
}

pub(crate) struct Job {
    kind: JobKind,
    reply: oneshot::Sender<Result<(), BlobnodeError>>,
}

impl Job {
    pub(crate) fn into_parts(self) -> (JobKind, oneshot::Sender<Result<(), BlobnodeError>>) {
        (self.kind, self.reply)
    }

    pub(crate) fn is_put(&self) -> bool {
        matches!(self.kind, JobKind::Put { .. })
    }

    pub(crate) fn put_bytes(&self) -> u64 {
        match &self.kind {
            JobKind::Put { shard, .. } => shard.header.record_bytes(),
            JobKind::Delete { .. } => 0,
        }
    }
}

pub struct Engine {
    shared: Arc<Shared>,
    jobs: Option<mpsc::Sender<Job>>,
    committer: Option<JoinHandle<()>>,
}

/// A shard whose record header has been read and verified. Cheap to clone, so each blocking read can own one.
#[derive(Clone)]
pub struct OpenShard {
    chunk: Arc<ChunkFile>,
    pool: BufferPool,
    offset: u64,
    header: Arc<RecordHeader>,
}

impl Engine {
    /// Opens the disk, recovers its index from the chunk files where needed, and starts the committer. Blocking.
    pub fn open(disk: Disk, config: EngineConfig, pool: BufferPool) -> Result<Engine, BlobnodeError> {
        let index = Index::open(&disk.index_dir())?;
        let recovered = recovery::recover(&disk, &index)?;
        let shared = Arc::new(Shared {
            disk,
            index,
            chunks: RwLock::new(recovered.chunks),
            state: AtomicU8::new(DiskState::Ok as u8),
            counters: EngineCounters::default(),
            config,
            pool,
            synced: RwLock::new(HashMap::new()),
            doorbell: Doorbell::new(),
        });
        let (tx, rx) = mpsc::channel(JOB_QUEUE);
        let committer = Committer::new(Arc::clone(&shared), recovered.writer);
        let name = format!("commit-{}", &shared.disk.id()[..8.min(shared.disk.id().len())]);
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || committer.run(rx))
            .map_err(|e| BlobnodeError::Internal(format!("cannot start the committer thread: {e}")))?;
        Ok(Engine { shared, jobs: Some(tx), committer: Some(handle) })
    }

    pub fn disk(&self) -> &Disk {
        &self.shared.disk
    }

    pub fn id(&self) -> &str {
        self.shared.disk.id()
    }

    pub fn state(&self) -> DiskState {
        self.shared.state()
    }

    /// Where shard images and read buffers come from.
    pub fn pool(&self) -> &BufferPool {
        &self.shared.pool
    }

    pub fn counters(&self) -> &EngineCounters {
        &self.shared.counters
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Re-checks the disk's folder and free space (each heartbeat): a vanished folder is missing, free space below
    /// the reserve makes the disk read-only, and space freed again makes a read-only disk writable.
    pub fn refresh_state(&self) -> Result<DiskUsage, BlobnodeError> {
        let shared = &self.shared;
        if let Err(e) = shared.disk.check_identity() {
            shared.degrade(DiskState::Missing, &e);
            return Err(e);
        }
        let usage = shared.disk.usage().inspect_err(|e| {
            shared.degrade(DiskState::Faulty, e);
        })?;
        let reserve = shared.config.reserve_bytes;
        if usage.free_bytes < reserve {
            shared.degrade(
                DiskState::ReadOnly,
                &format_args!("{} bytes free, below the reserve of {reserve}", usage.free_bytes),
            );
        } else if usage.free_bytes >= reserve.saturating_add(RECOVER_MARGIN_BYTES)
            && shared
                .state
                .compare_exchange(DiskState::ReadOnly as u8, DiskState::Ok as u8, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            tracing::info!(disk = %shared.disk.root().display(), free = usage.free_bytes, "disk writable again");
        }
        Ok(usage)
    }

    async fn submit(&self, kind: JobKind) -> Result<(), BlobnodeError> {
        let jobs = self.jobs.as_ref().ok_or_else(|| BlobnodeError::Internal("engine is shutting down".into()))?;
        let (reply, answer) = oneshot::channel();
        jobs.send(Job { kind, reply })
            .await
            .map_err(|_| BlobnodeError::Internal("the committer has stopped".into()))?;
        self.shared.doorbell.ring();
        answer.await.map_err(|_| BlobnodeError::Internal("the committer dropped a request".into()))?
    }

    /// Stores a sealed shard durably (replacing an earlier version); returns once it is fdatasync'd and indexed.
    pub async fn put(&self, shard: SealedShard) -> Result<(), BlobnodeError> {
        self.shared.writable()?;
        self.submit(JobKind::Put { shard, expect: None }).await
    }

    /// Moves a record's copy into the active chunk, taking effect only if the shard still lives at `from`.
    pub(crate) async fn relocate(&self, shard: SealedShard, from: Location) -> Result<(), BlobnodeError> {
        self.shared.writable()?;
        self.submit(JobKind::Put { shard, expect: Some(from) }).await
    }

    /// Removes every shard of `data_id` on this disk, durably. Idempotent.
    pub async fn delete(&self, data_id: Vec<u8>) -> Result<(), BlobnodeError> {
        self.submit(JobKind::Delete { data_id }).await
    }

    /// Finds a shard and verifies its record header. Blocking.
    pub fn open_shard(&self, key: &ShardKey) -> Result<OpenShard, BlobnodeError> {
        let shared = &self.shared;
        let location =
            shared.locate(key)?.ok_or_else(|| BlobnodeError::NoSuchShard(format!("{key} on disk {}", self.id())))?;
        self.open_at(key, location)
    }

    pub(crate) fn open_at(&self, key: &ShardKey, location: Location) -> Result<OpenShard, BlobnodeError> {
        let shared = &self.shared;
        let chunk = shared.chunk(location.chunk).ok_or_else(|| {
            BlobnodeError::corrupt(
                shared.chunks_dir(),
                format!("chunk {:08x} holding {key} is missing", location.chunk),
            )
        })?;
        let mut block = shared.pool.take(HEADER_BYTES);
        let at = location.header_offset();
        chunk.read_at(&mut block, at).inspect_err(|e| shared.note_error(e))?;
        let header = match location.pack {
            None => RecordHeader::decode(shared.disk.seed(), &block),
            Some(pack) => pack::decode(shared.disk.seed(), &block).and_then(|entries| {
                // The entry whose data starts where the index says this shard's does.
                let data_at = location.offset + HEADER_BYTES as u64 - pack;
                let found = pack::data_offsets(&entries).position(|offset| offset == data_at);
                found.map(|i| entries[i].clone()).ok_or_else(|| format!("no entry with data at {data_at}"))
            }),
        }
        .map_err(|detail| BlobnodeError::corrupt(chunk.path(), format!("record of {key} at {at}: {detail}")))?;
        if header.key != *key || header.seq != location.seq || header.shard_len != location.shard_len {
            return Err(BlobnodeError::corrupt(
                chunk.path(),
                format!(
                    "record at {} is {} seq {}, the index expected {key} seq {}",
                    location.offset, header.key, header.seq, location.seq
                ),
            ));
        }
        Ok(OpenShard { chunk, pool: shared.pool.clone(), offset: location.offset, header: Arc::new(header) })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing the queue lets the committer finish what it holds and exit; joining makes a reopen safe.
        self.jobs.take();
        if let Some(handle) = self.committer.take()
            && handle.join().is_err()
        {
            tracing::error!(disk = %self.shared.disk.root().display(), "committer thread panicked");
        }
    }
}

impl OpenShard {
    pub fn header(&self) -> &RecordHeader {
        &self.header
    }

    /// Reads `range` of the shard, verifying every block it touches. Blocking.
    pub fn read_range(&self, range: Range<u64>) -> Result<Bytes, BlobnodeError> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let plan = self.header.plan_read(range);
        // Every byte is overwritten by the read, so a reused buffer needs no clearing.
        let mut buf = self.pool.take(plan.read_len);
        self.chunk.read_at(&mut buf, self.offset + plan.record_offset)?;
        self.header.verify_blocks(plan.first_block, &buf).map_err(|detail| {
            BlobnodeError::corrupt(self.chunk.path(), format!("{} at {}: {detail}", self.header.key, self.offset))
        })?;
        Ok(buf.into_bytes(plan.keep))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::record::tests::{pattern, seal_key, seal_key_in};
    use crate::store::tests::test_config;

    pub(crate) fn open(root: &std::path::Path, config: EngineConfig) -> Arc<Engine> {
        let disk = Disk::open(root).expect("disk");
        Arc::new(Engine::open(disk, config, BufferPool::new(64 << 20)).expect("engine"))
    }

    pub(crate) fn key(n: u32) -> ShardKey {
        ShardKey { data_id: format!("data-{}", n / 4).into_bytes(), stripe: n % 4, index: n % 3 }
    }

    pub(crate) fn read_all(engine: &Engine, key: &ShardKey) -> Result<Vec<u8>, BlobnodeError> {
        let shard = engine.open_shard(key)?;
        Ok(shard.read_range(0..shard.header().shard_len)?.to_vec())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_puts_share_syncs_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), test_config());
        let mut tasks = Vec::new();
        for n in 0..64u32 {
            let engine = Arc::clone(&engine);
            tasks.push(tokio::spawn(async move {
                let data = pattern(1000 + n as usize * 997, n);
                engine.put(seal_key(key(n), &data)).await.expect("put");
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        for n in 0..64u32 {
            assert_eq!(read_all(&engine, &key(n)).expect("read"), pattern(1000 + n as usize * 997, n), "shard {n}");
        }
        let counters = engine.counters();
        assert_eq!(counters.puts.load(Ordering::Relaxed), 64);
        let syncs = counters.syncs.load(Ordering::Relaxed);
        assert!((1..=64).contains(&syncs), "{syncs} syncs");
        eprintln!("64 concurrent puts took {syncs} syncs");
    }

    #[tokio::test]
    async fn overwrite_delete_and_empty_chunks_go_away() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Small chunks so a few 1 MiB shards fill several.
        let config = EngineConfig { chunk_bytes: 4 << 20, ..test_config() };
        let engine = open(dir.path(), config);
        engine.put(seal_key(key(0), b"first version")).await.expect("put");
        engine.put(seal_key(key(0), b"second")).await.expect("overwrite");
        assert_eq!(read_all(&engine, &key(0)).expect("read"), b"second");
        for n in 1..12u32 {
            engine.put(seal_key(key(n), &pattern(1 << 20, n))).await.expect("put big");
        }
        let chunks_before = std::fs::read_dir(dir.path().join("chunks")).expect("list").count();
        assert!(chunks_before >= 3, "{chunks_before} chunks");
        for data in 0..3u32 {
            engine.delete(format!("data-{data}").into_bytes()).await.expect("delete");
            engine.delete(format!("data-{data}").into_bytes()).await.expect("delete is idempotent");
        }
        for n in 0..12u32 {
            assert!(matches!(engine.open_shard(&key(n)), Err(BlobnodeError::NoSuchShard(_))), "shard {n}");
        }
        // Every finished chunk emptied by the deletes is gone; only the active one is left.
        let chunks_after = std::fs::read_dir(dir.path().join("chunks")).expect("list").count();
        assert_eq!(chunks_after, 1, "{chunks_before} chunks before, {chunks_after} after");
        engine.put(seal_key(key(0), b"after delete")).await.expect("put again");
        assert_eq!(read_all(&engine, &key(0)).expect("read"), b"after delete");
    }

    #[tokio::test]
    async fn deleted_space_is_punched_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), test_config());
        engine.put(seal_key(key(0), &pattern(8 << 20, 1))).await.expect("put");
        let path = dir.path().join("chunks").join(crate::chunk::file_name(1));
        let allocated = |p: &std::path::Path| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p).expect("stat").blocks() * 512
        };
        let before = allocated(&path);
        engine.delete(key(0).data_id).await.expect("delete");
        let after = allocated(&path);
        assert!(after + (7 << 20) < before, "allocated {before} before the delete, {after} after");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_past_the_staging_window_and_across_chunks_land_byte_exact() {
        // Images in heap memory: every piece goes through the staging buffer, and batches pass its 4 MiB window
        // (their start is staged as puts arrive, the rest streams through the buffer).
        large_and_small_batches_land_byte_exact(&BufferPool::for_test(64 << 20, false)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_in_huge_pages_are_written_from_where_they_are_beside_staged_pieces() {
        // Large images in slabs taken as huge-page backed: the writer hands them to the device as they are, in the
        // same write as the staged pack headers and small shards around them.
        large_and_small_batches_land_byte_exact(&BufferPool::for_test(64 << 20, true)).await;
    }

    /// Records of 1 MiB + 1 byte among small packed shards, lingering for many to batch together, with 16 MiB chunks
    /// that roll over in the middle of batches (staging stops at the chunk change); read back, then again from the
    /// chunk files alone.
    async fn large_and_small_batches_land_byte_exact(pool: &BufferPool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EngineConfig { chunk_bytes: 16 << 20, commit_window: Duration::from_millis(20), ..test_config() };
        let len = |n: u32| if n.is_multiple_of(3) { (1 << 20) + 1 } else { 5000 + n as usize };
        let engine = open(dir.path(), config.clone());
        for round in 0..2u32 {
            // Sealed first, so that the puts reach the writer together.
            let sealed: Vec<_> =
                (round * 48..(round + 1) * 48).map(|n| seal_key_in(pool, unique_key(n), &pattern(len(n), n))).collect();
            let mut tasks = Vec::new();
            for shard in sealed {
                let engine = Arc::clone(&engine);
                tasks.push(tokio::spawn(async move { engine.put(shard).await.expect("put") }));
            }
            for task in tasks {
                task.await.expect("task");
            }
        }
        let chunks = std::fs::read_dir(dir.path().join("chunks")).expect("list").count();
        assert!(chunks >= 3, "{chunks} chunks");
        for n in 0..96u32 {
            assert_eq!(read_all(&engine, &unique_key(n)).expect("read"), pattern(len(n), n), "shard {n}");
        }
        drop(engine);
        std::fs::remove_dir_all(dir.path().join("index")).expect("lose the index");
        let engine = open(dir.path(), config);
        for n in 0..96u32 {
            assert_eq!(read_all(&engine, &unique_key(n)).expect("read"), pattern(len(n), n), "shard {n} rebuilt");
        }
    }

    pub(crate) fn unique_key(n: u32) -> ShardKey {
        ShardKey { data_id: format!("small-{n}").into_bytes(), stripe: 0, index: 0 }
    }

    /// Puts `count` shards concurrently, every fourth of 1 MiB (a record of its own) and the rest small (packed),
    /// until some pack holds at least three shards; returns the keys by pack (chunk, offset).
    pub(crate) async fn put_packs(engine: &Arc<Engine>, count: u32) -> HashMap<(u32, u64), Vec<ShardKey>> {
        for round in 0..20u32 {
            let mut tasks = Vec::new();
            for n in round * count..(round + 1) * count {
                let engine = Arc::clone(engine);
                tasks.push(tokio::spawn(async move {
                    engine.put(seal_key(unique_key(n), &packs_pattern(n))).await.expect("put");
                }));
            }
            for task in tasks {
                task.await.expect("task");
            }
            let mut packs: HashMap<(u32, u64), Vec<ShardKey>> = HashMap::new();
            for n in 0..(round + 1) * count {
                let location = engine.shared.locate(&unique_key(n)).expect("get").expect("indexed");
                assert_eq!(location.pack.is_some(), !n.is_multiple_of(4), "shard {n}: {location:?}");
                if let Some(pack) = location.pack {
                    packs.entry((location.chunk, pack)).or_default().push(unique_key(n));
                }
            }
            if packs.values().any(|keys| keys.len() >= 3) {
                return packs;
            }
        }
        panic!("20 rounds of concurrent puts never shared a pack");
    }

    pub(crate) fn packs_pattern(n: u32) -> Vec<u8> {
        pattern(if n.is_multiple_of(4) { 1 << 20 } else { 1 + (n as usize * 1999) % 65536 }, n)
    }

    /// The `n` of a [`unique_key`].
    pub(crate) fn key_number(key: &ShardKey) -> u32 {
        let name = String::from_utf8_lossy(&key.data_id).into_owned();
        name.trim_start_matches("small-").parse().expect("a unique_key")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_shards_share_packs_and_a_pack_header_goes_with_its_last_shard() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), test_config());
        let packs = put_packs(&engine, 32).await;
        for keys in packs.values() {
            for key in keys {
                assert_eq!(read_all(&engine, key).expect("read"), packs_pattern(key_number(key)), "{key}");
            }
        }
        let (&(chunk_id, offset), keys) = packs.iter().find(|(_, keys)| keys.len() >= 3).expect("a shared pack");
        let chunk_path = |id| dir.path().join("chunks").join(crate::chunk::file_name(id));
        let header_block = || {
            let bytes = std::fs::read(chunk_path(chunk_id)).expect("read chunk");
            bytes[offset as usize..offset as usize + HEADER_BYTES].to_vec()
        };
        assert!(pack::looks_like_pack(&header_block()));
        // A flipped byte in a packed shard's data is caught by its CRC from the pack header.
        let (&other, other_keys) = packs.iter().find(|(p, _)| **p != (chunk_id, offset)).expect("a second pack");
        let victim = &other_keys[0];
        let at = engine.shared.locate(victim).expect("get").expect("indexed");
        assert_eq!((at.chunk, at.pack), (other.0, Some(other.1)));
        let mut bytes = std::fs::read(chunk_path(at.chunk)).expect("read chunk");
        bytes[(at.offset + HEADER_BYTES as u64) as usize] ^= 0x01;
        std::fs::write(chunk_path(at.chunk), &bytes).expect("flip a byte");
        assert!(matches!(read_all(&engine, victim), Err(BlobnodeError::CorruptShard { .. })), "{victim}");
        bytes[(at.offset + HEADER_BYTES as u64) as usize] ^= 0x01;
        std::fs::write(chunk_path(at.chunk), &bytes).expect("flip it back");
        assert_eq!(read_all(&engine, victim).expect("read"), packs_pattern(key_number(victim)));

        let (last, others) = keys.split_last().expect("keys");
        for key in others {
            engine.delete(key.data_id.clone()).await.expect("delete");
            assert!(matches!(engine.open_shard(key), Err(BlobnodeError::NoSuchShard(_))), "{key}");
        }
        assert!(pack::looks_like_pack(&header_block()), "the header stays while a shard it describes lives");
        assert_eq!(read_all(&engine, last).expect("read"), packs_pattern(key_number(last)));
        engine.delete(last.data_id.clone()).await.expect("delete the last");
        assert!(header_block().iter().all(|&b| b == 0), "the header is punched out with its last shard");

        // Rebuilt from the chunk files alone: every shard still live comes back, no deleted one does.
        drop(engine);
        std::fs::remove_dir_all(dir.path().join("index")).expect("lose the index");
        let engine = open(dir.path(), test_config());
        for (other, other_keys) in &packs {
            for key in other_keys {
                if *other == (chunk_id, offset) {
                    assert!(matches!(engine.open_shard(key), Err(BlobnodeError::NoSuchShard(_))), "{key}");
                } else {
                    assert_eq!(read_all(&engine, key).expect("read"), packs_pattern(key_number(key)), "{key}");
                    let at = engine.shared.locate(key).expect("get").expect("indexed");
                    assert_eq!((at.chunk, at.pack), (other.0, Some(other.1)));
                }
            }
        }
    }

    #[tokio::test]
    async fn answered_puts_are_found_before_their_index_write_lands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), test_config());
        let shared = &engine.shared;
        let at = |offset| Location { chunk: 1, offset, shard_len: 10, seq: offset, pack: None };
        shared.publish_synced([(key(1), at(4096))].into_iter());
        assert_eq!(shared.locate(&key(1)).expect("locate"), Some(at(4096)));
        assert_eq!(shared.locate(&key(2)).expect("locate"), None);
        // Only the location that was published is forgotten, not a newer one for the same shard.
        shared.publish_synced([(key(1), at(8192))].into_iter());
        shared.unpublish_synced([(&key(1), at(4096))].into_iter());
        assert_eq!(shared.locate(&key(1)).expect("locate"), Some(at(8192)));
        shared.unpublish_synced([(&key(1), at(8192))].into_iter());
        assert_eq!(shared.locate(&key(1)).expect("locate"), None);
    }

    #[tokio::test]
    async fn a_full_disk_turns_read_only_and_refuses_puts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EngineConfig { reserve_bytes: u64::MAX, ..test_config() };
        let engine = open(dir.path(), config);
        assert_eq!(engine.state(), DiskState::Ok);
        engine.refresh_state().expect("usage");
        assert_eq!(engine.state(), DiskState::ReadOnly);
        let refused = engine.put(seal_key(key(0), b"x")).await.expect_err("read-only");
        assert!(matches!(refused, BlobnodeError::DiskUnavailable { .. }), "{refused}");
        assert_eq!(refused.code(), coffer_proto::ErrorCode::InsufficientCapacity);
    }

    #[tokio::test]
    async fn a_vanished_folder_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), test_config());
        engine.put(seal_key(key(0), b"x")).await.expect("put");
        std::fs::remove_file(dir.path().join("coffer-disk.id")).expect("remove id");
        assert!(engine.refresh_state().is_err());
        assert_eq!(engine.state(), DiskState::Missing);
        assert!(engine.put(seal_key(key(1), b"y")).await.is_err());
    }

    #[test]
    fn eio_marks_faulty_and_enospc_read_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), test_config());
        let shared = engine.shared();
        shared.note_error(&BlobnodeError::io("write", "/x", std::io::Error::from_raw_os_error(libc::ENOSPC)));
        assert_eq!(engine.state(), DiskState::ReadOnly);
        shared.note_error(&BlobnodeError::io("read", "/x", std::io::Error::from_raw_os_error(libc::EIO)));
        assert_eq!(engine.state(), DiskState::Faulty);
        // Never back to a better state by another error.
        shared.note_error(&BlobnodeError::io("write", "/x", std::io::Error::from_raw_os_error(libc::ENOSPC)));
        assert_eq!(engine.state(), DiskState::Faulty);
    }
}
