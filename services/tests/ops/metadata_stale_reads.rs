//! Bounded-staleness listings over a replicated metadata group of three processes: a gateway with
//! `--metadata-stale-list-ms` spreads S3 listings over every replica. While a writer PUTs and two
//! listers list, followers serve some of the listings (their `coffer_metadata_stale_reads_total`),
//! and no listing misses a key acknowledged more than the bound before it was sent. Then the leader
//! is frozen with SIGSTOP: followers refuse once their proof of freshness is older than the bound,
//! a new leader takes over, and listings fail — if at all — only within the failover window. What
//! was seen (staleness, refusals, errors and when) is printed, not asserted beyond that.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::metadata_group;
use crate::common::{Proc, blobnode_args_for, client, free_port, http_get_body, pattern, runtime, wait_ready};

/// The gateway's `--metadata-stale-list-ms`. Followers hear the leader every 250 ms and the leader
/// its majority as often, so a proof is up to ~0.5 s old in steady state.
const BOUND: Duration = Duration::from_millis(1000);
/// Unmeasured slack the design allows on top of the bound (message transit, task scheduling on a
/// busy two-core machine); a key older than bound + this must be listed.
const SLACK: Duration = Duration::from_millis(250);
/// The gateway's `--rpc-timeout`: how long a call to the frozen leader hangs before the client
/// moves on to another replica.
const RPC_TIMEOUT: Duration = Duration::from_secs(3);

struct Replica {
    url: String,
    metrics: SocketAddr,
    proc: Proc,
}

/// The index of the replica that reports itself leader, other than `not`.
fn wait_for_leader(rt: &tokio::runtime::Runtime, replicas: &[Replica], not: Option<usize>, limit: Duration) -> usize {
    let candidates: Vec<String> =
        replicas.iter().enumerate().filter(|(i, _)| Some(*i) != not).map(|(_, r)| r.url.clone()).collect();
    let (url, _) = metadata_group::wait_for_leader(rt, &candidates, limit)
        .unwrap_or_else(|| panic!("no leader among {candidates:?} within {limit:?}"));
    replicas.iter().position(|r| r.url == url).expect("one of ours")
}

/// The sum of a counter's series whose labels contain `label` (all series when empty).
fn counter(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0 // no series: 0, not -0
}

fn scrape(addr: SocketAddr) -> String {
    http_get_body(addr, "/metrics").unwrap_or_default()
}

/// Continues a stopped process when dropped, so that a failing test still stops it cleanly.
struct Frozen<'a>(&'a Proc);

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.signal(libc::SIGCONT);
    }
}

/// What a direct stale `ListObjects` to one replica got.
#[derive(Debug)]
enum Probe {
    /// Served; how old each key it should have listed but missed was.
    Served(Vec<Duration>),
    /// The not-leader answer.
    Refused,
    Failed(String),
}

/// Sends a `ListObjects` of bucket `stale` accepting [`BOUND`] to `url` every 50 ms until `stop`,
/// checking the answer against the journal like the S3 listers do.
async fn probe(
    url: String,
    journal: Arc<Mutex<BTreeMap<String, Instant>>>,
    stop: Arc<AtomicBool>,
) -> Vec<(Instant, Probe)> {
    use coffer_proto::pb::metadata::ListObjectsRequest;
    use coffer_proto::pb::metadata::metadata_client::MetadataClient;
    let channel = tonic::transport::Endpoint::from_shared(url).expect("url").connect_lazy();
    let mut client = MetadataClient::new(channel);
    let mut seen = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let must: Vec<(String, Instant)> = journal
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, acked)| sent.saturating_duration_since(**acked) > BOUND + SLACK)
            .map(|(k, a)| (k.clone(), *a))
            .collect();
        let listing = ListObjectsRequest { bucket: "stale".into(), max_keys: 1000, ..Default::default() };
        let mut request = tonic::Request::new(listing);
        request
            .metadata_mut()
            .insert(coffer_proto::stale_reads::MAX_STALENESS_HEADER, (BOUND.as_millis() as u64).into());
        let outcome = match tokio::time::timeout(Duration::from_millis(300), client.list_objects(request)).await {
            Err(_) => Probe::Failed("no answer in 300 ms".into()),
            Ok(Ok(answer)) => {
                let listed: std::collections::HashSet<String> =
                    answer.into_inner().objects.into_iter().map(|o| o.key).collect();
                Probe::Served(
                    must.iter()
                        .filter(|(k, _)| !listed.contains(k))
                        .map(|(_, acked)| sent.saturating_duration_since(*acked))
                        .collect(),
                )
            }
            Ok(Err(status)) if status.metadata().contains_key("x-coffer-not-leader") => Probe::Refused,
            Ok(Err(status)) => Probe::Failed(format!("{:?}: {}", status.code(), status.message())),
        };
        seen.push((sent, outcome));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// One listing: when it was sent, how long it took, and what it missed or why it failed.
struct Listed {
    sent: Instant,
    took: Duration,
    outcome: Result<Vec<Duration>, String>,
}

#[test]
fn followers_serve_bounded_stale_listings_and_refuse_once_the_leader_is_silent() {
    let dir = tempfile::Builder::new().prefix("coffer-stale").tempdir_in(crate::common::test_root()).expect("tempdir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let urls: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    let peers = urls.join(",");
    let replicas: Vec<Replica> = (0..3)
        .map(|i| {
            let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            let args: Vec<String> = vec![
                "metadata".into(),
                "--listen".into(),
                format!("127.0.0.1:{}", ports[i]),
                "--db".into(),
                dir.path().join(format!("meta{i}")).display().to_string(),
                "--peers".into(),
                peers.clone(),
                "--metrics-address".into(),
                metrics.to_string(),
            ];
            Replica { url: urls[i].clone(), metrics, proc: Proc::spawn(&format!("meta{i}"), &args, dir.path()) }
        })
        .collect();
    let _blobnodes: Vec<Proc> = (0..3)
        .map(|i| {
            let disk = dir.path().join(format!("disk{i}"));
            std::fs::create_dir_all(&disk).expect("disk");
            Proc::spawn(&format!("blobnode{i}"), &blobnode_args_for(&disk, &peers), dir.path())
        })
        .collect();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let gateway_args: Vec<String> = [
        "gateway",
        "--address",
        &addr.to_string(),
        "--metadata",
        &peers,
        "--ec",
        "2+1",
        "--metadata-stale-list-ms",
        &BOUND.as_millis().to_string(),
        "--rpc-timeout",
        &format!("{}s", RPC_TIMEOUT.as_secs()),
    ]
    .map(String::from)
    .to_vec();
    let gateway = Proc::spawn("gateway", &gateway_args, dir.path());
    wait_ready(addr, &[&gateway]);
    let rt = runtime();
    let first_leader = wait_for_leader(&rt, &replicas, None, Duration::from_secs(30));

    let s3 = client(&format!("http://{addr}"));
    rt.block_on(async {
        // Placement needs the blobnodes' heartbeats at the leader: retry until the first write works.
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = s3.create_bucket().bucket("stale").send().await {
            assert!(Instant::now() < deadline, "create bucket: {e:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Something in flight for ListMultipartUploads to list.
        s3.create_multipart_upload().bucket("stale").key("pending").send().await.expect("create upload");
    });

    // key → when its PUT was acknowledged.
    let journal: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let listed: Arc<Mutex<Vec<Listed>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s3, journal, stop) = (s3.clone(), journal.clone(), stop.clone());
        rt.spawn(async move {
            // At most 900 keys, so that one page (1000) lists them all.
            for n in 0..900u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = format!("k{n:05}");
                let put = s3.put_object().bucket("stale").key(&key).body(pattern(1024, n).into()).send().await;
                if put.is_ok() {
                    journal.lock().unwrap().insert(key, Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let listers: Vec<_> = (0..2)
        .map(|l| {
            let (s3, journal, listed, stop) = (s3.clone(), journal.clone(), listed.clone(), stop.clone());
            rt.spawn(async move {
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    // Every key acknowledged before this point must be listed.
                    let must: Vec<(String, Instant)> = journal
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(_, acked)| sent.saturating_duration_since(**acked) > BOUND + SLACK)
                        .map(|(k, a)| (k.clone(), *a))
                        .collect();
                    let outcome = match (round + l) % 8 {
                        // The other listings go through the same path; they only have to answer.
                        5 => s3
                            .list_objects()
                            .bucket("stale")
                            .send()
                            .await
                            .map(|_| Vec::new())
                            .map_err(|e| format!("{e:?}")),
                        6 => s3
                            .list_object_versions()
                            .bucket("stale")
                            .send()
                            .await
                            .map(|_| Vec::new())
                            .map_err(|e| format!("{e:?}")),
                        7 => s3
                            .list_multipart_uploads()
                            .bucket("stale")
                            .send()
                            .await
                            .map(|out| out.uploads().len())
                            .map_err(|e| format!("{e:?}"))
                            .and_then(|n| if n == 1 { Ok(Vec::new()) } else { Err(format!("{n} uploads listed")) }),
                        _ => match s3.list_objects_v2().bucket("stale").max_keys(1000).send().await {
                            Ok(out) => {
                                let seen: std::collections::HashSet<&str> =
                                    out.contents().iter().filter_map(|o| o.key()).collect();
                                // How old each key it should have listed but missed was.
                                Ok(must
                                    .iter()
                                    .filter(|(k, _)| !seen.contains(k.as_str()))
                                    .map(|(_, acked)| sent.saturating_duration_since(*acked))
                                    .collect())
                            }
                            Err(e) => Err(format!("{e:?}")),
                        },
                    };
                    listed.lock().unwrap().push(Listed { sent, took: sent.elapsed(), outcome });
                    round += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();

    // Direct stale listings to every replica, throughout.
    let probers: Vec<_> =
        replicas.iter().map(|r| rt.spawn(probe(r.url.clone(), journal.clone(), stop.clone()))).collect();

    // Steady state: followers serve some listings.
    std::thread::sleep(Duration::from_secs(6));
    let served_by_followers: f64 = replicas
        .iter()
        .map(|r| counter(&scrape(r.metrics), "coffer_metadata_stale_reads_total", "role=\"follower\""))
        .sum();
    let served_by_leader: f64 = replicas
        .iter()
        .map(|r| counter(&scrape(r.metrics), "coffer_metadata_stale_reads_total", "role=\"leader\""))
        .sum();
    eprintln!(
        "steady state: {served_by_followers} listings served by followers, {served_by_leader} by the leader without a barrier"
    );
    assert!(served_by_followers > 0.0, "followers serve stale listings");

    // Freeze the leader: its followers stop hearing from it.
    let leader = wait_for_leader(&rt, &replicas, None, Duration::from_secs(10));
    let refused_before: Vec<f64> = replicas
        .iter()
        .map(|r| counter(&scrape(r.metrics), "coffer_metadata_stale_reads_refused_total", "reason=\"too_stale\""))
        .collect();
    let frozen = Frozen(&replicas[leader].proc);
    frozen.0.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let new_leader = wait_for_leader(&rt, &replicas, Some(leader), Duration::from_secs(30));
    let took_over = stopped.elapsed();
    eprintln!(
        "froze {} (first leader {}); {} leads after {took_over:?}",
        urls[leader], urls[first_leader], urls[new_leader]
    );
    std::thread::sleep(Duration::from_secs(8));
    let refused_after: Vec<f64> = replicas
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i == leader {
                refused_before[i] // frozen: its endpoint does not answer
            } else {
                counter(&scrape(r.metrics), "coffer_metadata_stale_reads_refused_total", "reason=\"too_stale\"")
            }
        })
        .collect();
    let refusals: f64 = refused_after.iter().zip(&refused_before).map(|(a, b)| a - b).sum();
    eprintln!("followers refused {refusals} stale listings as too stale after the freeze");
    drop(frozen);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(writer).expect("writer");
    for lister in listers {
        rt.block_on(lister).expect("lister");
    }
    let probes: Vec<Vec<(Instant, Probe)>> = probers.into_iter().map(|p| rt.block_on(p).expect("prober")).collect();
    // The replica that neither froze nor took over: it followed the frozen leader until the new one
    // reached it, so it must have refused for a while once its proof outlived the bound.
    let bystander = (0..3).find(|i| *i != leader && *i != new_leader).expect("three replicas");
    let mut stale_answers = Vec::new();
    for (i, seen) in probes.iter().enumerate() {
        let after: Vec<&(Instant, Probe)> = seen.iter().filter(|(sent, _)| *sent >= stopped).collect();
        let first_refusal = after.iter().find(|(_, p)| matches!(p, Probe::Refused)).map(|(t, _)| *t - stopped);
        let served_again = after
            .iter()
            .skip_while(|(_, p)| !matches!(p, Probe::Refused))
            .find(|(_, p)| matches!(p, Probe::Served(_)))
            .map(|(t, _)| *t - stopped);
        let count = |f: fn(&Probe) -> bool| seen.iter().filter(|(_, p)| f(p)).count();
        let failures: std::collections::BTreeSet<&str> = seen
            .iter()
            .filter_map(|(_, p)| match p {
                Probe::Failed(why) => Some(why.as_str()),
                _ => None,
            })
            .collect();
        eprintln!(
            "direct probes of replica {i}{}: {} served, {} refused, {} failed; after the freeze first refused at {first_refusal:?}, served again from {served_again:?}; failures: {failures:?}",
            if i == leader {
                " (frozen)"
            } else if i == new_leader {
                " (new leader)"
            } else {
                ""
            },
            count(|p| matches!(p, Probe::Served(_))),
            count(|p| matches!(p, Probe::Refused)),
            count(|p| matches!(p, Probe::Failed(_))),
        );
        for (sent, p) in seen {
            if let Probe::Served(missed) = p
                && !missed.is_empty()
            {
                stale_answers
                    .push(format!("replica {i} at +{:?}: missed {missed:?}", sent.saturating_duration_since(stopped)));
            }
        }
    }
    let bystander_refused = probes[bystander].iter().any(|(sent, p)| *sent >= stopped && matches!(p, Probe::Refused));

    let listed = std::mem::take(&mut *listed.lock().unwrap());
    let journal_len = journal.lock().unwrap().len();
    let window_end = stopped + took_over + RPC_TIMEOUT + Duration::from_secs(2);
    let mut late_errors = Vec::new();
    let mut errors_in_window = 0;
    let mut missed_recent = 0usize;
    let mut violations = Vec::new();
    for l in &listed {
        match &l.outcome {
            Ok(missed) if missed.is_empty() => {}
            Ok(missed) => {
                missed_recent += 1;
                violations.push(format!("missed keys acknowledged {missed:?} before the listing"));
            }
            Err(e) if l.sent >= stopped && l.sent < window_end => {
                errors_in_window += 1;
                eprintln!("in the failover window (+{:?}, took {:?}): {e}", l.sent - stopped, l.took);
            }
            Err(e) => late_errors.push(format!("+{:?}: {e}", l.sent.saturating_duration_since(stopped))),
        }
    }
    let slowest_in_window = listed.iter().filter(|l| l.sent >= stopped && l.sent < window_end).map(|l| l.took).max();
    eprintln!(
        "{} listings ({journal_len} keys written): {errors_in_window} failed in the failover window, slowest there {slowest_in_window:?}",
        listed.len()
    );
    let gateway_metrics = http_get_body(addr, "/metrics").unwrap_or_default();
    eprintln!(
        "gateway: {} stale attempts served, {} fell back to the leader",
        counter(&gateway_metrics, "coffer_metadata_client_stale_reads_total", "outcome=\"served\""),
        counter(&gateway_metrics, "coffer_metadata_client_stale_reads_total", "outcome=\"fell_back\""),
    );
    for (i, r) in replicas.iter().enumerate() {
        let m = scrape(r.metrics);
        eprintln!(
            "replica {i}: served {} as follower, {} as leader; refused {} (too_stale {}, apply_lag {}, no_leader {}, not_following {})",
            counter(&m, "coffer_metadata_stale_reads_total", "role=\"follower\""),
            counter(&m, "coffer_metadata_stale_reads_total", "role=\"leader\""),
            counter(&m, "coffer_metadata_stale_reads_refused_total", ""),
            counter(&m, "coffer_metadata_stale_reads_refused_total", "reason=\"too_stale\""),
            counter(&m, "coffer_metadata_stale_reads_refused_total", "reason=\"apply_lag\""),
            counter(&m, "coffer_metadata_stale_reads_refused_total", "reason=\"no_leader\""),
            counter(&m, "coffer_metadata_stale_reads_refused_total", "reason=\"not_following\""),
        );
    }
    assert!(journal_len > 50, "the writer made progress ({journal_len} keys)");
    assert!(listed.len() > 50, "the listers made progress ({} listings)", listed.len());
    assert!(violations.is_empty(), "{missed_recent} listings missed old keys: {violations:?}");
    assert!(stale_answers.is_empty(), "replicas answered staler than the bound: {stale_answers:?}");
    assert!(bystander_refused, "replica {bystander} refused stale listings once the frozen leader's proof expired");
    assert!(late_errors.is_empty(), "listings failed outside the failover window: {late_errors:?}");
}
