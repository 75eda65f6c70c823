//! One measured run of a workload against one target: bucket, prepared data set, warm-up, measurement, cleanup.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::data::{self, OFFSET_SPREAD, ObjRef};
use crate::mix::Mix;
use crate::s3::{OpError, OpResult, S3Conn, TargetConfig};
use crate::size::SizeSpec;
use crate::stats::{Collector, Op, Recorder, RunStats};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Put,
    Get,
    Mixed,
    List,
    Multipart,
}

/// What every run of an invocation shares.
#[derive(Debug, Clone)]
pub struct Params {
    pub workload: Workload,
    pub size: SizeSpec,
    pub part_size: u64,
    pub concurrency: usize,
    pub duration: Duration,
    pub ops: Option<u64>,
    pub warmup: Duration,
    pub objects: u64,
    pub bucket: String,
    pub mix: Mix,
    pub verify_every: u64,
    pub max_keys: u32,
    pub cleanup: bool,
    /// The objects' key prefix; `None`: a random one per run.
    pub dir: Option<String>,
    pub progress: bool,
}

/// State shared by the workers of a run.
struct Shared {
    params: Params,
    buffer: Bytes,
    recorder: Recorder,
    stop: AtomicBool,
    /// Measured operations started so far (for `--ops`).
    tickets: AtomicU64,
    /// The prepared set (get) or the live objects (mixed); entries in use by a worker are taken out.
    pool: Mutex<Vec<ObjRef>>,
    prepared: Vec<ObjRef>,
    list_dir: String,
    dir: String,
}

fn progress_bar(enabled: bool, len: u64, template: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stdout());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Runs the workload once against `target`, labelled `label` in the progress line.
pub async fn run(target: Arc<TargetConfig>, label: &str, params: &Params, buffer: Bytes) -> anyhow::Result<RunStats> {
    let mut conn = S3Conn::new(target.clone());
    let bucket = &params.bucket;
    let exists = conn.head_bucket(bucket).await.with_context(|| format!("{label}: HEAD bucket {bucket}"))?;
    let created = !exists && conn.create_bucket(bucket).await.with_context(|| format!("{label}: creating {bucket}"))?;
    let dir = match &params.dir {
        Some(dir) => dir.clone(),
        None => format!("coffer-loadtest-{:08x}/", rand::rng().random::<u32>()),
    };

    let result = measure(&target, label, params, buffer, &dir).await;

    if params.cleanup {
        if let Err(e) = cleanup(&target, label, params, &dir, created).await {
            eprintln!("{label}: cleanup failed: {e:#}");
        }
    } else {
        eprintln!("{label}: --no-cleanup: leaving s3://{bucket}/{dir}");
    }
    result
}

async fn measure(
    target: &Arc<TargetConfig>,
    label: &str,
    params: &Params,
    buffer: Bytes,
    dir: &str,
) -> anyhow::Result<RunStats> {
    let list_dir = data::list_dir(dir, params.objects);
    let prepared = match params.workload {
        Workload::Get | Workload::Mixed => {
            prepare(target, label, params, &buffer, &format!("{dir}prep/"), |_| String::new()).await?
        }
        Workload::List => prepare(target, label, params, &buffer, &list_dir, |i| format!("{i:08}")).await?,
        Workload::Put | Workload::Multipart => Vec::new(),
    };
    let pool = if params.workload == Workload::Mixed { prepared.clone() } else { Vec::new() };
    let shared = Arc::new(Shared {
        params: params.clone(),
        buffer,
        recorder: Recorder::new(params.concurrency),
        stop: AtomicBool::new(false),
        tickets: AtomicU64::new(0),
        pool: Mutex::new(pool),
        prepared,
        list_dir,
        dir: dir.to_string(),
    });

    let mut workers = JoinSet::new();
    for index in 0..params.concurrency {
        workers.spawn(worker(shared.clone(), S3Conn::new(target.clone()), index));
    }

    if !params.warmup.is_zero() {
        let bar = progress_bar(params.progress, params.warmup.as_millis() as u64, "{msg} [{bar:30}] {elapsed}");
        bar.set_message(format!("{label}: warming up"));
        let end = Instant::now() + params.warmup;
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100).min(end.saturating_duration_since(Instant::now()))).await;
            bar.set_position(
                params.warmup.saturating_sub(end.saturating_duration_since(Instant::now())).as_millis() as u64
            );
        }
        bar.finish_and_clear();
    }

    shared.recorder.set_measuring(true);
    let start = Instant::now();
    let mut collector = Collector::new(start);
    let (len, template) = match params.ops {
        Some(n) => (n, "{msg} [{bar:30}] {pos}/{len} ops"),
        None => (params.duration.as_secs().max(1), "{msg} [{bar:30}] {elapsed}/{len}s"),
    };
    let bar = progress_bar(params.progress, len, template);
    bar.set_message(format!("{label}: measuring"));
    let mut ticker = tokio::time::interval_at((start + Duration::from_secs(1)).into(), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::sleep_until((start + params.duration).into());
    tokio::pin!(deadline);
    let mut measured_ops = 0u64;
    let end = loop {
        tokio::select! {
            _ = ticker.tick() => {
                let point = collector.drain(&shared.recorder, Instant::now());
                measured_ops += point.ops.iter().map(|p| p.ops + p.errors).sum::<u64>();
                bar.set_message(format!(
                    "{label}: {:.0} ops/s, {:.1} MiB/s, {} errors",
                    point.total_ops_per_s(),
                    point.total_mib_per_s(),
                    point.total_errors()
                ));
                bar.set_position(if params.ops.is_some() { measured_ops } else { start.elapsed().as_secs() });
            }
            _ = &mut deadline, if params.ops.is_none() => break Instant::now(),
            joined = workers.join_next() => match joined {
                None => break Instant::now(),
                Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Some(_) => {}
            },
        }
    };
    collector.drain(&shared.recorder, end);
    shared.recorder.set_measuring(false);
    shared.stop.store(true, Ordering::Relaxed);
    bar.finish_and_clear();
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    Ok(collector.finish(end))
}

/// Uploads the prepared set: `params.objects` objects in `dir`, named `{dir}{name(i)}-{off}-{size}` (or the usual
/// `{dir}{i}-{off}-{size}` when `name` returns an empty string).
async fn prepare(
    target: &Arc<TargetConfig>,
    label: &str,
    params: &Params,
    buffer: &Bytes,
    dir: &str,
    name: impl Fn(u64) -> String,
) -> anyhow::Result<Vec<ObjRef>> {
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let objects: Vec<ObjRef> = (0..params.objects)
        .map(|i| {
            let (off, size) = (rng.random_range(0..OFFSET_SPREAD), params.size.sample(&mut rng));
            let custom = name(i);
            if custom.is_empty() {
                ObjRef::new(dir, i, off, size)
            } else {
                ObjRef { key: format!("{dir}{custom}-{off}-{size}"), off, size }
            }
        })
        .collect();
    let objects = Arc::new(objects);
    let next = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(params.progress, params.objects, "{msg} [{bar:30}] {pos}/{len}");
    bar.set_message(format!("{label}: preparing objects"));
    let mut tasks = JoinSet::new();
    for _ in 0..params.concurrency.clamp(1, 32) {
        let (objects, next, buffer, bucket, bar) =
            (objects.clone(), next.clone(), buffer.clone(), params.bucket.clone(), bar.clone());
        let mut conn = S3Conn::new(target.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(object) = objects.get(i) else { return Ok(()) };
                let body = object.body(&buffer).ok_or_else(|| OpError::bad_content("object beyond the buffer"))?;
                let mut result = conn.put_object(&bucket, &object.key, body.clone()).await;
                if result.is_err() {
                    // One retry: a prepared set with a hole would make the measured run fail.
                    result = conn.put_object(&bucket, &object.key, body).await;
                }
                result.map_err(|e| OpError::new(e.code.clone(), format!("PUT {}: {}", object.key, e.detail)))?;
                bar.inc(1);
            }
        });
    }
    let mut first_error: Option<OpError> = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                next.store(u64::MAX / 2, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => bail!("{label}: preparing objects: {e}"),
        }
    }
    bar.finish_and_clear();
    if let Some(e) = first_error {
        bail!("{label}: preparing {} objects failed: {e}", params.objects);
    }
    Arc::try_unwrap(objects).or_else(|shared| Ok(shared.as_ref().clone()))
}

/// Deletes everything under `dir` (listing it, then DeleteObjects in batches, or one DELETE per key where
/// DeleteObjects is not available) and the bucket when this run created it.
async fn cleanup(
    target: &Arc<TargetConfig>,
    label: &str,
    params: &Params,
    dir: &str,
    created_bucket: bool,
) -> anyhow::Result<()> {
    let mut conn = S3Conn::new(target.clone());
    let bucket = &params.bucket;
    let mut token: Option<String> = None;
    let mut batches = 0;
    let mut failed = 0;
    let mut multi_delete = true;
    loop {
        let page = conn.list_page(bucket, dir, token.as_deref(), 1000).await.context("listing what to delete")?;
        if !page.keys.is_empty() {
            batches += 1;
            if batches == 1 && params.progress {
                eprintln!("{label}: cleaning up s3://{bucket}/{dir}");
            }
            if multi_delete {
                match conn.delete_objects(bucket, &page.keys).await {
                    Ok(n) => failed += n,
                    Err(e) if e.code == "NotImplemented" || e.code == "MethodNotAllowed" => multi_delete = false,
                    Err(e) => return Err(e).context("DeleteObjects"),
                }
            }
            if !multi_delete {
                for key in &page.keys {
                    if conn.delete_object(bucket, key).await.is_err() {
                        failed += 1;
                    }
                }
            }
        }
        // Deleting what a page listed does not invalidate its continuation token.
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    if failed > 0 {
        bail!("{failed} objects under s3://{bucket}/{dir} could not be deleted");
    }
    if created_bucket {
        conn.delete_bucket(bucket).await.with_context(|| format!("deleting the bucket {bucket} this run created"))?;
    }
    Ok(())
}

/// Per-worker state of the list workload: where its walk through the listing is.
#[derive(Default)]
struct ListWalk {
    token: Option<String>,
    seen: u64,
}

async fn worker(shared: Arc<Shared>, mut conn: S3Conn, index: usize) {
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let params = &shared.params;
    let bucket = params.bucket.as_str();
    let dir = format!("{}w{index}/", shared.dir);
    let mut seq = 0u64;
    let mut gets = 0u64;
    let mut walk = ListWalk::default();
    while !shared.stop.load(Ordering::Relaxed) {
        let measured = shared.recorder.measuring();
        if measured
            && let Some(limit) = params.ops
            && shared.tickets.fetch_add(1, Ordering::Relaxed) >= limit
        {
            break;
        }
        let op = match params.workload {
            Workload::Put => Op::Put,
            Workload::Get => Op::Get,
            Workload::Mixed => params.mix.pick(&mut rng),
            Workload::List => Op::List,
            Workload::Multipart => Op::Multipart,
        };
        let recorder = &shared.recorder;
        match op {
            Op::Put => {
                seq += 1;
                let object = ObjRef::new(&dir, seq, rng.random_range(0..OFFSET_SPREAD), params.size.sample(&mut rng));
                let started = Instant::now();
                let result = match object.body(&shared.buffer) {
                    Some(body) => conn.put_object(bucket, &object.key, body).await,
                    None => Err(OpError::bad_content("object beyond the buffer")),
                };
                recorder.record(index, Op::Put, measured, started.elapsed(), object.size, &result);
                if result.is_ok() && params.workload == Workload::Mixed {
                    lock(&shared.pool).push(object);
                }
            }
            Op::Get | Op::Stat | Op::Delete => {
                let object = if params.workload == Workload::Get {
                    let i = rng.random_range(0..shared.prepared.len().max(1));
                    shared.prepared.get(i).cloned()
                } else {
                    checkout(&shared.pool, &mut rng)
                };
                let Some(object) = object else {
                    // Nothing to read or delete right now (all objects in use or deleted): write one instead.
                    // The ticket is spent on the next loop turn's PUT only when measuring, so give this one back.
                    if measured && params.ops.is_some() {
                        shared.tickets.fetch_sub(1, Ordering::Relaxed);
                    }
                    tokio::task::yield_now().await;
                    if params.workload == Workload::Mixed {
                        let _ = mixed_put(&shared, &mut conn, &dir, &mut seq, &mut rng, index, measured).await;
                    }
                    continue;
                };
                let started = Instant::now();
                let keep = match op {
                    Op::Get => {
                        gets += 1;
                        let verify = params.verify_every > 0 && gets.is_multiple_of(params.verify_every);
                        let expected = if verify { object.content(&shared.buffer) } else { None };
                        let result = conn.get_object(bucket, &object.key, object.size, expected).await;
                        recorder.record(index, Op::Get, measured, started.elapsed(), object.size, &result);
                        if verify && result.is_ok() {
                            recorder.verified(index, measured);
                        }
                        true
                    }
                    Op::Stat => {
                        let result = conn.head_object(bucket, &object.key, object.size).await;
                        recorder.record(index, Op::Stat, measured, started.elapsed(), 0, &result);
                        true
                    }
                    _ => {
                        let result = conn.delete_object(bucket, &object.key).await;
                        recorder.record(index, Op::Delete, measured, started.elapsed(), 0, &result);
                        result.is_err()
                    }
                };
                if keep && params.workload == Workload::Mixed {
                    lock(&shared.pool).push(object);
                }
            }
            Op::List => {
                let started = Instant::now();
                let result = list_step(&mut conn, bucket, &shared.list_dir, params, &mut walk).await;
                recorder.record(index, Op::List, measured, started.elapsed(), 0, &result);
                if result.is_err() {
                    walk = ListWalk::default();
                }
            }
            Op::Multipart | Op::UploadPart => {
                seq += 1;
                let object = ObjRef::new(&dir, seq, rng.random_range(0..OFFSET_SPREAD), params.size.sample(&mut rng));
                let started = Instant::now();
                let result = multipart(&mut conn, &shared, &object, index, measured).await;
                recorder.record(index, Op::Multipart, measured, started.elapsed(), object.size, &result);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A worker that panicked while holding the pool ends the run anyway; its data is still consistent.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes a random object out of the pool (so no other worker deletes it while it is read).
fn checkout(pool: &Mutex<Vec<ObjRef>>, rng: &mut SmallRng) -> Option<ObjRef> {
    let mut pool = lock(pool);
    if pool.is_empty() {
        return None;
    }
    let i = rng.random_range(0..pool.len());
    Some(pool.swap_remove(i))
}

async fn mixed_put(
    shared: &Shared,
    conn: &mut S3Conn,
    dir: &str,
    seq: &mut u64,
    rng: &mut SmallRng,
    index: usize,
    measured: bool,
) -> OpResult<()> {
    if measured
        && let Some(limit) = shared.params.ops
        && shared.tickets.fetch_add(1, Ordering::Relaxed) >= limit
    {
        return Ok(());
    }
    *seq += 1;
    let object = ObjRef::new(dir, *seq, rng.random_range(0..OFFSET_SPREAD), shared.params.size.sample(rng));
    let started = Instant::now();
    let result = match object.body(&shared.buffer) {
        Some(body) => conn.put_object(&shared.params.bucket, &object.key, body).await,
        None => Err(OpError::bad_content("object beyond the buffer")),
    };
    shared.recorder.record(index, Op::Put, measured, started.elapsed(), object.size, &result);
    if result.is_ok() {
        lock(&shared.pool).push(object);
    }
    result
}

/// One page of the walk through the prepared listing; a finished walk must have seen every prepared object.
async fn list_step(
    conn: &mut S3Conn,
    bucket: &str,
    list_dir: &str,
    params: &Params,
    walk: &mut ListWalk,
) -> OpResult<()> {
    let page = conn.list_page(bucket, list_dir, walk.token.as_deref(), params.max_keys).await?;
    walk.seen += page.keys.len() as u64;
    match page.next_token {
        Some(token) => walk.token = Some(token),
        None => {
            let seen = std::mem::take(&mut walk.seen);
            walk.token = None;
            if seen != params.objects {
                return Err(OpError::bad_content(format!("listing returned {seen} keys, expected {}", params.objects)));
            }
        }
    }
    Ok(())
}

/// CreateMultipartUpload, the parts one after the other (each recorded as UPLOADPART), Complete; on failure the
/// upload is aborted.
async fn multipart(conn: &mut S3Conn, shared: &Shared, object: &ObjRef, index: usize, measured: bool) -> OpResult<()> {
    let bucket = shared.params.bucket.as_str();
    let part_size = shared.params.part_size.max(1);
    let upload_id = conn.create_multipart(bucket, &object.key).await?;
    let mut parts = Vec::new();
    let mut result = Ok(());
    let mut offset = 0u64;
    let mut number = 1u32;
    loop {
        let len = part_size.min(object.size - offset);
        let part = ObjRef { key: String::new(), off: object.off + offset, size: len };
        let Some(body) = part.body(&shared.buffer) else {
            result = Err(OpError::bad_content("part beyond the buffer"));
            break;
        };
        let started = Instant::now();
        let uploaded = conn.upload_part(bucket, &object.key, &upload_id, number, body).await;
        shared.recorder.record(index, Op::UploadPart, measured, started.elapsed(), len, &uploaded);
        match uploaded {
            Ok(etag) => parts.push((number, etag)),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        offset += len;
        number += 1;
        if offset >= object.size {
            break;
        }
    }
    if result.is_ok() {
        result = conn.complete_multipart(bucket, &object.key, &upload_id, &parts).await;
    }
    if result.is_err() {
        let _ = conn.abort_multipart(bucket, &object.key, &upload_id).await;
    }
    result
}
