//! Asking the replicas of a metadata group about themselves (`MetadataRaft.Status`), each
//! directly: the tests that kill, add, remove or cut off replicas watch the group this way. Also
//! what the tests of several groups share: starting the replicas, addressing a group, and the
//! blobnodes and gateway in front of them.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use coffer_proto::metadata_client::GROUP_HEADER;
use coffer_proto::pb::metadata::metadata_raft_client::MetadataRaftClient;
use coffer_proto::pb::metadata::{RaftStatusRequest, RaftStatusResponse};

/// What one status call may take, connecting included: a replica that does not answer by then
/// (down, cut off, or too busy) counts as not answering.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// Between two rounds of status calls while waiting for a leader.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// One replica's own view, or `None` when it does not answer within [`STATUS_TIMEOUT`]. A fresh
/// connection each time, so no state of an earlier call (a dead connection) stands in the way.
pub fn status(rt: &tokio::runtime::Runtime, url: &str) -> Option<RaftStatusResponse> {
    rt.block_on(async {
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_string()).ok()?;
        let call = async {
            let mut client = MetadataRaftClient::new(endpoint.connect().await.ok()?);
            client.status(RaftStatusRequest {}).await.ok().map(|r| r.into_inner())
        };
        tokio::time::timeout(STATUS_TIMEOUT, call).await.ok().flatten()
    })
}

/// One replica's own view as soon as it answers, polling it until `limit` has passed: a replica
/// of a busy machine may miss one status call's timeout without anything being wrong.
pub fn wait_for_status(rt: &tokio::runtime::Runtime, url: &str, limit: Duration) -> Option<RaftStatusResponse> {
    let started = Instant::now();
    loop {
        if let Some(s) = status(rt, url) {
            return Some(s);
        }
        if started.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The URL and status of the first of `candidates` found to report itself leader, polling them in
/// turn until `limit` has passed.
pub fn wait_for_leader(
    rt: &tokio::runtime::Runtime,
    candidates: &[String],
    limit: Duration,
) -> Option<(String, RaftStatusResponse)> {
    let started = Instant::now();
    while started.elapsed() < limit {
        for url in candidates {
            if let Some(s) = status(rt, url).filter(|s| s.state == "leader") {
                return Some((url.clone(), s));
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    None
}

/// Three `coffer metadata` replicas forming one group (`--peers`) on fresh ports, with their data
/// under `dir`: the processes (stopped when dropped), their URLs and the `--peers` list.
pub fn start_three(dir: &Path) -> (Vec<super::Proc>, Vec<String>, String) {
    start_three_with(dir, &[])
}

/// [`start_three`] with `extra` flags on every replica.
pub fn start_three_with(dir: &Path, extra: &[&str]) -> (Vec<super::Proc>, Vec<String>, String) {
    let ports: Vec<u16> = (0..3).map(|_| super::free_port()).collect();
    let urls: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    let peers = urls.join(",");
    let procs = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let db = dir.join(format!("meta{i}")).display().to_string();
            let mut args = ["metadata", "--listen", &format!("127.0.0.1:{port}"), "--db", &db, "--peers", &peers]
                .map(String::from)
                .to_vec();
            args.extend(extra.iter().map(|a| a.to_string()));
            super::Proc::spawn(&format!("meta{i}"), &args, dir)
        })
        .collect();
    (procs, urls, peers)
}

/// Waits (up to 30 s) until some replica reports range group `group` with a leader.
pub fn wait_for_group(rt: &tokio::runtime::Runtime, urls: &[String], group: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let led = urls.iter().any(|url| {
            status(rt, url).is_some_and(|s| s.groups.iter().any(|g| g.group == group && g.state == "leader"))
        });
        if led {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("group {group} elects a leader");
}

/// `message` addressed to metadata group `group` (`x-coffer-group`).
pub fn in_group<T>(message: T, group: u64) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(GROUP_HEADER, group.into());
    request
}

/// Three blobnodes (one disk each, `disk0`..`disk2` under `dir`) and a gateway (`--ec 2+1`, plus
/// `gateway_extra`) given every replica's URL; waits until the gateway is ready.
pub fn start_blobnodes_and_gateway(
    dir: &Path,
    metadata_urls: &str,
    gateway_extra: &[&str],
) -> (Vec<super::Proc>, super::Proc, SocketAddr) {
    let blobnodes = (0..3)
        .map(|i| {
            let disk = dir.join(format!("disk{i}"));
            std::fs::create_dir_all(&disk).expect("disk");
            super::Proc::spawn(&format!("blobnode{i}"), &super::blobnode_args_for(&disk, metadata_urls), dir)
        })
        .collect();
    let addr: SocketAddr = format!("127.0.0.1:{}", super::free_port()).parse().expect("addr");
    let mut args: Vec<String> = ["gateway", "--address", &addr.to_string(), "--metadata", metadata_urls, "--ec", "2+1"]
        .map(String::from)
        .to_vec();
    args.extend(gateway_extra.iter().map(|a| a.to_string()));
    let gateway = super::Proc::spawn("gateway", &args, dir);
    super::wait_ready(addr, &[&gateway]);
    (blobnodes, gateway, addr)
}

/// `coffer admin --metadata PEERS meta ARGS…`, which must succeed: its stdout (stderr is shown).
pub fn meta_admin(peers: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(super::coffer_bin())
        .args(["admin", "--metadata", peers, "meta"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("coffer admin meta {args:?}: {e}"));
    eprintln!("meta {} stderr: {}", args.first().unwrap_or(&""), String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "meta {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
