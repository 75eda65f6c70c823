//! `coffer-loadtest`: a warp-class S3 load generator. It drives an S3 endpoint with PUT, GET, mixed, list or
//! multipart load from a lean hyper + SigV4 client, reports throughput and latency percentiles per operation,
//! errors by S3 code, a per-second series (`--json`, `--plot`), and can measure the same workload against an
//! in-process null S3 endpoint (`--ceiling`) or a second endpoint (`--compare`) to put the figures in proportion.
//! `crash` is the crash-consistency harness: split roles as processes killed at random under a checked workload.

mod crash;
mod data;
mod mix;
mod null;
mod plot;
mod report;
mod run;
mod s3;
mod size;
mod stats;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::mix::Mix;
use crate::null::NullServer;
use crate::report::{Report, Series};
use crate::run::{Params, Workload};
use crate::s3::{Endpoint, TargetConfig};
use crate::size::{SizeDist, SizeSpec, format_bytes, parse_bytes};
use crate::stats::{RunStats, mib_per_second, per_second};

#[derive(Parser)]
#[command(name = "coffer-loadtest", version, about = "S3 load generator: throughput and latency of an S3 endpoint")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// PUT new objects.
    Put(RunArgs),
    /// GET objects of a prepared set (every `--verify-every`th GET is checked byte for byte).
    Get(RunArgs),
    /// Weighted GET/PUT/DELETE/STAT over a prepared set that PUTs grow and DELETEs shrink (`--mix`).
    Mixed(RunArgs),
    /// ListObjectsV2 pages (`--max-keys`) through a prepared set of `--objects` objects.
    List(RunArgs),
    /// CreateMultipartUpload, UploadPart of `--part-size` parts, CompleteMultipartUpload.
    Multipart(RunArgs),
    /// Run the null S3 endpoint alone (what `--ceiling` measures against).
    NullServer(NullArgs),
    /// Crash consistency: run the split roles as processes, kill -9 one at random every few seconds under a mixed
    /// workload, and check every read and a final listing against the journal of acknowledged writes.
    Crash(crash::CrashArgs),
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// S3 endpoint (http only; buckets are addressed path-style).
    #[arg(long, env = "COFFER_LOADTEST_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "cofferadmin")]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", default_value = "cofferadmin", hide_env_values = true)]
    secret_key: String,
    /// Region to sign for.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[arg(long, default_value = "coffer-loadtest")]
    bucket: String,
    /// Object size, fixed (4KiB) or a range (1KiB..1MiB). Default 4KiB, and 16MiB for multipart.
    #[arg(long)]
    size: Option<SizeSpec>,
    /// How sizes of a range are drawn.
    #[arg(long, value_enum, default_value_t = SizeDist::Uniform)]
    size_dist: SizeDist,
    /// Part size of the multipart workload (S3 wants at least 5MiB for all parts but the last).
    #[arg(long, default_value = "5MiB", value_parser = parse_bytes)]
    part_size: u64,
    /// Operations in flight (one worker and one keep-alive connection each).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How long to measure, after the warm-up.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Measure this many operations instead of a duration.
    #[arg(long)]
    ops: Option<u64>,
    /// Load before the measurement, excluded from the results.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Objects prepared before get, mixed and list runs. Default 256, and 1000 for list.
    #[arg(long)]
    objects: Option<u64>,
    /// Operation weights of the mixed workload.
    #[arg(long, default_value = "get=45,put=30,delete=10,stat=15")]
    mix: Mix,
    /// Check every Nth GET of a worker byte for byte (0: never); a mismatch is a BadContent error.
    #[arg(long, default_value_t = 16)]
    verify_every: u64,
    /// Keys per ListObjectsV2 page in the list workload.
    #[arg(long, default_value_t = 100)]
    max_keys: u32,
    /// Operations not answered within this count as Timeout errors.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Keep the objects (and the bucket) the run created.
    #[arg(long)]
    no_cleanup: bool,
    /// The key prefix (a directory, ending in `/`) of the run's objects, instead of a random
    /// `coffer-loadtest-XXXXXXXX/`: for a server whose layout must be prepared for known keys
    /// (metadata range groups, see loadtest/range-listing.sh).
    #[arg(long, value_parser = parse_dir)]
    dir: Option<String>,
    /// Also run the workload against an in-process null S3 endpoint, the ceiling of this client and machine,
    /// and report the server's figures as a ratio of it.
    #[arg(long)]
    ceiling: bool,
    /// Alternate runs against this second endpoint and report the ratios.
    #[arg(long)]
    compare: Option<String>,
    #[arg(long, requires = "compare")]
    compare_access_key: Option<String>,
    #[arg(long, requires = "compare", hide_env_values = true)]
    compare_secret_key: Option<String>,
    /// Repeat the runs (targets alternate within each round); figures add up over rounds.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Write everything (results, ratios, per-second series) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw throughput and latency percentiles over time into this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress display (it is also hidden when stdout is not a terminal).
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct NullArgs {
    #[arg(long, default_value = "127.0.0.1:9099")]
    listen: SocketAddr,
    /// Largest object a GET can return.
    #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
    max_size: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (workload, args) = match cli.command {
        Command::Put(args) => (Workload::Put, args),
        Command::Get(args) => (Workload::Get, args),
        Command::Mixed(args) => (Workload::Mixed, args),
        Command::List(args) => (Workload::List, args),
        Command::Multipart(args) => (Workload::Multipart, args),
        Command::NullServer(args) => return null_server(args).await,
        Command::Crash(args) => std::process::exit(crash::main(args).await),
    };
    load_test(workload, args).await
}

async fn null_server(args: NullArgs) -> anyhow::Result<()> {
    let buffer = data::pattern(data::buffer_len(args.max_size)?);
    let server = NullServer::start(args.listen, buffer).await?;
    println!("null S3 endpoint on {} (objects up to {}); Ctrl-C stops it", server.url(), format_bytes(args.max_size));
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        result = server.wait() => result?,
    }
    Ok(())
}

fn params(workload: Workload, args: &RunArgs, progress: bool) -> anyhow::Result<Params> {
    let default_size = if workload == Workload::Multipart { SizeSpec::fixed(16 << 20) } else { SizeSpec::fixed(4096) };
    let size = args.size.unwrap_or(default_size).with_dist(args.size_dist);
    let objects = args.objects.unwrap_or(if workload == Workload::List { 1000 } else { 256 });
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.ops == Some(0) {
        bail!("--ops must be at least 1");
    }
    if args.ops.is_none() && args.duration.is_zero() {
        bail!("--duration must be positive");
    }
    if matches!(workload, Workload::Get | Workload::List) && objects == 0 {
        bail!("--objects must be at least 1 for {workload:?} runs");
    }
    if args.max_keys == 0 || args.max_keys > 1000 {
        bail!("--max-keys must be between 1 and 1000");
    }
    if args.part_size == 0 {
        bail!("--part-size must be positive");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if workload == Workload::Multipart && size.max.div_ceil(args.part_size) > 10_000 {
        bail!(
            "objects of up to {} need more than 10000 parts of {}",
            format_bytes(size.max),
            format_bytes(args.part_size)
        );
    }
    if workload == Workload::Mixed && objects < args.concurrency as u64 {
        eprintln!(
            "note: fewer prepared objects ({objects}) than workers ({}): early GETs may become PUTs",
            args.concurrency
        );
    }
    Ok(Params {
        workload,
        size,
        part_size: args.part_size,
        concurrency: args.concurrency,
        duration: args.duration,
        ops: args.ops,
        warmup: args.warmup,
        objects,
        bucket: args.bucket.clone(),
        mix: args.mix.clone(),
        verify_every: args.verify_every,
        max_keys: args.max_keys,
        cleanup: !args.no_cleanup,
        dir: args.dir.clone(),
        progress,
    })
}

fn parse_dir(text: &str) -> Result<String, String> {
    if text.is_empty() || !text.ends_with('/') || text.starts_with('/') {
        return Err(format!("{text:?}: a directory is a non-empty key prefix ending in / (and not starting with one)"));
    }
    Ok(text.to_string())
}

async fn load_test(workload: Workload, args: RunArgs) -> anyhow::Result<()> {
    let progress = !args.quiet && std::io::stdout().is_terminal();
    let params = params(workload, &args, progress)?;
    let largest = if workload == Workload::Multipart { params.size.max.max(params.part_size) } else { params.size.max };
    let buffer = data::pattern(data::buffer_len(largest)?);

    let target = |name: &'static str, url: &str, access: &str, secret: &str| -> anyhow::Result<_> {
        let endpoint = Endpoint::parse(url)?;
        Ok((name, Arc::new(TargetConfig::new(endpoint, access, secret, &args.region, args.timeout))))
    };
    let mut null_server = None;
    let mut targets = Vec::new();
    if args.ceiling {
        let server = NullServer::start("127.0.0.1:0".parse()?, buffer.clone()).await?;
        targets.push(target("ceiling", &server.url(), &args.access_key, &args.secret_key)?);
        null_server = Some(server);
    }
    targets.push(target("server", &args.endpoint, &args.access_key, &args.secret_key)?);
    if let Some(url) = &args.compare {
        let access = args.compare_access_key.as_deref().unwrap_or(&args.access_key);
        let secret = args.compare_secret_key.as_deref().unwrap_or(&args.secret_key);
        targets.push(target("compare", url, access, secret)?);
    }

    let bound = match params.ops {
        Some(n) => format!("{n} ops"),
        None => humantime::format_duration(params.duration).to_string(),
    };
    let name = format!("{workload:?}").to_lowercase();
    let mut description = format!("{name}, size {}, concurrency {}, {bound}", params.size, params.concurrency);
    if workload == Workload::Mixed {
        description.push_str(&format!(", mix {}", params.mix));
    }
    if workload == Workload::Multipart {
        description.push_str(&format!(", parts of {}", format_bytes(params.part_size)));
    }
    eprintln!("coffer-loadtest {description} (warm-up {})", humantime::format_duration(params.warmup));

    let mut merged: Vec<(String, RunStats)> = Vec::new();
    let mut series = Vec::new();
    for round in 0..args.rounds {
        for (name, cfg) in &targets {
            let label = if args.rounds > 1 { format!("{name} (round {})", round + 1) } else { name.to_string() };
            let stats = run::run(cfg.clone(), &label, &params, buffer.clone()).await?;
            let ops = stats.total_ops();
            let bytes: u64 = stats.ops.values().map(|s| s.bytes).sum();
            eprintln!(
                "{label} ({}): {ops} ops in {:.2}s, {:.1} ops/s, {:.2} MiB/s, {} errors",
                cfg.endpoint.url,
                stats.elapsed.as_secs_f64(),
                per_second(ops, stats.elapsed),
                mib_per_second(bytes, stats.elapsed),
                stats.total_errors()
            );
            series.push(Series { target: name.to_string(), round, points: stats.series.clone() });
            match merged.iter_mut().find(|(n, _)| n == name) {
                Some((_, total)) => total.merge(&stats),
                None => merged.push((name.to_string(), stats)),
            }
        }
    }
    if let Some(server) = null_server {
        server.stop();
    }

    // Server first in the table, then what it is compared with.
    merged.sort_by_key(|(name, _)| match name.as_str() {
        "server" => 0,
        "compare" => 1,
        _ => 2,
    });
    let rows = report::rows(&merged);
    println!("\n{description}");
    print!("{}", report::table(&rows));

    if let Some(path) = &args.json {
        let document = Report {
            tool: "coffer-loadtest",
            version: env!("CARGO_PKG_VERSION"),
            workload,
            size: params.size.to_string(),
            size_min: params.size.min,
            size_max: params.size.max,
            size_dist: params.size.dist,
            part_size: (workload == Workload::Multipart).then_some(params.part_size),
            mix: (workload == Workload::Mixed).then(|| params.mix.to_string()),
            concurrency: params.concurrency,
            duration: params.duration.as_secs_f64(),
            ops: params.ops,
            warmup: params.warmup.as_secs_f64(),
            objects: params.objects,
            rounds: args.rounds,
            bucket: params.bucket.clone(),
            region: args.region.clone(),
            endpoint: args.endpoint.clone(),
            compare_endpoint: args.compare.clone(),
            ceiling: args.ceiling,
            timestamp: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            results: rows,
            series: series.clone(),
        };
        let json = serde_json::to_string_pretty(&document).context("encoding the results")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        let title = format!("coffer-loadtest {description}");
        let with_text = plot::write(path, &title, &series)?;
        let note = if with_text { "" } else { " (no font found: drawn without text; install fonts-dejavu-core)" };
        eprintln!("plot written to {}{note}", path.display());
    }
    Ok(())
}
