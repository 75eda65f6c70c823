//! Durability under failure, with real processes: write quorums, reads through lost nodes,
//! repair onto replacements, and draining a node under read load.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::{GetRepairStatusRequest, GetRepairStatusResponse};
use common::{Split, SplitOptions, get_bytes, pattern, put_bytes, runtime};

const BUCKET: &str = "durable";
/// Repair rebuilds a silent node's shards elsewhere after this.
const GRACE: &str = "3s";

/// Sizes that cover inline, one stripe and several 4 MiB stripes (with a short last one).
fn size_of(i: usize) -> usize {
    [200 << 10, 1 << 20, 5 << 20, (9 << 20) + 123][i % 4]
}

struct Objects {
    keys: Vec<(String, Vec<u8>)>,
}

impl Objects {
    async fn put(client: &Client, prefix: &str, count: usize, seed: u64) -> Objects {
        let mut keys = Vec::new();
        for i in 0..count {
            let key = format!("{prefix}/{i}");
            let data = pattern(size_of(i), seed + i as u64);
            put_bytes(client, BUCKET, &key, data.clone()).await;
            keys.push((key, data));
        }
        Objects { keys }
    }

    async fn check_all(&self, client: &Client, when: &str) {
        for (key, data) in &self.keys {
            let got = get_bytes(client, BUCKET, key).await;
            assert!(got == *data, "{when}: {key} came back with {} bytes, not the {} stored", got.len(), data.len());
        }
    }
}

/// GETs every object in a loop until stopped; counts reads and failures (errors or wrong bytes).
fn read_load(
    rt: &tokio::runtime::Runtime,
    client: Client,
    objects: Arc<Vec<(String, Vec<u8>)>>,
) -> (Arc<AtomicBool>, Arc<AtomicUsize>, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let task = {
        let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for (key, data) in objects.iter() {
                    let got = match client.get_object().bucket(BUCKET).key(key).send().await {
                        Ok(out) => out.body.collect().await.map(|b| b.into_bytes().to_vec()).ok(),
                        Err(e) => {
                            eprintln!("read of {key} failed: {e:?}");
                            None
                        }
                    };
                    reads.fetch_add(1, Ordering::Relaxed);
                    if got.as_deref() != Some(data.as_slice()) {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    (stop, reads, failures, task)
}

async fn repair_status(metadata: &MetadataClient) -> GetRepairStatusResponse {
    let request = GetRepairStatusRequest { grace_ms: 3_000 };
    metadata.rpc().get_repair_status(request).await.expect("repair status").into_inner()
}

/// Waits until nothing is degraded; returns how long that took.
async fn wait_repaired(metadata: &MetadataClient, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let status = repair_status(metadata).await;
        if status.degraded_columns == 0 {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "still degraded after {limit:?}: {status:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn start_cluster(blobnodes: usize) -> Split {
    Split::start_opts(
        blobnodes,
        "4+2",
        SplitOptions { metadata: &["--node-timeout", "2s"], gateway: &["--hedge-after", "100ms"], env: &[] },
        |_, _| Vec::new(),
    )
}

#[test]
fn two_lost_blobnodes_lose_no_read_one_loses_no_write_and_repair_restores_full_redundancy() {
    let rt = runtime();
    let mut cluster = start_cluster(6);
    let metrics_addr = format!("127.0.0.1:{}", common::free_port());
    let _repair = cluster.start_repair(
        "repair",
        &["--repair-grace", GRACE, "--repair-interval", "300ms", "--metrics-address", &metrics_addr],
    );
    let client = cluster.client();
    let metadata = rt.block_on(async {
        MetadataClient::connect(std::slice::from_ref(&cluster.metadata_url), &ClientConfig::default()).unwrap()
    });
    rt.block_on(async { client.create_bucket().bucket(BUCKET).send().await.expect("create bucket") });
    let before = rt.block_on(Objects::put(&client, "before", 8, 1));

    // Two blobnodes die while readers are busy: no read fails.
    let (stop, reads, failures, readers) = read_load(&rt, client.clone(), Arc::new(before.keys.clone()));
    std::thread::sleep(Duration::from_millis(500));
    cluster.blobnodes[0].kill9();
    cluster.blobnodes[1].kill9();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(readers).unwrap();
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {} reads", reads.load(Ordering::Relaxed));
    rt.block_on(before.check_all(&client, "two blobnodes down"));

    // One comes back, one stays dead: writes still succeed, with the quorum.
    cluster.restart_blobnode(1);
    std::thread::sleep(Duration::from_secs(2));
    let during = rt.block_on(Objects::put(&client, "during", 8, 100));
    rt.block_on(during.check_all(&client, "written with one blobnode dead"));

    // A replacement joins; repair rebuilds what the dead node held and what the writes missed.
    cluster.add_blobnode();
    let took = rt.block_on(wait_repaired(&metadata, Duration::from_secs(120)));
    let status = rt.block_on(repair_status(&metadata));
    eprintln!("full redundancy {took:?} after the replacement joined: {status:?}");
    assert!(status.columns_repaired > 0 && status.bytes_repaired > 0, "{status:?}");
    let metrics = common::http_get_body(metrics_addr.parse().unwrap(), "/metrics").unwrap_or_default();
    let repaired_bytes = metrics
        .lines()
        .find(|l| l.starts_with("coffer_repair_bytes_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(repaired_bytes.is_some_and(|b| b > 0.0), "repair metrics:\n{metrics}");
    assert!(metrics.contains("coffer_repair_degraded_columns"), "repair metrics:\n{metrics}");

    // Two other blobnodes die: everything is still readable, so every stripe was back to k+m.
    cluster.blobnodes[2].kill9();
    cluster.blobnodes[3].kill9();
    rt.block_on(before.check_all(&client, "after repair, two other blobnodes down"));
    rt.block_on(during.check_all(&client, "after repair, two other blobnodes down"));
}

#[test]
fn a_write_without_a_quorum_fails_with_503_and_leaves_nothing_visible() {
    let rt = runtime();
    let mut cluster = start_cluster(6);
    let client = cluster.client();
    rt.block_on(async { client.create_bucket().bucket(BUCKET).send().await.expect("create bucket") });
    cluster.blobnodes[0].kill9();
    cluster.blobnodes[1].kill9();
    // Four of six shards can land; the quorum is five.
    let result = rt.block_on(
        client
            .put_object()
            .bucket(BUCKET)
            .key("short")
            .body(aws_sdk_s3::primitives::ByteStream::from(pattern(1 << 20, 7)))
            .send(),
    );
    let code = common::error_code(result);
    assert!(code == "ServiceUnavailable" || code == "SlowDown", "{code}");
    let head = rt.block_on(client.head_object().bucket(BUCKET).key("short").send());
    assert!(head.is_err(), "a refused PUT is not visible");
    let listed = rt.block_on(client.list_objects_v2().bucket(BUCKET).send()).expect("list");
    assert!(listed.contents().is_empty());
}

#[test]
fn draining_a_blobnode_under_read_load_fails_no_read_and_empties_it() {
    let rt = runtime();
    let mut cluster = start_cluster(7);
    let _repair = cluster.start_repair("repair", &["--repair-interval", "300ms"]);
    let client = cluster.client();
    rt.block_on(async { client.create_bucket().bucket(BUCKET).send().await.expect("create bucket") });
    let objects = rt.block_on(Objects::put(&client, "obj", 10, 500));

    let address = cluster.blobnode_address(0).to_string();
    let listing = cluster.admin(&["node", "list"]);
    let node_id = listing
        .lines()
        .find(|line| line.contains(&address))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("blobnode 0 ({address}) not in:\n{listing}"))
        .to_string();

    let (stop, reads, failures, readers) = read_load(&rt, client.clone(), Arc::new(objects.keys.clone()));
    let drained = cluster.admin(&["node", "drain", &node_id]);
    assert!(drained.contains("draining"), "{drained}");
    let started = Instant::now();
    loop {
        let listing = cluster.admin(&["node", "list"]);
        if listing.lines().any(|l| l.starts_with(&node_id) && l.contains(" drained")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not drained in time:\n{listing}");
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(readers).unwrap();
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {} reads", reads.load(Ordering::Relaxed));

    // An active node cannot be removed; the drained one, once stopped, can, and leaves the map.
    cluster.blobnodes[0].kill9();
    let busy = cluster
        .admin(&["node", "list"])
        .lines()
        .find(|l| !l.starts_with(&node_id))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
        .expect("another node");
    let refused = std::process::Command::new(common::coffer_bin())
        .args(["admin", "--metadata", &cluster.metadata_url, "node", "remove", &busy])
        .output()
        .expect("run coffer admin");
    assert!(!refused.status.success(), "an active node was removed");
    assert!(cluster.admin(&["node", "remove", &node_id]).contains("removed"));
    assert!(!cluster.admin(&["node", "list"]).contains(&node_id), "a removed node is forgotten");

    // The drained node held nothing any record needs: losing it and two others loses nothing.
    cluster.blobnodes[1].kill9();
    cluster.blobnodes[2].kill9();
    rt.block_on(objects.check_all(&client, "drained node and two others down"));
}
