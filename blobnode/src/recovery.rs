//! Bringing a disk's index in line with its chunk files at start.
//!
//! Each chunk remembers (in the index) up to where its records are indexed. Whatever lies between that point and
//! the end of the file was written by a batch whose index write did not survive (or did not happen: the node died
//! between the fdatasync and the index write). Those bytes are scanned: a record whose header and every block
//! verify is indexed, anything else (a torn record, garbage of a failed write) is skipped 4 KiB at a time. A lost
//! or new index has no chunk entries, so every chunk is scanned from its start: that is the index rebuild.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

use crate::aligned::{ALIGN, AlignedBuf, align_up};
use crate::chunk::{self, CHUNK_HEADER_BYTES, ChunkFile};
use crate::committer::{Active, WriterState};
use crate::disk::Disk;
use crate::error::BlobnodeError;
use crate::index::{ChunkStats, Index, IndexBatch, Location};
use crate::key::ShardKey;
use crate::pack;
use crate::record::{HEADER_BYTES, RecordHeader};

/// Index entries written per batch while scanning, so a rebuild of a big disk does not hold them all in memory.
const SCAN_BATCH: usize = 4096;

pub struct Recovered {
    pub chunks: HashMap<u32, Arc<ChunkFile>>,
    pub writer: WriterState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanReport {
    pub records: u64,
    pub skipped_bytes: u64,
}

pub fn recover(disk: &Disk, index: &Index) -> Result<Recovered, BlobnodeError> {
    let dir = disk.chunks_dir();
    let mut stats: HashMap<u32, ChunkStats> = index.chunk_stats()?.into_iter().collect();
    let mut next_seq = index.next_seq()?;
    let mut chunks = HashMap::new();
    let entries = fs::read_dir(&dir).map_err(|e| BlobnodeError::io("list chunks", &dir, e))?;
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| BlobnodeError::io("list chunks", &dir, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(chunk::parse_file_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    for &id in &ids {
        let path = dir.join(chunk::file_name(id));
        match ChunkFile::open(&path, id, disk.seed(), disk.direct_io()) {
            Ok(file) => {
                chunks.insert(id, Arc::new(file));
            }
            Err(BlobnodeError::CorruptShard { detail, .. }) => {
                let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(u64::MAX);
                if len <= CHUNK_HEADER_BYTES && !stats.contains_key(&id) {
                    // Created but never used before a crash: its header may not even have reached the disk.
                    tracing::info!(path = %path.display(), "removing a chunk whose creation was interrupted");
                    fs::remove_file(&path).map_err(|e| BlobnodeError::io("remove torn chunk", &path, e))?;
                } else {
                    // Its shards read as corrupt, the scrubber reports them, repair rebuilds them elsewhere.
                    tracing::error!(path = %path.display(), %detail, "chunk unreadable; its shards are lost here");
                }
            }
            Err(e) => return Err(e),
        }
    }
    for (id, stat) in &stats {
        if !chunks.contains_key(id) && stat.live_records > 0 {
            tracing::error!(chunk = id, records = stat.live_records, "chunk file missing; its shards are lost here");
        }
    }

    let mut total = ScanReport::default();
    for &id in &ids {
        let Some(file) = chunks.get(&id) else { continue };
        let from = stats.get(&id).map_or(CHUNK_HEADER_BYTES, |s| s.indexed_end.max(CHUNK_HEADER_BYTES));
        let report = scan_chunk(disk, index, file, from, &mut stats, &mut next_seq)?;
        total.records += report.records;
        total.skipped_bytes += report.skipped_bytes;
    }
    if total.records > 0 || total.skipped_bytes > 0 {
        tracing::info!(disk = %disk.root().display(), records = total.records, skipped_bytes = total.skipped_bytes,
            "recovered records past the index");
    }

    let next_chunk = ids.last().map_or(Ok(1), |&last| {
        last.checked_add(1).ok_or_else(|| BlobnodeError::Internal("chunk ids exhausted on this disk".into()))
    })?;
    // New records continue the newest chunk, after everything that was scanned.
    let active = match ids.last().and_then(|id| chunks.get(id)) {
        Some(file) => {
            let end = align_up(file.len()?).max(CHUNK_HEADER_BYTES);
            Some(Active { chunk: Arc::clone(file), end })
        }
        None => None,
    };
    if let Some(active) = &active {
        stats.entry(active.chunk.id()).or_insert(ChunkStats { indexed_end: active.end, ..ChunkStats::default() });
    }
    Ok(Recovered { chunks, writer: WriterState { active, stats, next_seq, next_chunk } })
}

/// Indexes the valid records of `file` from `from` to its end; persists the result (synced) before returning.
pub fn scan_chunk(
    disk: &Disk,
    index: &Index,
    file: &ChunkFile,
    from: u64,
    stats: &mut HashMap<u32, ChunkStats>,
    next_seq: &mut u64,
) -> Result<ScanReport, BlobnodeError> {
    let end = file.len()?;
    let mut position = align_up(from);
    let mut report = ScanReport::default();
    let mut batch = IndexBatch::default();
    let mut in_batch: HashMap<ShardKey, Location> = HashMap::new();
    let mut header_block = AlignedBuf::zeroed(HEADER_BYTES);
    while position + HEADER_BYTES as u64 <= end {
        file.read_at(&mut header_block, position)?;
        let found = records_at(disk, file, &header_block, position, end)?;
        report.skipped_bytes += found.skipped;
        position += found.advance;
        for (header, location) in found.records {
            let existing = match in_batch.get(&header.key) {
                Some(l) => Some(*l),
                None => index.get(&header.key)?,
            };
            *next_seq = (*next_seq).max(header.seq.saturating_add(1));
            match existing {
                Some(current) if current.seq >= header.seq => {}
                _ => {
                    if let Some(old) = existing {
                        let s = stats.entry(old.chunk).or_default();
                        s.remove_record(&old);
                        batch.delete_location(old);
                        if old.chunk != file.id() {
                            batch.put_chunk(old.chunk, *s);
                        }
                    }
                    batch.put_shard(&header.key, location);
                    stats.entry(file.id()).or_default().add_record(&location);
                    in_batch.insert(header.key.clone(), location);
                    report.records += 1;
                }
            }
        }
        if in_batch.len() >= SCAN_BATCH {
            flush(index, file.id(), position.min(end), stats, *next_seq, std::mem::take(&mut batch))?;
            in_batch.clear();
        }
    }
    flush(index, file.id(), end.max(position), stats, *next_seq, batch)?;
    Ok(report)
}

fn flush(
    index: &Index,
    chunk: u32,
    indexed_end: u64,
    stats: &mut HashMap<u32, ChunkStats>,
    next_seq: u64,
    mut batch: IndexBatch,
) -> Result<(), BlobnodeError> {
    let s = stats.entry(chunk).or_default();
    s.indexed_end = s.indexed_end.max(align_up(indexed_end));
    batch.put_chunk(chunk, *s);
    batch.set_next_seq(next_seq);
    index.write(batch, true)
}

/// What a scan finds at one position: the verified records there and how far to move on.
struct Found {
    records: Vec<(RecordHeader, Location)>,
    advance: u64,
    skipped: u64,
}

/// The whole, verifying records that start at `position`: one record, the shards of a pack whose data verifies
/// (a torn pack keeps the shards that reached the disk whole; none of them was acknowledged), or nothing.
fn records_at(
    disk: &Disk,
    file: &ChunkFile,
    header_block: &[u8],
    position: u64,
    end: u64,
) -> Result<Found, BlobnodeError> {
    let nothing = Found { records: Vec::new(), advance: ALIGN as u64, skipped: ALIGN as u64 };
    if pack::looks_like_pack(header_block) {
        let Ok(entries) = pack::decode(disk.seed(), header_block) else { return Ok(nothing) };
        // A torn pack ends with the file: what lies past the last whole block cannot verify, and the writer
        // continues from the file's end.
        let pack_end = position + pack::pack_bytes(&entries);
        let readable_end = pack_end.min(end - end % ALIGN as u64);
        let body_len = readable_end.saturating_sub(position + HEADER_BYTES as u64);
        let mut body = AlignedBuf::zeroed(body_len as usize);
        if body_len > 0 {
            file.read_at(&mut body, position + HEADER_BYTES as u64)?;
        }
        let mut found = Found { records: Vec::new(), advance: pack_end.min(align_up(end)) - position, skipped: 0 };
        let offsets: Vec<u64> = pack::data_offsets(&entries).collect();
        for (entry, offset) in entries.into_iter().zip(offsets) {
            let len = align_up(entry.shard_len);
            let in_body = (offset - HEADER_BYTES as u64) as usize;
            match body.get(in_body..in_body + len as usize) {
                Some(data) if entry.verify_blocks(0, data).is_ok() => {
                    let location = Location {
                        chunk: file.id(),
                        offset: position + offset - HEADER_BYTES as u64,
                        shard_len: entry.shard_len,
                        seq: entry.seq,
                        pack: Some(position),
                    };
                    found.records.push((entry, location));
                }
                _ => found.skipped += len,
            }
        }
        return Ok(found);
    }
    if !RecordHeader::looks_like_header(header_block) {
        return Ok(nothing);
    }
    let Ok(header) = RecordHeader::decode(disk.seed(), header_block) else {
        return Ok(nothing);
    };
    let size = header.record_bytes();
    if position + size > end {
        return Ok(nothing);
    }
    let body_len = (size - HEADER_BYTES as u64) as usize;
    let mut body = AlignedBuf::zeroed(body_len);
    if body_len > 0 {
        file.read_at(&mut body, position + HEADER_BYTES as u64)?;
    }
    if header.verify_blocks(0, &body).is_err() {
        return Ok(nothing);
    }
    let location =
        Location { chunk: file.id(), offset: position, shard_len: header.shard_len, seq: header.seq, pack: None };
    Ok(Found { records: vec![(header, location)], advance: size, skipped: 0 })
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use super::*;
    use crate::engine::tests::{key, key_number, open, packs_pattern, put_packs, read_all};
    use crate::engine::{DiskState, EngineConfig};
    use crate::record::tests::{pattern, seal_key};
    use crate::store::tests::test_config;

    fn chunk_path(root: &std::path::Path, id: u32) -> std::path::PathBuf {
        root.join("chunks").join(chunk::file_name(id))
    }

    async fn put_many(root: &std::path::Path, count: u32, config: EngineConfig) {
        let engine = open(root, config);
        for n in 0..count {
            engine.put(seal_key(key(n), &pattern(5000 + 70_000 * (n as usize % 3), n))).await.expect("put");
        }
    }

    fn check_all(root: &std::path::Path, count: u32) {
        let engine = open(root, test_config());
        for n in 0..count {
            let got = read_all(&engine, &key(n)).expect("read");
            assert_eq!(got, pattern(5000 + 70_000 * (n as usize % 3), n), "shard {n}");
        }
        assert_eq!(engine.state(), DiskState::Ok);
    }

    #[tokio::test]
    async fn index_is_rebuilt_from_chunk_files_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        put_many(dir.path(), 30, test_config()).await;
        {
            // An overwrite and a delete must survive the rebuild too: higher sequence wins, punched holes stay dead.
            let engine = open(dir.path(), test_config());
            engine.put(seal_key(key(0), b"newer")).await.expect("overwrite");
            engine.delete(key(29).data_id.clone()).await.expect("delete");
        }
        fs::remove_dir_all(dir.path().join("index")).expect("lose the index");
        let engine = open(dir.path(), test_config());
        assert_eq!(read_all(&engine, &key(0)).expect("read"), b"newer");
        for n in 1..28 {
            let got = read_all(&engine, &key(n)).expect("read");
            assert_eq!(got, pattern(5000 + 70_000 * (n as usize % 3), n), "shard {n}");
        }
        for n in 28..30 {
            // key(28) and key(29) share data id data-7 with key(30), which was never written.
            assert!(matches!(engine.open_shard(&key(n)), Err(BlobnodeError::NoSuchShard(_))), "shard {n}");
        }
    }

    #[tokio::test]
    async fn records_past_the_indexed_end_are_recovered() {
        let dir = tempfile::tempdir().expect("tempdir");
        put_many(dir.path(), 10, test_config()).await;
        // Roll the persisted indexed_end back to the chunk's start, as if the index writes after the syncs were lost.
        {
            let disk = Disk::open(dir.path()).expect("disk");
            let index = Index::open(&disk.index_dir()).expect("index");
            let mut batch = IndexBatch::default();
            for n in 5..10 {
                let location = index.get(&key(n)).expect("get").expect("present");
                batch.delete_shard(&key(n), location);
            }
            batch.put_chunk(1, ChunkStats { indexed_end: CHUNK_HEADER_BYTES, ..ChunkStats::default() });
            index.write(batch, true).expect("write");
        }
        check_all(dir.path(), 10);
    }

    #[tokio::test]
    async fn a_torn_record_is_never_served_and_acknowledged_ones_all_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        put_many(dir.path(), 9, test_config()).await;
        let path = chunk_path(dir.path(), 1);
        let acknowledged_end = fs::metadata(&path).expect("stat").len();
        // A batch that was being written when the node died: a whole record, then one cut off mid-way, then a
        // header whose body never arrived. None was acknowledged.
        {
            let engine = open(dir.path(), test_config());
            engine.put(seal_key(key(100), &pattern(200_000, 100))).await.expect("put");
            engine.put(seal_key(key(101), &pattern(300_000, 101))).await.expect("put");
        }
        let full_end = fs::metadata(&path).expect("stat").len();
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(full_end - 100_000).expect("tear the last record");
        drop(file);
        // And forget they were ever indexed.
        {
            let disk = Disk::open(dir.path()).expect("disk");
            let index = Index::open(&disk.index_dir()).expect("index");
            let mut batch = IndexBatch::default();
            for n in [100, 101] {
                if let Some(location) = index.get(&key(n)).expect("get") {
                    batch.delete_shard(&key(n), location);
                }
            }
            batch.put_chunk(1, ChunkStats { indexed_end: acknowledged_end, ..ChunkStats::default() });
            index.write(batch, true).expect("write");
        }
        check_all(dir.path(), 9);
        let engine = open(dir.path(), test_config());
        // The whole record came back, the torn one did not.
        assert_eq!(read_all(&engine, &key(100)).expect("whole record"), pattern(200_000, 100));
        assert!(matches!(engine.open_shard(&key(101)), Err(BlobnodeError::NoSuchShard(_))));
        // New writes land after the torn bytes and read back.
        engine.put(seal_key(key(102), &pattern(10_000, 102))).await.expect("put after recovery");
        drop(engine);
        let engine = open(dir.path(), test_config());
        assert_eq!(read_all(&engine, &key(102)).expect("read"), pattern(10_000, 102));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_torn_pack_keeps_the_shards_that_reached_the_disk_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), test_config());
        let packs = put_packs(&engine, 32).await;
        drop(engine);
        // Cut the chunk inside the biggest pack's last shard, and forget everything from that pack on, as if the
        // node died while the batch was written.
        let (&(_, offset), keys) = packs.iter().max_by_key(|(_, keys)| keys.len()).expect("a pack");
        let disk = Disk::open(dir.path()).expect("disk");
        let index = Index::open(&disk.index_dir()).expect("index");
        let locations: Vec<(ShardKey, Location)> =
            keys.iter().map(|k| (k.clone(), index.get(k).expect("get").expect("indexed"))).collect();
        let (last_key, last) = locations.iter().max_by_key(|(_, l)| l.offset).expect("last").clone();
        let cut = last.offset + HEADER_BYTES as u64 + align_up(last.shard_len) / 2;
        let path = chunk_path(dir.path(), last.chunk);
        OpenOptions::new().write(true).open(&path).expect("open").set_len(cut).expect("tear");
        let mut batch = IndexBatch::default();
        let mut later = Vec::new();
        for (key, location) in index.shards_after(None, usize::MAX).expect("scan") {
            if location.chunk == last.chunk && location.offset >= offset {
                batch.delete_shard(&key, location);
                later.push(key);
            }
        }
        batch.put_chunk(last.chunk, ChunkStats { indexed_end: offset, ..ChunkStats::default() });
        index.write(batch, true).expect("write");
        drop(index);

        let engine = open(dir.path(), test_config());
        assert!(matches!(engine.open_shard(&last_key), Err(BlobnodeError::NoSuchShard(_))), "the torn shard");
        for key in later.iter().filter(|k| **k != last_key) {
            match read_all(&engine, key) {
                Ok(data) => assert_eq!(data, packs_pattern(key_number(key)), "{key}"),
                // Only what lay past the cut may be missing, and then it must be missing, not damaged.
                Err(BlobnodeError::NoSuchShard(_)) => {}
                Err(other) => panic!("{key}: {other}"),
            }
        }
        for (key, location) in &locations {
            if *key != last_key && location.offset < last.offset {
                assert!(read_all(&engine, key).is_ok(), "{key}, whole before the cut, came back");
            }
        }
        // New puts continue after the torn bytes.
        engine.put(seal_key(key(900), &pattern(3000, 900))).await.expect("put after recovery");
        drop(engine);
        let engine = open(dir.path(), test_config());
        assert_eq!(read_all(&engine, &key(900)).expect("read"), pattern(3000, 900));
    }

    #[tokio::test]
    async fn an_interrupted_chunk_creation_is_cleaned_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        put_many(dir.path(), 3, test_config()).await;
        fs::write(chunk_path(dir.path(), 2), b"").expect("torn creation");
        check_all(dir.path(), 3);
        assert!(!chunk_path(dir.path(), 2).exists());
    }
}
