//! Shard put throughput of the storage engine against this disk's own ceilings, measured in the same run.
//!
//! Ceilings: (a) one 8 KiB O_DIRECT append + fdatasync per put, one writer: what a store that syncs every put
//! can do; (b) 1 MiB O_DIRECT sequential appends with one fdatasync at the end: the disk's streaming write speed.
//! Bound (c): 32 records written and synced as one batch, batch after batch, with no engine around them: the
//! most group commit can reach with 32 writers on this disk, for 8 KiB records (a 4 KiB shard with a header block
//! of its own) and for 4 KiB ones (what a packed 4 KiB shard costs, its pack header shared by the batch).
//! Engine: 4 KiB and 1 MiB shards with 1 and 32 concurrent writers, reporting puts/s, MiB/s and puts per fsync,
//! and the ratios the storage-engine issue sets (4 KiB × 32 ≥ 10× ceiling (a); 1 MiB × 32 ≥ 70% of ceiling (b)).
//!
//! `cargo bench --bench shard_engine` (release). `COFFER_BENCH_DIR` picks the disk (default: the temp dir);
//! `COFFER_BENCH_SECONDS` the duration of each engine run (default 5); `COFFER_BENCH_ONLY="4 KiB:32"` one case;
//! `COFFER_BENCH_WINDOW=200us` the committer's linger (`--commit-window`, default 100us); `COFFER_BENCH_PREALLOCATE=
//! false` plain-append chunks (`--chunk-preallocate`, default true). After the table, the two
//! targets are measured again with the ceiling and one engine taking turns in 1 s slices (`COFFER_BENCH_ONLY=
//! interleaved` runs only that): this disk's speed drifts by a quarter within minutes, and a ceiling measured once
//! at the start can make a ratio look a third better or worse than it is.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coffer_blobnode::{
    ALIGN, BufferPool, Disk, Engine, EngineConfig, ShardImage, ShardKey, StagingBuffer, shard_crc32c,
};

/// A new, empty O_DIRECT file for appending in the ceilings. Never an old one: overwriting blocks already written
/// spares fdatasync the file's metadata and flatters the ceiling.
fn direct_file(path: &std::path::Path) -> std::fs::File {
    OpenOptions::new().create(true).truncate(true).write(true).custom_flags(libc::O_DIRECT).open(path).expect("open")
}

/// `len` bytes, all `fill`, in the same kind of physically contiguous buffer the engine's writer stages batches in:
/// on this disk a write from scattered pages takes about twice as long, which would flatter the ratios.
fn filled(staging: &mut StagingBuffer, len: usize, fill: u8) -> &[u8] {
    let window = staging.window_mut(len).expect("a ceiling's buffer fits the staging buffer");
    window.fill(fill);
    window
}

fn bench_dir() -> tempfile::TempDir {
    let root = std::env::var_os("COFFER_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new().prefix("coffer-bench").tempdir_in(root).expect("bench dir")
}

/// (c) puts/s when `records` records of `record_bytes` each go to disk as one O_DIRECT write + one fdatasync, one
/// batch after another: the most any group commit of `records` writers can get from this disk with records of
/// this size, with no CPU spent on anything else.
fn device_bound(dir: &std::path::Path, records: usize, record_bytes: usize, seconds: f64) -> f64 {
    let file = direct_file(&dir.join(format!("bound-{records}x{record_bytes}")));
    let mut staging = StagingBuffer::new();
    let batch = filled(&mut staging, records * record_bytes, 0x3c);
    let started = Instant::now();
    let mut batches = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        file.write_all_at(batch, batches * batch.len() as u64).expect("write");
        file.sync_data().expect("fdatasync");
        batches += 1;
    }
    (batches * records as u64) as f64 / started.elapsed().as_secs_f64()
}

/// (b) MiB/s of 1 MiB O_DIRECT sequential appends, made durable by one fdatasync at the end.
fn ceiling_sequential(dir: &std::path::Path, total_mib: u64) -> f64 {
    let file = direct_file(&dir.join("ceiling-seq"));
    let mut staging = StagingBuffer::new();
    let block = filled(&mut staging, 1 << 20, 0xa5);
    let started = Instant::now();
    for i in 0..total_mib {
        file.write_all_at(block, i << 20).expect("write");
    }
    file.sync_data().expect("fdatasync");
    total_mib as f64 / started.elapsed().as_secs_f64()
}

struct Run {
    puts_per_s: f64,
    mib_per_s: f64,
    puts_per_sync: f64,
    p99_ms: f64,
}

async fn engine_run(dir: &std::path::Path, shard_bytes: usize, writers: usize, seconds: f64) -> Run {
    let engine = open_engine(dir).await;
    drive(&engine, &Arc::new(AtomicU64::new(0)), shard_bytes, writers, seconds).await
}

async fn open_engine(dir: &std::path::Path) -> Arc<Engine> {
    let disk = Disk::open(dir).expect("disk");
    let window = std::env::var("COFFER_BENCH_WINDOW").ok().and_then(|s| humantime::parse_duration(&s).ok());
    let window = window.unwrap_or(Duration::from_micros(100));
    // `--chunk-preallocate`, as `coffer blobnode` defaults to it; COFFER_BENCH_PREALLOCATE=false measures appends.
    let preallocate = std::env::var("COFFER_BENCH_PREALLOCATE").map_or(true, |v| v != "false");
    let config = EngineConfig { chunk_bytes: 1 << 30, preallocate, commit_window: window, reserve_bytes: 0 };
    Arc::new(
        tokio::task::spawn_blocking(move || Engine::open(disk, config, BufferPool::new(256 << 20)))
            .await
            .expect("join")
            .expect("engine"),
    )
}

/// `writers` tasks putting `shard_bytes` shards for `seconds`, under keys numbered on from `next` (shared with
/// later slices on the same engine, so that no key is written twice).
async fn drive(engine: &Arc<Engine>, next: &Arc<AtomicU64>, shard_bytes: usize, writers: usize, seconds: f64) -> Run {
    let data: Arc<Vec<u8>> = Arc::new((0..shard_bytes).map(|i| (i * 31 % 251) as u8).collect());
    let crc = shard_crc32c(&data);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let (puts0, syncs0) =
        (engine.counters().puts.load(Ordering::Relaxed), engine.counters().syncs.load(Ordering::Relaxed));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (engine, data, next) = (Arc::clone(engine), Arc::clone(&data), Arc::clone(next));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let key = ShardKey { data_id: n.to_be_bytes().to_vec(), stripe: 0, index: 0 };
                let t = Instant::now();
                let mut image = ShardImage::new(key, data.len() as u64, engine.pool()).expect("image");
                image.append(&data).expect("append");
                engine.put(image.seal(crc).expect("seal")).await.expect("put");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("writer"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let puts = engine.counters().puts.load(Ordering::Relaxed) - puts0;
    let syncs = engine.counters().syncs.load(Ordering::Relaxed) - syncs0;
    let p99 = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default();
    Run {
        puts_per_s: puts as f64 / elapsed,
        mib_per_s: puts as f64 * shard_bytes as f64 / elapsed / (1 << 20) as f64,
        puts_per_sync: puts as f64 / syncs.max(1) as f64,
        p99_ms: p99.as_secs_f64() * 1000.0,
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing else is taken.
    let seconds: f64 = std::env::var("COFFER_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = bench_dir();
    println!("disk: {}", dir.path().display());
    // (a) is (c) with a batch of one: every put its own O_DIRECT write + fdatasync.
    let sync_ceiling = device_bound(dir.path(), 1, 2 * ALIGN, seconds.min(3.0));
    let seq_ceiling = ceiling_sequential(dir.path(), 1024);
    println!("ceiling (a) 8 KiB O_DIRECT write + fdatasync per put, 1 writer: {sync_ceiling:9.0} puts/s");
    println!("ceiling (b) 1 MiB O_DIRECT sequential writes, 1 fdatasync:      {seq_ceiling:9.0} MiB/s");
    // What bounds the 4 KiB × 32 case: the disk's flush time grows with the bytes it flushes. A 4 KiB shard alone
    // is an 8 KiB record (its header has a block of its own); packed, 32 of them write 33 blocks.
    let bound_seconds = seconds.min(3.0);
    for (records, record_bytes) in [(32usize, 2 * ALIGN), (32, ALIGN)] {
        let bound = device_bound(dir.path(), records, record_bytes, bound_seconds);
        println!(
            "bound   (c) {records} × {:>2} KiB records, 1 write + 1 fdatasync:    {bound:9.0} puts/s = {:.1}x ceiling (a)",
            record_bytes / 1024,
            bound / sync_ceiling
        );
    }
    println!();
    println!(
        "{:>8} {:>8} {:>11} {:>9} {:>14} {:>9}  ratio",
        "shard", "writers", "puts/s", "MiB/s", "puts/fdatasync", "p99 ms"
    );
    for (shard_bytes, label) in [(4096usize, "4 KiB"), (1 << 20, "1 MiB")] {
        for writers in [1usize, 32] {
            // COFFER_BENCH_ONLY="4 KiB:32" runs one case (for profiling).
            if let Ok(only) = std::env::var("COFFER_BENCH_ONLY")
                && only != format!("{label}:{writers}")
            {
                continue;
            }
            let run_dir = tempfile::tempdir_in(dir.path()).expect("run dir");
            let run = runtime.block_on(engine_run(run_dir.path(), shard_bytes, writers, seconds));
            let ratio = if shard_bytes == 4096 {
                format!("{:.1}x ceiling (a)", run.puts_per_s / sync_ceiling)
            } else {
                format!("{:.0}% of ceiling (b)", 100.0 * run.mib_per_s / seq_ceiling)
            };
            println!(
                "{label:>8} {writers:>8} {:>11.0} {:>9.1} {:>14.1} {:>9.2}  {ratio}",
                run.puts_per_s, run.mib_per_s, run.puts_per_sync, run.p99_ms
            );
            if shard_bytes == 4096 && writers == 32 {
                // This disk's speed drifts over minutes; the bound measured right after says how much of what the
                // device allowed just then the engine took.
                let bound = device_bound(dir.path(), 32, ALIGN, bound_seconds);
                println!(
                    "{:>17} bound (c) 32 × 4 KiB right after: {bound:.0} puts/s; the engine reached {:.0}% of it",
                    "",
                    100.0 * run.puts_per_s / bound
                );
                // Ceiling (a) again, so that one slow or fast minute at the start does not decide the ratio.
                let sync_after = device_bound(dir.path(), 1, 2 * ALIGN, bound_seconds);
                println!(
                    "{:>17} ceiling (a) right after: {sync_after:.0} puts/s; against the mean of both: {:.1}x",
                    "",
                    2.0 * run.puts_per_s / (sync_ceiling + sync_after)
                );
            }
        }
    }
    if std::env::var("COFFER_BENCH_ONLY").is_ok_and(|only| only != "interleaved") {
        return;
    }
    interleaved(&runtime, dir.path());
}

/// Rounds in which a ceiling and the engine take turns, so that the disk's drift (a quarter within minutes) falls
/// on both alike.
const INTERLEAVED_ROUNDS: usize = 6;

/// The two targets measured again with the ceiling and one engine taking turns in short slices: the ratio of the
/// sums, and the spread of the rounds' own ratios.
fn interleaved(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) {
    println!();
    println!(
        "interleaved: {INTERLEAVED_ROUNDS} rounds, each a ceiling slice then a 1 s engine slice (one engine per case)"
    );
    for (shard_bytes, label) in [(4096usize, "4 KiB"), (1 << 20, "1 MiB")] {
        let run_dir = tempfile::tempdir_in(dir).expect("run dir");
        let engine = runtime.block_on(open_engine(run_dir.path()));
        let next = Arc::new(AtomicU64::new(0));
        let (mut engine_sum, mut ceiling_sum) = (0.0, 0.0);
        let mut ratios = Vec::new();
        for _ in 0..INTERLEAVED_ROUNDS {
            let ceiling =
                if shard_bytes == 4096 { device_bound(dir, 1, 2 * ALIGN, 1.0) } else { ceiling_sequential(dir, 512) };
            let run = runtime.block_on(drive(&engine, &next, shard_bytes, 32, 1.0));
            let achieved = if shard_bytes == 4096 { run.puts_per_s } else { run.mib_per_s };
            engine_sum += achieved;
            ceiling_sum += ceiling;
            ratios.push(achieved / ceiling);
        }
        ratios.sort_by(f64::total_cmp);
        let (low, high) = (ratios[0], ratios[ratios.len() - 1]);
        let n = INTERLEAVED_ROUNDS as f64;
        if shard_bytes == 4096 {
            println!(
                "{label:>8} × 32: {:.0} puts/s against ceiling (a) {:.0}: {:.1}x (rounds {low:.1}x to {high:.1}x)",
                engine_sum / n,
                ceiling_sum / n,
                engine_sum / ceiling_sum
            );
        } else {
            println!(
                "{label:>8} × 32: {:.0} MiB/s against ceiling (b) {:.0}: {:.0}% (rounds {:.0}% to {:.0}%)",
                engine_sum / n,
                ceiling_sum / n,
                100.0 * engine_sum / ceiling_sum,
                100.0 * low,
                100.0 * high
            );
        }
    }
}
