//! `coffer-loadtest`: drives an S3 endpoint with PUT or GET load and reports throughput and
//! latency percentiles. This first cut uses the AWS SDK as its client; the load-test issue
//! replaces it with a leaner hyper + SigV4 client, adds the other workloads, ceilings and plots.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use md5::{Digest, Md5};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Workload {
    Put,
    Get,
}

#[derive(Parser)]
#[command(name = "coffer-loadtest", about = "S3 load generator")]
struct Args {
    workload: Workload,
    #[arg(long, env = "COFFER_LOADTEST_ENDPOINT")]
    endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    /// Object size, e.g. 4KiB or 64MiB.
    #[arg(long, default_value = "4KiB", value_parser = parse_size)]
    size: u64,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to measure (after warm-up).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Excluded from the results.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Objects uploaded before a GET run.
    #[arg(long, default_value_t = 64)]
    objects: usize,
    #[arg(long, default_value = "coffer-loadtest")]
    bucket: String,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}")),
    };
    Ok(n * mult)
}

struct Recorder {
    measuring: AtomicBool,
    latencies_us: std::sync::Mutex<Vec<u64>>,
    errors: AtomicU64,
    verified: AtomicU64,
}

fn client(args: &Args) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&args.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(&args.access_key, &args.secret_key, None, None, "loadtest"))
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

fn payload(size: u64) -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size as usize);
    Bytes::from(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let s3 = client(&args);
    match s3.create_bucket().bucket(&args.bucket).send().await {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
        Err(e) => return Err(e).context("creating the bucket"),
    }
    let body = payload(args.size);
    let expected_md5 = hex::encode(Md5::digest(&body));
    if args.workload == Workload::Get {
        for i in 0..args.objects {
            s3.put_object()
                .bucket(&args.bucket)
                .key(format!("obj-{i}"))
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .context("preparing objects")?;
        }
    }
    let recorder = Arc::new(Recorder {
        measuring: AtomicBool::new(false),
        latencies_us: std::sync::Mutex::new(Vec::new()),
        errors: AtomicU64::new(0),
        verified: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (s3, recorder, stop, counter) = (s3.clone(), recorder.clone(), stop.clone(), counter.clone());
        let (bucket, body, expected_md5, workload, objects) =
            (args.bucket.clone(), body.clone(), expected_md5.clone(), args.workload, args.objects);
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let ok = match workload {
                    Workload::Put => s3
                        .put_object()
                        .bucket(&bucket)
                        .key(format!("w{worker}/obj-{n}"))
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .is_ok(),
                    Workload::Get => {
                        let key = format!("obj-{}", n as usize % objects);
                        match s3.get_object().bucket(&bucket).key(key).send().await {
                            Ok(out) => match out.body.collect().await {
                                // Every 16th GET is checked byte for byte: a fast wrong answer must not count.
                                Ok(data) if n % 16 == 0 => {
                                    let good = hex::encode(Md5::digest(data.into_bytes())) == expected_md5;
                                    if good {
                                        recorder.verified.fetch_add(1, Ordering::Relaxed);
                                    }
                                    good
                                }
                                Ok(_) => true,
                                Err(_) => false,
                            },
                            Err(_) => false,
                        }
                    }
                };
                if recorder.measuring.load(Ordering::Relaxed) {
                    if ok {
                        let us = started.elapsed().as_micros() as u64;
                        if let Ok(mut l) = recorder.latencies_us.lock() {
                            l.push(us);
                        }
                    } else {
                        recorder.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(args.warmup).await;
    recorder.measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(args.duration).await;
    recorder.measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let mut lat = recorder.latencies_us.lock().map(|l| l.clone()).unwrap_or_default();
    if lat.is_empty() {
        bail!("no operation succeeded during the measurement ({} errors)", recorder.errors.load(Ordering::Relaxed));
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    let ops = lat.len() as f64 / elapsed;
    let mib = ops * args.size as f64 / (1024.0 * 1024.0);
    let op = match args.workload {
        Workload::Put => "PUT",
        Workload::Get => "GET",
    };
    println!(
        "{op} size={} concurrency={}: {ops:.1} ops/s, {mib:.1} MiB/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}",
        args.size,
        args.concurrency,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0),
        recorder.errors.load(Ordering::Relaxed)
    );
    if let Some(path) = &args.json {
        let json = format!(
            "{{\"results\":[{{\"target\":\"server\",\"op\":\"{op}\",\"size\":{},\"concurrency\":{},\"ops_per_s\":{ops:.3},\"mib_per_s\":{mib:.3},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"errors\":{}}}]}}\n",
            args.size,
            args.concurrency,
            pct(0.5),
            pct(0.99),
            recorder.errors.load(Ordering::Relaxed)
        );
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
