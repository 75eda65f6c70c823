//! A range group moves to another metadata process under a write load while a full listing runs
//! (issue 11): three `coffer metadata` replicas, range group 1 owning bucket "b"'s keys below "z",
//! 1,500 keys written first. A fourth process joins group 0 (`--join`); then writers keep adding
//! keys while a listing pages slowly through the bucket, and `coffer admin meta move` moves group
//! 1's replica from the process leading it to the new one — so the leader removes itself.
//!
//! Checked: the listing running across the move returns keys in order, each at most once, and
//! every key written before it started exactly once; after the load a full listing equals the
//! acknowledged writes (plus, at most, writes whose answer was lost); the range table names the
//! new replica and not the old; the new process serves the group and the old one closed it and
//! deleted its copy; with the old process killed, every acknowledged key reads back and a new
//! write lands — the group no longer needs it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::{CreateBucketRequest, GetObjectRequest, RangeTableRequest};
use coffer_proto::stale_reads::ListingClient;

use crate::common::metadata_group::{self, status, wait_for_group};
use crate::common::{Proc, runtime};
use crate::metadata_routing::{create_group, put_all_routed};
use crate::range_split::{key, list_all, put_acknowledged};

fn admin_move(peers: &str, group: u64, from: u64, to: u64) -> String {
    let output = std::process::Command::new(crate::common::coffer_bin())
        .args(["admin", "--metadata", peers, "meta", "move", "--group", &group.to_string()])
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .output()
        .expect("coffer admin meta move");
    assert!(
        output.status.success(),
        "move failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `check` every 200 ms until it holds, failing with `what` after 30 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_range_group_moves_to_a_new_process_under_load_and_a_listing_sees_every_key_once() {
    let dir = tempfile::Builder::new().prefix("coffer-move").tempdir_in(crate::common::test_root()).expect("tempdir");
    let (procs, urls, peers) = metadata_group::start_three(dir.path());
    let mut procs: Vec<Option<Proc>> = procs.into_iter().map(Some).collect();
    let rt = runtime();
    metadata_group::wait_for_leader(&rt, &urls, Duration::from_secs(30)).expect("group 0 elects a leader");
    create_group(&peers, 1, "", "z");
    wait_for_group(&rt, &urls, 1);
    let client = rt.block_on(async { MetadataClient::connect(&urls, &ClientConfig::default()) }).expect("client");
    rt.block_on(async {
        let bucket = CreateBucketRequest { name: "b".into(), owner: "me".into(), ..Default::default() };
        client.rpc().create_bucket(bucket).await.expect("create the bucket");
    });
    let before: BTreeSet<String> = (0..1500).map(|i| key(i * 2)).collect();
    rt.block_on(put_all_routed(&client, &before));

    // A fourth process joins group 0; it holds no range group yet.
    let new_url = format!("http://127.0.0.1:{}", crate::common::free_port());
    let new_db = dir.path().join("meta3");
    let args = [
        "metadata",
        "--listen",
        new_url.trim_start_matches("http://"),
        "--db",
        &new_db.display().to_string(),
        "--join",
        &peers,
    ]
    .map(String::from);
    procs.push(Some(Proc::spawn("meta3", &args, dir.path())));
    eventually("the fourth process joins group 0 as a voter", || {
        urls.iter()
            .filter_map(|url| status(&rt, url))
            .any(|s| s.state == "leader" && !s.joint && s.replicas.iter().filter(|r| r.voter).count() == 4)
    });
    let to = status(&rt, &new_url).expect("status of the new process").node_id;
    // The process leading group 1 gives its replica away.
    let (old, from) = urls
        .iter()
        .enumerate()
        .find_map(|(i, url)| {
            let s = status(&rt, url)?;
            s.groups.iter().any(|g| g.group == 1 && g.state == "leader").then_some((i, s.node_id))
        })
        .expect("a leader of group 1");
    eprintln!("moving group 1 from node {from} ({}) to node {to} ({new_url})", urls[old]);

    // Writers (the odd keys), journaled; a slow listing.
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let unknown = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let listings = ListingClient::linearizable(client.clone());
    let (writers, listing) = {
        let _guard = rt.enter();
        let mut writers = Vec::new();
        for w in 0..4usize {
            let (client, acknowledged, unknown, stop) =
                (client.clone(), acknowledged.clone(), unknown.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) && i < 1500 {
                    let key = key((i * 7919 % 1500) * 2 + 1);
                    match put_acknowledged(&client, &key).await {
                        Ok(()) => acknowledged.lock().unwrap().insert(key),
                        Err(e) => {
                            eprintln!("put {key} gave up: {e}");
                            unknown.lock().unwrap().insert(key)
                        }
                    };
                    i += 4;
                }
            }));
        }
        let listings = listings.clone();
        let listing = tokio::spawn(async move {
            let keys = list_all(&listings, 25, Duration::from_millis(40)).await;
            (keys, Instant::now())
        });
        (writers, listing)
    };
    std::thread::sleep(Duration::from_millis(500));
    let move_started = Instant::now();
    let answer = admin_move(&peers, 1, from, to);
    let move_done = Instant::now();
    eprintln!("moved in {:?}: {answer}", move_done - move_started);

    let (listed, listing_done) = rt.block_on(listing).expect("the listing task");
    assert!(listing_done > move_done, "the listing ran across the move");
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        rt.block_on(writer).expect("a writer task");
    }
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "the listing is strictly ordered");
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    let missing: Vec<&String> = before.difference(&listed_set).collect();
    assert!(missing.is_empty(), "the listing missed {} keys: {:?}", missing.len(), &missing[..missing.len().min(10)]);
    let acknowledged = acknowledged.lock().unwrap().clone();
    let unknown = unknown.lock().unwrap().clone();
    for key in &listed {
        assert!(before.contains(key) || acknowledged.contains(key) || unknown.contains(key), "{key} was never written");
    }
    eprintln!(
        "listing across the move: {} keys; {} written during the load ({} gave up)",
        listed.len(),
        acknowledged.len(),
        unknown.len()
    );
    assert!(!acknowledged.is_empty(), "writes went on during the move");

    // The range table names the new process, not the old one.
    let table = rt.block_on(client.raft().range_table(RangeTableRequest {})).expect("range table").into_inner();
    let replicas = &table.groups.iter().find(|g| g.group == 1).expect("group 1 in the table").replicas;
    assert!(replicas.contains(&new_url) && !replicas.contains(&urls[old]), "group 1's replicas: {replicas:?}");
    // The new process serves the group; the old one closed it and deleted its copy.
    eventually("the new process holds group 1 as a voter", || {
        status(&rt, &new_url)
            .is_some_and(|s| s.groups.iter().any(|g| g.group == 1 && matches!(g.state.as_str(), "follower" | "leader")))
    });
    let old_copy = dir.path().join(format!("meta{old}.groups")).join("1");
    eventually("the old process closes group 1 and deletes its copy", || {
        !old_copy.exists() && status(&rt, &urls[old]).is_some_and(|s| s.groups.iter().all(|g| g.group != 1))
    });

    // The group no longer needs the old process: with it killed, everything reads back and a
    // write lands.
    procs[old].as_mut().expect("running").kill9();
    let client = rt
        .block_on(async {
            let alive: Vec<String> =
                urls.iter().enumerate().filter(|(i, _)| *i != old).map(|(_, u)| u.clone()).collect();
            MetadataClient::connect(&alive, &ClientConfig::default())
        })
        .expect("client");
    rt.block_on(async {
        let wanted: BTreeSet<String> = before.union(&acknowledged).cloned().collect();
        let all = list_all(&ListingClient::linearizable(client.clone()), 1000, Duration::ZERO).await;
        let all_set: BTreeSet<String> = all.iter().cloned().collect();
        assert_eq!(all.len(), all_set.len(), "no key twice");
        assert!(wanted.is_subset(&all_set), "every acknowledged key is listed");
        assert!(all_set.difference(&wanted).all(|k| unknown.contains(k)), "nothing else is listed");
        for key in &wanted {
            let request = GetObjectRequest { bucket: "b".into(), key: key.clone(), ..Default::default() };
            let record = client.rpc().get_object(request).await.unwrap_or_else(|e| panic!("get {key}: {e}"));
            let data: Vec<u8> = record
                .into_inner()
                .record
                .unwrap_or_default()
                .segments
                .into_iter()
                .flat_map(|s| s.inline_data)
                .collect();
            assert_eq!(data, key.as_bytes());
        }
        put_acknowledged(&client, "after-the-move").await.expect("a write after the move");
    });
    drop(procs);
}
