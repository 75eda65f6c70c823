//! Range groups on the metadata processes (issue 11, step 1): three `coffer metadata` replicas
//! form group 0, `coffer admin meta create-group` makes range group 1, and a client addressing
//! group 1 by the `x-coffer-group` header creates a bucket and writes and reads objects there, is
//! refused with WrongRange outside the range, keeps being served after group 1's leader process is
//! killed with SIGKILL, and the restarted process reopens group 1.

use std::time::{Duration, Instant};

use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::{
    CreateBucketRequest, GetObjectRequest, ObjectRecord, PutObjectRequest, RaftStatusResponse, Segment,
};
use coffer_proto::{ErrorCode, RemoteError};

use crate::common::metadata_group::{self, in_group, status};
use crate::common::{Proc, free_port, runtime};

/// Group 1's own status as `url` reports it (in group 0's `groups`), when it has group 1 open.
fn group_status(rt: &tokio::runtime::Runtime, url: &str, group: u64) -> Option<RaftStatusResponse> {
    status(rt, url)?.groups.into_iter().find(|g| g.group == group)
}

/// The URL of the first of `urls` whose group `group` reports itself leader, polling until `limit`.
fn group_leader(rt: &tokio::runtime::Runtime, urls: &[String], group: u64, limit: Duration) -> Option<String> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(url) = urls.iter().find(|u| group_status(rt, u, group).is_some_and(|s| s.state == "leader")) {
            return Some(url.clone());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn object(key: &str, body: &[u8]) -> ObjectRecord {
    let segment = Segment { size: body.len() as u64, inline_data: body.to_vec(), ..Default::default() };
    ObjectRecord {
        bucket: "b".into(),
        key: key.into(),
        size: body.len() as u64,
        etag: "e".into(),
        segments: vec![segment],
        ..Default::default()
    }
}

async fn put(client: &MetadataClient, key: &str, body: &[u8]) -> Result<(), RemoteError> {
    let request = PutObjectRequest { record: Some(object(key, body)), intents: Vec::new(), condition: None };
    client.rpc().put_object(in_group(request, 1)).await.map(|_| ()).map_err(RemoteError::from)
}

async fn get(client: &MetadataClient, key: &str, group: u64) -> Result<Vec<u8>, RemoteError> {
    let request = GetObjectRequest { bucket: "b".into(), key: key.into(), ..Default::default() };
    let record = client.rpc().get_object(in_group(request, group)).await.map_err(RemoteError::from)?;
    let record = record.into_inner().record.unwrap_or_default();
    Ok(record.segments.into_iter().flat_map(|s| s.inline_data).collect())
}

/// The code `call` is refused with, asking again while it is Unavailable (a leader change or a
/// read barrier that timed out on a loaded machine: "try again", not the answer under test).
async fn refusal<T: std::fmt::Debug>(mut call: impl AsyncFnMut() -> Result<T, RemoteError>) -> ErrorCode {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Err(e) if e.code == ErrorCode::Unavailable && Instant::now() < deadline => {
                eprintln!("refusal: unavailable, asking again: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return e.code,
            Ok(answer) => panic!("expected a refusal, got {answer:?}"),
        }
    }
}

#[test]
fn a_range_group_serves_its_range_survives_its_leader_and_reopens_after_a_restart() {
    let dir = tempfile::Builder::new().prefix("coffer-groups").tempdir_in(crate::common::test_root()).expect("tempdir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let urls: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    let peers = urls.join(",");
    let args: Vec<Vec<String>> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let db = dir.path().join(format!("meta{i}")).display().to_string();
            ["metadata", "--listen", &format!("127.0.0.1:{port}"), "--db", &db, "--peers", &peers]
                .map(String::from)
                .to_vec()
        })
        .collect();
    let mut procs: Vec<Option<Proc>> =
        args.iter().enumerate().map(|(i, a)| Some(Proc::spawn(&format!("meta{i}"), a, dir.path()))).collect();
    let rt = runtime();
    metadata_group::wait_for_leader(&rt, &urls, Duration::from_secs(30)).expect("group 0 elects a leader");

    // Group 1 owns the keys of bucket "b" below "m".
    metadata_group::meta_admin(&peers, &["create-group", "--group", "1", "--start", "b", "--end", "b/m"]);
    let leader = group_leader(&rt, &urls, 1, Duration::from_secs(30)).expect("group 1 elects a leader");
    let shown = metadata_group::meta_admin(&peers, &["status"]);
    eprintln!("coffer admin meta status:\n{shown}");
    assert!(shown.contains("group 1 [b/, b/m) epoch 1"), "status shows group 1's range: {shown}");

    let client = rt.block_on(async { MetadataClient::connect(&urls, &ClientConfig::default()) }).expect("client");
    rt.block_on(async {
        let bucket = CreateBucketRequest { name: "b".into(), owner: "me".into(), ..Default::default() };
        client.rpc().create_bucket(in_group(bucket, 1)).await.expect("create the bucket in group 1");
        for key in ["apple", "kiwi"] {
            put(&client, key, key.as_bytes()).await.expect("put in range");
        }
        assert_eq!(get(&client, "apple", 1).await.expect("get in range"), b"apple");
        // Outside the range: refused for writes (inside apply) and point reads.
        assert_eq!(refusal(async || put(&client, "zebra", b"z").await).await, ErrorCode::WrongRange, "put outside");
        assert_eq!(refusal(async || get(&client, "melon", 1).await).await, ErrorCode::WrongRange, "get outside");
        // Group 0 holds none of it, and refuses to answer for group 1's keys.
        assert_eq!(refusal(async || get(&client, "apple", 0).await).await, ErrorCode::WrongRange, "group 0");
    });

    // Group 1's leader process dies; the group answers again with a new leader.
    let victim = urls.iter().position(|u| *u == leader).expect("the leader is one of ours");
    procs[victim].as_mut().expect("running").kill9();
    procs[victim] = None;
    let survivors: Vec<String> = urls.iter().filter(|u| **u != leader).cloned().collect();
    let new_leader = group_leader(&rt, &survivors, 1, Duration::from_secs(30)).expect("group 1 elects a new leader");
    eprintln!("group 1: killed {leader}, {new_leader} leads");
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = put(&client, "lime", b"lime").await {
            assert!(Instant::now() < deadline, "group 1 takes writes after the failover: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(get(&client, "kiwi", 1).await.expect("get after failover"), b"kiwi");
        assert_eq!(get(&client, "lime", 1).await.expect("get after failover"), b"lime");
    });

    // The restarted process reopens group 1 (recorded in its group 0) and catches up.
    procs[victim] = Some(Proc::spawn("meta-restarted", &args[victim], dir.path()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reopened = group_status(&rt, &urls[victim], 1);
        let leader_log = group_status(&rt, &new_leader, 1).map(|s| s.applied_index);
        if let (Some(reopened), Some(applied)) = (&reopened, leader_log)
            && reopened.range.is_some()
            && reopened.applied_index >= applied
        {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted replica reopens group 1 and catches up: {reopened:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
