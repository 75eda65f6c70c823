//! Compaction: chunks whose live records have shrunk below a threshold of their size are rewritten, their live
//! records moved to the active chunk through the committer (so moves are group-committed and indexed like puts),
//! after which the committer removes the emptied chunk. Rate-limited in bytes moved per second.
//!
//! A move takes effect only if the shard still lives where it was read from: a delete or a newer put that races
//! the move wins, and the copy is dead on arrival.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::chunk::CHUNK_HEADER_BYTES;
use crate::engine::Engine;
use crate::error::BlobnodeError;
use crate::key::ShardKey;
use crate::pace::pace;
use crate::record::{self, ShardImage};

/// How often a disk is looked at for chunks worth compacting.
const CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// Chunks smaller than this are not worth a rewrite (the active chunk aside, which is never compacted).
const MIN_CHUNK_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, Copy)]
pub struct CompactConfig {
    pub threshold: f64,
    pub bytes_per_s: u64,
}

/// Never returns while compaction is on; stop it by aborting its task.
pub async fn run(engine: Arc<Engine>, config: CompactConfig) {
    if config.bytes_per_s == 0 {
        return;
    }
    loop {
        tokio::time::sleep(CHECK_INTERVAL).await;
        if let Err(error) = compact_once(&engine, config, MIN_CHUNK_BYTES).await {
            tracing::warn!(disk = %engine.disk().root().display(), %error, "compaction stopped");
        }
    }
}

/// Compacts every finished chunk at least `min_chunk_bytes` large whose live ratio is below the threshold.
/// Returns the number of records moved.
pub async fn compact_once(
    engine: &Arc<Engine>,
    config: CompactConfig,
    min_chunk_bytes: u64,
) -> Result<u64, BlobnodeError> {
    let candidates = {
        let engine = Arc::clone(engine);
        tokio::task::spawn_blocking(move || candidates(&engine, config.threshold, min_chunk_bytes)).await??
    };
    let mut moved = 0;
    for chunk in candidates {
        moved += compact_chunk(engine, chunk, config.bytes_per_s).await?;
    }
    Ok(moved)
}

fn candidates(engine: &Engine, threshold: f64, min_chunk_bytes: u64) -> Result<Vec<u32>, BlobnodeError> {
    let shared = engine.shared();
    // The newest chunk is the one being written: never a candidate.
    let newest = shared.chunks.read().ok().and_then(|map| map.keys().max().copied());
    let mut out = Vec::new();
    for (id, stats) in shared.index.chunk_stats()? {
        let Some(chunk) = shared.chunk(id) else { continue };
        if Some(id) == newest {
            continue;
        }
        let size = chunk.len()?.saturating_sub(CHUNK_HEADER_BYTES);
        if size < min_chunk_bytes.max(1) {
            continue;
        }
        if (stats.live_bytes as f64) < threshold * size as f64 {
            tracing::info!(chunk = %chunk.path().display(), live = stats.live_bytes, size, "compacting chunk");
            out.push(id);
        }
    }
    Ok(out)
}

async fn compact_chunk(engine: &Arc<Engine>, chunk: u32, bytes_per_s: u64) -> Result<u64, BlobnodeError> {
    let records = {
        let engine = Arc::clone(engine);
        tokio::task::spawn_blocking(move || engine.shared().index.records_in(chunk)).await??
    };
    let mut moved = 0;
    for (offset, key) in records {
        let started = Instant::now();
        let copied = {
            let engine = Arc::clone(engine);
            tokio::task::spawn_blocking(move || read_copy(&engine, chunk, offset, key)).await?
        };
        let (sealed, from) = match copied {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(error) => {
                // Left in place for the scrubber to report and repair to rebuild; the chunk stays until then.
                tracing::warn!(chunk, offset, %error, "cannot move a record; leaving it");
                continue;
            }
        };
        let bytes = sealed.header.record_bytes();
        engine.relocate(sealed, from).await?;
        engine.counters().compacted_bytes.fetch_add(bytes, Ordering::Relaxed);
        moved += 1;
        pace(started, bytes, bytes_per_s).await;
    }
    Ok(moved)
}

/// The record at (chunk, offset) as a fresh sealed copy, if the index still points there; verified on the way.
fn read_copy(
    engine: &Engine,
    chunk: u32,
    offset: u64,
    key: ShardKey,
) -> Result<Option<(record::SealedShard, crate::index::Location)>, BlobnodeError> {
    let Some(location) = engine.shared().index.get(&key)? else { return Ok(None) };
    if location.chunk != chunk || location.offset != offset {
        return Ok(None);
    }
    let shard = engine.open_at(&key, location)?;
    let data = shard.read_range(0..location.shard_len)?;
    let crc = shard.header().crc32c;
    let mut image = ShardImage::new(key, location.shard_len, engine.pool())?;
    image.append(&data)?;
    // Sealing recomputes every block CRC and checks the whole against the stored one: both sides of the copy.
    Ok(Some((image.seal(crc)?, location)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::engine::tests::{key, open, packs_pattern, put_packs, read_all, unique_key};
    use crate::record::tests::{pattern, seal_key};
    use crate::store::tests::test_config;

    #[tokio::test]
    async fn sparse_chunks_are_rewritten_and_removed_without_losing_a_shard() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), EngineConfig { chunk_bytes: 4 << 20, ..test_config() });
        // 24 shards of ~500 KB, eight records per 4 MiB chunk: chunks 1 and 2 finished, chunk 3 active.
        for n in 0..24 {
            engine.put(seal_key(key(n), &pattern(500_000, n))).await.expect("put");
        }
        for data in [0u32, 1, 2] {
            engine.delete(format!("data-{data}").into_bytes()).await.expect("delete");
        }
        let chunks = || std::fs::read_dir(dir.path().join("chunks")).expect("list").count();
        let before = chunks();
        // Chunk 1 emptied (and removed) by the deletes; chunk 2 keeps half its records live.
        let config = CompactConfig { threshold: 0.6, bytes_per_s: 0 };
        let moved = compact_once(&engine, config, 0).await.expect("compact");
        assert_eq!(moved, 4, "the live half of chunk 2");
        let chunk2 = dir.path().join("chunks").join(crate::chunk::file_name(2));
        assert!(!chunk2.exists(), "the compacted chunk is removed ({before} chunks before, {} after)", chunks());
        for n in 12..24 {
            assert_eq!(read_all(&engine, &key(n)).expect("read"), pattern(500_000, n), "shard {n}");
        }
        // And the moved records are where a restart finds them.
        drop(engine);
        let engine = open(dir.path(), test_config());
        for n in 12..24 {
            assert_eq!(read_all(&engine, &key(n)).expect("read"), pattern(500_000, n), "shard {n}");
        }
        assert!(matches!(engine.open_shard(&key(0)), Err(BlobnodeError::NoSuchShard(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn packed_shards_move_and_their_old_chunks_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), EngineConfig { chunk_bytes: 4 << 20, ..test_config() });
        let packs = put_packs(&engine, 32).await;
        // Every 1 MiB record and every other packed shard go: the chunks written are mostly dead.
        let mut kept = Vec::new();
        // put_packs puts rounds of 32 shards, 24 of them packed.
        let rounds = (packs.values().map(Vec::len).sum::<usize>() / 24) as u32;
        for n in 0..rounds * 32 {
            if n % 4 == 0 || n % 2 == 1 {
                engine.delete(unique_key(n).data_id).await.expect("delete");
            } else {
                kept.push(n);
            }
        }
        let chunks = || std::fs::read_dir(dir.path().join("chunks")).expect("list").count();
        let before = chunks();
        let config = CompactConfig { threshold: 0.9, bytes_per_s: 0 };
        let moved = compact_once(&engine, config, 0).await.expect("compact");
        assert!(moved > 0, "nothing moved out of {before} chunks");
        assert!(chunks() < before, "{before} chunks before, {} after", chunks());
        for &n in &kept {
            assert_eq!(read_all(&engine, &unique_key(n)).expect("read"), packs_pattern(n), "shard {n}");
        }
        // And the moved shards are where a rebuild from the chunk files finds them; the deleted ones stay gone.
        drop(engine);
        std::fs::remove_dir_all(dir.path().join("index")).expect("lose the index");
        let engine = open(dir.path(), test_config());
        for n in 0..rounds * 32 {
            match read_all(&engine, &unique_key(n)) {
                Ok(data) => {
                    assert!(kept.contains(&n), "deleted shard {n} came back");
                    assert_eq!(data, packs_pattern(n), "shard {n}");
                }
                Err(BlobnodeError::NoSuchShard(_)) => assert!(!kept.contains(&n), "kept shard {n} is gone"),
                Err(other) => panic!("shard {n}: {other}"),
            }
        }
    }
}
