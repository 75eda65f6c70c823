//! `coffer-loadtest crash`: the crash-consistency harness. It runs the split roles as separate processes (one
//! metadata service or a Raft group of `--metadata-replicas`, `--blobnodes` blobnodes, one gateway, the repair
//! worker), drives a mixed workload (PUT, overwrite, multipart, DELETE, GET, HEAD, LIST) over a bounded key space
//! while killing a random service (any one replica of a group included) with SIGKILL every few seconds and starting
//! it again, and checks every read against its own journal of acknowledged writes. At the end it reads every key
//! and lists the bucket, kills every service at once, and checks everything again.
//!
//! `content` (deterministic object bytes), `journal` (the states a key may be in), `cluster` (the processes),
//! `group` (whether a metadata group has a leader every replica follows), `probe` (the write that ends a wait for
//! a group), `killer` (the kill schedule), `workload` (the workers), `verify` (the final check), `tally`
//! (counters, summary).
//!
//! Exit status: 0 when everything checked out, 1 on any mismatch, 2 when the harness itself failed (a service that
//! does not come back, a bad flag).

mod cluster;
mod content;
mod group;
mod journal;
mod killer;
mod probe;
mod tally;
mod verify;
mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use tokio::task::JoinSet;

use self::cluster::{Cluster, Launch, Victim};
use self::killer::{KillPlan, READY_TIMEOUT};
use self::tally::Summary;
use self::workload::Ctx;
use crate::s3::{Endpoint, TargetConfig};

const ACCESS_KEY: &str = "crash-admin";
const SECRET_KEY: &str = "crash-secret-key";
const BUCKET: &str = "crash";
/// The write probe's bucket (with a metadata group).
const PROBE_BUCKET: &str = "crash-probe";
/// Time for blobnodes to heartbeat after the cluster is ready again, before the final check.
const SETTLE: Duration = Duration::from_secs(3);
/// Mismatch details printed at the end (all of them go to `--json`, up to 100).
const PRINT_MISMATCHES: usize = 10;

#[derive(Args, Debug)]
pub struct CrashArgs {
    /// The coffer binary (default: `coffer` on PATH).
    #[arg(long, env = "COFFER_BIN")]
    coffer_bin: Option<PathBuf>,
    /// How long the workload runs while services are killed.
    #[arg(long, env = "COFFER_CRASH_DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Mean time between kills (each interval jittered ±50%); 0s kills nothing.
    #[arg(long, env = "COFFER_CRASH_KILL_EVERY", default_value = "5s", value_parser = humantime::parse_duration)]
    kill_every: Duration,
    /// Blobnodes to run (one disk each); at least k+m.
    #[arg(long, env = "COFFER_CRASH_BLOBNODES", default_value_t = 6)]
    blobnodes: usize,
    /// Metadata services: 1 runs one without replication; more run a Raft group of that many replicas (each one a
    /// victim of its own; every other role gets all their URLs).
    #[arg(long, env = "COFFER_CRASH_METADATA_REPLICAS", default_value_t = 1)]
    metadata_replicas: usize,
    /// Erasure code of the gateway, K+M.
    #[arg(long, env = "COFFER_CRASH_EC", default_value = "4+2")]
    ec: String,
    /// Workers (operations in flight).
    #[arg(long, env = "COFFER_CRASH_CONCURRENCY", default_value_t = 8)]
    concurrency: usize,
    /// Keys in the key space (bounded, so that objects get overwritten).
    #[arg(long, env = "COFFER_CRASH_KEYS", default_value_t = 200)]
    keys: usize,
    /// Seed of the workload, the object contents and the kill schedule (random by default; printed, so a run can
    /// be repeated).
    #[arg(long, env = "COFFER_CRASH_SEED")]
    seed: Option<u64>,
    /// Work dir for the services' data and logs (must be empty or new; default: a fresh dir in $TMPDIR). Removed
    /// after a clean run unless `--keep`, kept (and printed) otherwise.
    #[arg(long, env = "COFFER_CRASH_DIR")]
    dir: Option<PathBuf>,
    /// Write the summary as JSON here.
    #[arg(long, env = "COFFER_CRASH_JSON")]
    json: Option<PathBuf>,
    /// Keep the work dir after a clean run.
    #[arg(long, env = "COFFER_CRASH_KEEP")]
    keep: bool,
    /// An operation not answered within this counts as unavailable (longer than the gateway's --rpc-timeout, so
    /// that the gateway gives up first).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Runs the harness; returns the process exit status.
pub async fn main(args: CrashArgs) -> i32 {
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crash: harness failure: {e:#}");
            2
        }
    }
}

/// `K+M`.
fn parse_ec(ec: &str) -> anyhow::Result<(usize, usize)> {
    let (k, m) = ec.split_once('+').with_context(|| format!("--ec {ec:?}: expected K+M"))?;
    let k: usize = k.trim().parse().with_context(|| format!("--ec {ec:?}: bad K"))?;
    let m: usize = m.trim().parse().with_context(|| format!("--ec {ec:?}: bad M"))?;
    if k == 0 {
        bail!("--ec {ec:?}: K must be at least 1");
    }
    Ok((k, m))
}

/// The coffer binary: the flag (or COFFER_BIN), else `coffer` on PATH.
fn find_coffer(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        if !path.is_file() {
            bail!("no coffer binary at {}", path.display());
        }
        return Ok(path);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("coffer"))
        .find(|path| path.is_file())
        .context("no coffer binary: pass --coffer-bin or set COFFER_BIN")
}

/// Creates the work dir; an existing one must be empty (the journal starts from an empty store).
fn work_dir(flag: Option<PathBuf>, seed: u64) -> anyhow::Result<PathBuf> {
    let dir =
        flag.unwrap_or_else(|| std::env::temp_dir().join(format!("coffer-crash-{seed:x}-{}", std::process::id())));
    if dir.exists() && std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?.next().is_some() {
        bail!("work dir {} is not empty", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Links (or copies) the binary into the work dir, so that every start and restart of the run runs the same build
/// even when the original is rebuilt meanwhile.
fn pin_binary(bin: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let pinned = dir.join("coffer");
    if std::fs::hard_link(bin, &pinned).is_err() {
        std::fs::copy(bin, &pinned).with_context(|| format!("copying {} to {}", bin.display(), pinned.display()))?;
    }
    Ok(pinned)
}

async fn run(args: CrashArgs) -> anyhow::Result<i32> {
    let (k, m) = parse_ec(&args.ec)?;
    if args.blobnodes < k + m {
        bail!("--blobnodes {} is fewer than the {} disks --ec {} needs", args.blobnodes, k + m, args.ec);
    }
    if args.concurrency == 0 || args.keys == 0 || args.duration.is_zero() || args.metadata_replicas == 0 {
        bail!("--concurrency, --keys, --duration and --metadata-replicas must be positive");
    }
    let bin = find_coffer(args.coffer_bin.clone())?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let dir = work_dir(args.dir.clone(), seed)?;
    eprintln!(
        "crash: seed {seed}, {} for {}, a kill every ~{}, {} metadata, {} blobnodes, ec {}, concurrency {}, {} keys, \
         dir {}",
        bin.display(),
        humantime::format_duration(args.duration),
        humantime::format_duration(args.kill_every),
        if args.metadata_replicas == 1 { "one".to_string() } else { format!("{} replicas of", args.metadata_replicas) },
        args.blobnodes,
        args.ec,
        args.concurrency,
        args.keys,
        dir.display()
    );

    let launch = Launch {
        bin: pin_binary(&bin, &dir)?,
        dir: dir.clone(),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        blobnodes: args.blobnodes,
        ec: args.ec.clone(),
        metadata_replicas: args.metadata_replicas,
    };
    let mut cluster = Cluster::start(launch)?;
    let endpoint = Endpoint::parse(&format!("http://{}", cluster.gateway_addr))?;
    let cfg = Arc::new(TargetConfig::new(endpoint, ACCESS_KEY, SECRET_KEY, "us-east-1", args.timeout));
    let ctx = Arc::new(Ctx::new(cfg, BUCKET, args.keys, seed));

    let started = Instant::now();
    let result = drive(&args, &mut cluster, &ctx, seed).await;
    cluster.kill_all().await;
    drop(cluster);

    let mut summary = ctx.tally.summary();
    summary.tool = "coffer-loadtest crash";
    summary.seed = seed;
    summary.blobnodes = args.blobnodes;
    summary.metadata_replicas = args.metadata_replicas;
    summary.ec = args.ec.clone();
    summary.concurrency = args.concurrency;
    summary.keys = args.keys;
    summary.kill_every_s = args.kill_every.as_secs_f64();
    let code = match &result {
        Ok(drove) => {
            summary.duration_s = drove.workload.as_secs_f64();
            summary.resolved_none_took_effect = drove.outcome.none_took_effect;
            summary.resolved_took_effect = drove.outcome.took_effect;
            summary.final_present = drove.outcome.present;
            summary.full_restart_checked = true;
            if summary.mismatches > 0 { 1 } else { 0 }
        }
        Err(_) => 2,
    };
    if let Err(e) = &result {
        eprintln!("crash: harness failure after {:.0} s: {e:#}", started.elapsed().as_secs_f64());
        summary.duration_s = started.elapsed().as_secs_f64();
    }
    if code == 0 && !args.keep {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("crash: could not remove {}: {e}", dir.display());
        }
    } else {
        summary.dir = Some(dir.display().to_string());
        eprintln!("crash: kept the work dir {} (service logs: {}/*.log)", dir.display(), dir.display());
    }
    report(&summary, args.json.as_deref(), result.as_ref().err())?;
    Ok(code)
}

/// What `drive` measured besides the tally.
struct Drove {
    workload: Duration,
    outcome: verify::Outcome,
}

/// Starts, loads and kills the cluster, then runs the final checks.
async fn drive(args: &CrashArgs, cluster: &mut Cluster, ctx: &Arc<Ctx>, seed: u64) -> anyhow::Result<Drove> {
    let on_exit = |victim: Victim, status: std::process::ExitStatus| {
        let what = format!("{victim} exited by itself ({status}) at {:.1}s", ctx.at());
        eprintln!("crash: {what}");
        ctx.tally.unexpected_exit(what);
    };
    if cluster.is_group() {
        cluster.require_writes(probe::WriteProbe::new(ctx.cfg.clone(), PROBE_BUCKET));
    }
    cluster.wait_ready(READY_TIMEOUT, on_exit).await.context("starting the cluster")?;
    workload::create_bucket(ctx).await?;
    eprintln!("crash: cluster ready at http://{} after {:.1}s, bucket {BUCKET}", cluster.gateway_addr, ctx.at());

    let start = Instant::now();
    let until = start + args.duration;
    let mut workers = JoinSet::new();
    for index in 0..args.concurrency {
        workers.spawn(workload::worker(ctx.clone(), index));
    }
    let progress = tokio::spawn(progress(ctx.clone()));
    let killed = if args.kill_every.is_zero() {
        tokio::time::sleep_until(until.into()).await;
        Ok(())
    } else {
        let mut plan =
            KillPlan::new(content::mix64(seed ^ 0x4B11), args.kill_every, args.blobnodes, args.metadata_replicas);
        killer::run(cluster, &mut plan, until, ctx.start, &ctx.tally).await
    };
    ctx.stop.store(true, Ordering::Relaxed);
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    progress.abort();
    let workload = start.elapsed();
    killed?;
    eprintln!(
        "crash: workload done after {:.1}s: {} acknowledged, {} kills, {} unavailable, {} mismatches; final check",
        workload.as_secs_f64(),
        ctx.tally.total_acked(),
        ctx.tally.total_kills(),
        ctx.tally.total_unavailable(),
        ctx.tally.mismatch_count()
    );

    // Everything up, then every key and the listing.
    for (victim, status) in cluster.reap() {
        on_exit(victim, status);
    }
    cluster.spawn_missing()?;
    cluster.wait_ready(READY_TIMEOUT, on_exit).await.context("restarting the cluster for the final check")?;
    tokio::time::sleep(SETTLE).await;
    let checked = Instant::now();
    let outcome = verify::check_all(ctx, "final", args.concurrency).await;
    eprintln!(
        "crash: final check in {:.1}s: {} of {} keys present, unacknowledged writes settled: {} keys kept the \
         acknowledged state, {} took an unacknowledged write",
        checked.elapsed().as_secs_f64(),
        outcome.present,
        ctx.slots.len(),
        outcome.none_took_effect,
        outcome.took_effect
    );

    // Every service killed at once: what the final check saw must survive.
    cluster.kill_all().await;
    cluster.spawn_missing()?;
    cluster.wait_ready(READY_TIMEOUT, on_exit).await.context("restarting the cluster after killing all of it")?;
    tokio::time::sleep(SETTLE).await;
    let checked = Instant::now();
    verify::check_all(ctx, "after full restart", args.concurrency).await;
    eprintln!("crash: re-check after kill -9 of every service in {:.1}s", checked.elapsed().as_secs_f64());
    Ok(Drove { workload, outcome })
}

/// A status line every 10 s.
async fn progress(ctx: Arc<Ctx>) {
    let period = Duration::from_secs(10);
    let mut tick = tokio::time::interval_at((Instant::now() + period).into(), period);
    loop {
        tick.tick().await;
        eprintln!(
            "crash: [{:6.1}s] {} acknowledged, {} kills, {} unavailable, {} mismatches",
            ctx.at(),
            ctx.tally.total_acked(),
            ctx.tally.total_kills(),
            ctx.tally.total_unavailable(),
            ctx.tally.mismatch_count()
        );
    }
}

/// Prints the details, the unavailability by code and the summary line; writes the JSON.
fn report(summary: &Summary, json: Option<&Path>, failure: Option<&anyhow::Error>) -> anyhow::Result<()> {
    for m in summary.mismatch_details.iter().take(PRINT_MISMATCHES) {
        println!("mismatch: {} {} at {:.1}s: {}", m.check, m.key, m.at, m.detail);
    }
    if summary.mismatches as usize > PRINT_MISMATCHES {
        println!("… and {} more mismatches", summary.mismatches as usize - PRINT_MISMATCHES);
    }
    for exit in &summary.unexpected_exits {
        println!("unexpected exit: {exit}");
    }
    if !summary.unavailable_by_code.is_empty() {
        let codes: Vec<String> = summary.unavailable_by_code.iter().map(|(code, n)| format!("{code} {n}")).collect();
        println!("unavailable by error: {}", codes.join(", "));
    }
    println!("{}", summary.line());
    if let Some(path) = json {
        let mut value = serde_json::to_value(summary).context("encoding the summary")?;
        if let (Some(failure), Some(object)) = (failure, value.as_object_mut()) {
            object.insert("harness_failure".into(), format!("{failure:#}").into());
        }
        let text = serde_json::to_string_pretty(&value).context("encoding the summary")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_erasure_codes() {
        assert_eq!(parse_ec("4+2").expect("ec"), (4, 2));
        assert_eq!(parse_ec(" 10 + 4 ").expect("ec"), (10, 4));
        assert!(parse_ec("4").is_err() && parse_ec("0+2").is_err() && parse_ec("a+b").is_err());
    }
}
