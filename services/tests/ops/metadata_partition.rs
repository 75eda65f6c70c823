//! A replicated metadata group split by a real network partition: three replicas, each alone in a
//! network namespace wired to a bridge in the root namespace by a veth pair. The leader's veth is
//! taken down; the isolated old leader must acknowledge no write (nor answer a read it cannot
//! confirm), the other two must elect a leader and take writes, and once the link is back the old
//! leader must step down and catch up, its refused writes gone for good.
//!
//! Needs root and `ip netns`; without them the test says so and passes without running.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::{CreateBucketRequest, ListBucketsRequest, RaftStatusResponse};

use crate::common::metadata_group::{self, status};
use crate::common::{Proc, runtime, test_root};

/// Every replica listens on this port of its own namespace's address.
const PORT: u16 = 7420;
/// Generous bounds: the group promises failover within 5 s on a quiet machine.
const NEW_LEADER_LIMIT: Duration = Duration::from_secs(10);
const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);
/// What a client on the minority side waits for an answer; long enough for a commit on a healthy group.
const MINORITY_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `ip ARGS`; the error carries its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn ip_or_panic(args: &[&str]) {
    ip(args).unwrap_or_else(|e| panic!("{e}"));
}

/// The namespaces, veths and bridge of one run (names carry the test's pid), torn down when
/// dropped — also when the test fails halfway.
struct PartitionLab {
    bridge: String,
    namespaces: Vec<String>,
    host_veths: Vec<String>,
    addresses: Vec<String>,
}

impl PartitionLab {
    /// `None` (with the reason printed) when this machine cannot make network namespaces.
    fn create(replicas: usize) -> Option<PartitionLab> {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED metadata_partition: needs root to create network namespaces");
            return None;
        }
        // Tests of one binary run in parallel in one process: each lab gets its own letter, and
        // labs are made one at a time so two never pick the same free subnet.
        static LABS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        let letter = char::from(b'a' + LABS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 26);
        let pid = format!("{}{letter}", std::process::id());
        let mut lab = PartitionLab {
            bridge: format!("cfbr{pid}"),
            namespaces: Vec::new(),
            host_veths: Vec::new(),
            addresses: Vec::new(),
        };
        let first = format!("coffer-part{pid}-0");
        if let Err(e) = ip(&["netns", "add", &first]) {
            eprintln!("SKIPPED metadata_partition: `ip netns add` is unavailable here ({e})");
            return None;
        }
        lab.namespaces.push(first);
        let subnet = free_subnet(std::process::id());
        ip_or_panic(&["link", "add", &lab.bridge, "type", "bridge"]);
        ip_or_panic(&["addr", "add", &format!("{subnet}.254/24"), "dev", &lab.bridge]);
        ip_or_panic(&["link", "set", &lab.bridge, "up"]);
        for i in 0..replicas {
            let netns = format!("coffer-part{pid}-{i}");
            if i > 0 {
                ip_or_panic(&["netns", "add", &netns]);
                lab.namespaces.push(netns.clone());
            }
            let (host, inner) = (format!("cfh{pid}-{i}"), format!("cfn{pid}-{i}"));
            ip_or_panic(&["link", "add", &host, "type", "veth", "peer", "name", &inner]);
            lab.host_veths.push(host.clone());
            ip_or_panic(&["link", "set", &host, "master", &lab.bridge]);
            ip_or_panic(&["link", "set", &host, "up"]);
            ip_or_panic(&["link", "set", &inner, "netns", &netns]);
            let address = format!("{subnet}.{}", i + 1);
            ip_or_panic(&["-n", &netns, "addr", "add", &format!("{address}/24"), "dev", &inner]);
            ip_or_panic(&["-n", &netns, "link", "set", &inner, "up"]);
            ip_or_panic(&["-n", &netns, "link", "set", "lo", "up"]);
            lab.addresses.push(address);
        }
        Some(lab)
    }

    fn url(&self, i: usize) -> String {
        format!("http://{}:{PORT}", self.addresses[i])
    }

    /// Cuts replica `i` off from the bridge, hence from the other replicas and from the root namespace.
    fn isolate(&self, i: usize) {
        ip_or_panic(&["link", "set", &self.host_veths[i], "down"]);
    }

    fn heal(&self, i: usize) {
        ip_or_panic(&["link", "set", &self.host_veths[i], "up"]);
    }
}

impl Drop for PartitionLab {
    fn drop(&mut self) {
        // Best effort: deleting a namespace takes its end of the veth pair (and so the pair) along.
        for netns in &self.namespaces {
            let _ = ip(&["netns", "del", netns]);
        }
        for host in &self.host_veths {
            let _ = ip(&["link", "del", host]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// A /24 under 10.213.0.0/16 that no interface of the root namespace uses yet (runs in parallel
/// pick different ones by pid).
fn free_subnet(pid: u32) -> String {
    let used = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    (0..250u32)
        .map(|k| format!("10.213.{}", 1 + (pid + k) % 250))
        .find(|subnet| !used.contains(&format!("{subnet}.")))
        .expect("a free 10.213.x.0/24")
}

/// Runs `work` on a thread that has entered network namespace `netns`, with its own runtime: the
/// sockets it opens live there, so it reaches what only that namespace reaches (the isolated side).
fn in_netns<T: Send>(netns: &str, work: impl FnOnce(&tokio::runtime::Runtime) -> T + Send) -> T {
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            let handle = std::fs::File::open(Path::new("/run/netns").join(netns)).expect("open the namespace");
            // Only this thread moves: network namespaces are per thread.
            let entered = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns {netns}: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            work(&rt)
        });
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The index (in `urls`) and status of a replica among `candidates` that reports itself leader.
fn wait_for_leader(
    rt: &tokio::runtime::Runtime,
    urls: &[String],
    candidates: &[usize],
    limit: Duration,
) -> Option<(usize, RaftStatusResponse)> {
    let candidate_urls: Vec<String> = candidates.iter().map(|&i| urls[i].clone()).collect();
    let (url, status) = metadata_group::wait_for_leader(rt, &candidate_urls, limit)?;
    urls.iter().position(|u| *u == url).map(|i| (i, status))
}

fn client_config(timeout: Duration) -> ClientConfig {
    ClientConfig { timeout, connect_timeout: Duration::from_secs(1), ..ClientConfig::default() }
}

/// A client that knows only `url` and gives up quickly; made inside the namespace it runs in.
fn minority_client(url: &str) -> MetadataClient {
    MetadataClient::connect(&[url.to_string()], &client_config(MINORITY_CALL_TIMEOUT)).expect("client")
}

fn bucket(name: &str) -> CreateBucketRequest {
    CreateBucketRequest {
        name: name.into(),
        owner: "testadmin".into(),
        region: "us-east-1".into(),
        ..Default::default()
    }
}

/// Three replicas, one in each namespace of a fresh lab, started with the same `--peers`.
struct Group {
    // Fields drop in this order: the replicas stop before their namespaces and their files go.
    _replicas: Vec<Proc>,
    lab: PartitionLab,
    urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Group {
    /// `None` when this machine cannot make network namespaces (see `PartitionLab::create`).
    fn start() -> Option<Group> {
        let lab = PartitionLab::create(3)?;
        let dir = tempfile::Builder::new().prefix("coffer-partition").tempdir_in(test_root()).expect("tempdir");
        let urls: Vec<String> = (0..3).map(|i| lab.url(i)).collect();
        let peers = urls.join(",");
        let replicas = (0..3)
            .map(|i| {
                let args: Vec<String> = vec![
                    "metadata".into(),
                    "--listen".into(),
                    format!("{}:{PORT}", lab.addresses[i]),
                    "--db".into(),
                    dir.path().join(format!("meta{i}")).display().to_string(),
                    "--peers".into(),
                    peers.clone(),
                    "--advertise".into(),
                    urls[i].clone(),
                ];
                Proc::spawn_in_netns(&lab.namespaces[i], &format!("meta{i}"), &args, dir.path())
            })
            .collect();
        Some(Group { _replicas: replicas, lab, urls, _dir: dir })
    }

    /// The first leader's index and status.
    fn first_leader(&self, rt: &tokio::runtime::Runtime) -> (usize, RaftStatusResponse) {
        wait_for_leader(rt, &self.urls, &[0, 1, 2], Duration::from_secs(30)).expect(
            "the group elects a first leader (if the replicas never hear each other: does a firewall drop bridged \
             traffic, e.g. bridge-nf-call-iptables with a FORWARD DROP policy?)",
        )
    }
}

impl Drop for Group {
    /// Heals every link before the replicas get SIGTERM: a replica does not finish its graceful shutdown
    /// while a connection from a cut-off peer hangs open, so a test failing mid-partition would wait for
    /// the 30 s SIGKILL fallback of each.
    fn drop(&mut self) {
        for host in &self.lab.host_veths {
            let _ = ip(&["link", "set", host, "up"]);
        }
    }
}

#[test]
fn a_partitioned_metadata_leader_refuses_writes_and_catches_up_once_healed() {
    let Some(group) = Group::start() else { return };
    let (lab, urls) = (&group.lab, &group.urls);
    let rt = runtime();
    group.first_leader(&rt);
    let before: Vec<String> = (0..5).map(|n| format!("before-{n}")).collect();
    rt.block_on(async {
        let all = MetadataClient::connect(urls, &client_config(Duration::from_secs(10))).expect("client");
        for name in &before {
            all.rpc().create_bucket(bucket(name)).await.unwrap_or_else(|e| panic!("create {name}: {e:?}"));
        }
    });
    // Asked again once writes committed: openraft's leader ids let a second candidate win the same
    // term at start-up (T1-N2, then T1-N3), so the first leader seen may already be replaced.
    let (old, first) = group.first_leader(&rt);
    eprintln!("replica {old} ({}) leads in term {}", urls[old], first.term);

    lab.isolate(old);
    let partitioned = Instant::now();
    eprintln!("replica {old} cut off");

    // (a) The minority side: a client that reaches only the old leader gets no write acknowledged.
    let refused: Vec<String> = (0..2).map(|n| format!("minority-{n}")).collect();
    let minority_write = |name: &str| {
        in_netns(&lab.namespaces[old], |rt| {
            rt.block_on(async { minority_client(&urls[old]).rpc().create_bucket(bucket(name)).await.map(|_| ()) })
        })
    };
    // (b) Meanwhile the majority elects a leader of a newer term.
    let majority: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let (answer, elected) = std::thread::scope(|scope| {
        let write = scope.spawn(|| minority_write(&refused[0]));
        let elected =
            wait_for_leader(&rt, urls, &majority, NEW_LEADER_LIMIT).map(|(i, s)| (i, s, partitioned.elapsed()));
        (write.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), elected)
    });
    eprintln!("minority write right after the cut: {answer:?}");
    assert!(answer.is_err(), "the isolated old leader acknowledged a write (create {})", refused[0]);
    let (new, elected, took) = elected
        .unwrap_or_else(|| panic!("no leader among replicas {majority:?} within {NEW_LEADER_LIMIT:?} of the cut"));
    eprintln!("replica {new} leads in term {} {took:?} after the cut", elected.term);
    // A vote orders by (term, node): a newer leader may share the term if its id is higher.
    assert!(
        (elected.term, elected.node_id) > (first.term, first.node_id),
        "the new leader's vote T{}-N{} follows T{}-N{}",
        elected.term,
        elected.node_id,
        first.term,
        first.node_id
    );

    // ... and goes on: a client of the majority writes.
    let during: Vec<String> = (0..5).map(|n| format!("majority-{n}")).collect();
    rt.block_on(async {
        let theirs: Vec<String> = majority.iter().map(|&i| urls[i].clone()).collect();
        let client = MetadataClient::connect(&theirs, &client_config(Duration::from_secs(10))).expect("client");
        for name in &during {
            client.rpc().create_bucket(bucket(name)).await.unwrap_or_else(|e| panic!("majority create {name}: {e:?}"));
        }
    });

    // A stale leader stays harmless while a newer one leads: no write, and no read it cannot confirm
    // (its answer would miss the majority's buckets).
    let answer = minority_write(&refused[1]);
    eprintln!("minority write while replica {new} leads: {answer:?}");
    assert!(answer.is_err(), "the isolated old leader acknowledged a write (create {})", refused[1]);
    let (read, isolated_view) = in_netns(&lab.namespaces[old], |rt| {
        let read = rt.block_on(async {
            let listed = minority_client(&urls[old]).rpc().list_buckets(ListBucketsRequest {}).await;
            listed.map(|r| r.into_inner().buckets.len())
        });
        (read, status(rt, &urls[old]))
    });
    eprintln!("the isolated replica's view: {isolated_view:?}; its ListBuckets: {read:?}");
    assert!(read.is_err(), "the isolated old leader served a read it could not confirm ({read:?} buckets)");

    // (c) Healed: the old leader steps down and applies what the new leader applied.
    lab.heal(old);
    let healed = Instant::now();
    let wanted = status(&rt, &urls[new]).map_or(0, |s| s.applied_index);
    loop {
        let leader = wait_for_leader(&rt, urls, &[0, 1, 2], Duration::from_secs(1));
        let rejoined = status(&rt, &urls[old]);
        let converged = match (&leader, &rejoined) {
            (Some((l, lead)), Some(back)) => {
                *l != old
                    && back.state == "follower"
                    && back.applied_index == lead.applied_index
                    && lead.applied_index >= wanted
            }
            _ => false,
        };
        if converged {
            eprintln!("replica {old} caught up {:?} after the heal: {rejoined:?}", healed.elapsed());
            break;
        }
        assert!(
            healed.elapsed() < CATCH_UP_LIMIT,
            "replica {old} did not step down and catch up within {CATCH_UP_LIMIT:?}: leader {leader:?}, it {rejoined:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let listed: BTreeSet<String> = rt.block_on(async {
        let all = MetadataClient::connect(urls, &client_config(Duration::from_secs(10))).expect("client");
        let listed = all.rpc().list_buckets(ListBucketsRequest {}).await.expect("list buckets after the heal");
        listed.into_inner().buckets.into_iter().map(|b| b.name).collect()
    });
    for name in before.iter().chain(&during) {
        assert!(listed.contains(name), "{name} was acknowledged but is not listed: {listed:?}");
    }
    for name in &refused {
        assert!(!listed.contains(name), "{name} was refused on the minority side, yet it exists: {listed:?}");
    }
}

/// A client that knows every replica (as gateways and blobnodes do) and last reached the leader
/// must find the new leader once that one is cut off, as it does when the leader's process dies:
/// an unreachable host neither answers nor refuses, so the call times out, and the router moves
/// on to a replica that knows the new leader.
#[test]
fn a_client_of_the_whole_group_finds_the_new_leader_across_a_partition() {
    const LIMIT: Duration = Duration::from_secs(20);
    let Some(group) = Group::start() else { return };
    let rt = runtime();
    let (old, _) = group.first_leader(&rt);
    let all = rt.block_on(async {
        let all = MetadataClient::connect(&group.urls, &client_config(Duration::from_secs(3))).expect("client");
        all.rpc().create_bucket(bucket("before")).await.expect("create before the cut");
        all
    });
    group.lab.isolate(old);
    let cut = Instant::now();
    for attempt in 0.. {
        assert!(
            cut.elapsed() < LIMIT,
            "no write through a client of all three replicas within {LIMIT:?} of cutting off replica {old}"
        );
        // A new name each time: a timed-out create may still have been applied.
        let name = format!("after-{attempt}");
        let answer = rt.block_on(all.rpc().create_bucket(bucket(&name)));
        eprintln!("{:?} after the cut, create {name}: {:?}", cut.elapsed(), answer.as_ref().map(|_| ()));
        if answer.is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
