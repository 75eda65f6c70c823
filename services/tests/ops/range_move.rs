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

use std::time::{Duration, Instant};

use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::RangeTableRequest;

use crate::common::Proc;
use crate::common::metadata_group::{meta_admin, status};
use crate::range_split::{Fixture, check_all_after_load, check_listing_across, fixture, put_acknowledged, start_load};

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
    let Fixture { mut procs, urls, peers, rt, client, before } = fixture(dir.path());

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

    let (writers, listing) = start_load(&rt, &client);
    std::thread::sleep(Duration::from_millis(500));
    let move_started = Instant::now();
    let (from_id, to_id) = (from.to_string(), to.to_string());
    let answer = meta_admin(&peers, &["move", "--group", "1", "--from", &from_id, "--to", &to_id]);
    let move_done = Instant::now();
    eprintln!("moved in {:?}: {answer}", move_done - move_started);

    let (listed, listing_done) = rt.block_on(listing).expect("the listing task");
    assert!(listing_done > move_done, "the listing ran across the move");
    let (acknowledged, unknown) = writers.stop(&rt);
    check_listing_across("move", &listed, &before, &acknowledged, &unknown);
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
        check_all_after_load(&client, &before, &acknowledged, &unknown).await;
        put_acknowledged(&client, "after-the-move").await.expect("a write after the move");
    });
    drop(procs);
}
