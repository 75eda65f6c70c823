//! Clients route by range (issue 11, step 2): three `coffer metadata` replicas form group 0, range
//! groups 1 and 2 split bucket "b" (group 0 keeps the keys below "f" and from "t" on), and a plain
//! `MetadataClient` — no group header — writes a few hundred inline objects over every range,
//! including a prefix ("m/") that straddles the boundary between groups 1 and 2. Each object lands
//! in the group owning its key; paginated listings (objects, with and without a delimiter, and
//! versions) with small pages return every key and common prefix exactly once, in order, in full
//! pages; every object reads back; a client whose table predates a group follows a WrongRange
//! answer to it; and group 0 refuses, with WrongRange, a read or a write of a key that a range
//! group owns. The bucket is created once, in group 0, which hands it to the range groups.
//!
//! Bucket state from group 0: a bucket created once through the routed client is usable in every
//! range group, a versioning change reaches them, and DeleteBucket is refused while a range group
//! holds keys of the bucket and succeeds (and reaches the range groups) once they are deleted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::{
    CreateBucketRequest, DeleteBucketRequest, DeleteObjectRequest, GetBucketRequest, GetObjectRequest,
    ListObjectVersionsRequest, ListObjectsRequest, ObjectRecord, PutObjectRequest, Segment, SetBucketVersioningRequest,
    Versioning,
};
use coffer_proto::stale_reads::ListingClient;
use coffer_proto::{ErrorCode, RemoteError};

use crate::common::metadata_group::{self, in_group, wait_for_group};
use crate::common::runtime;

pub(crate) fn object(key: &str) -> ObjectRecord {
    let segment = Segment { size: key.len() as u64, inline_data: key.as_bytes().to_vec(), ..Default::default() };
    ObjectRecord {
        bucket: "b".into(),
        key: key.into(),
        size: key.len() as u64,
        etag: "e".into(),
        segments: vec![segment],
        ..Default::default()
    }
}

/// `coffer admin meta create-group` for bucket "b"'s keys in [start, end).
pub(crate) fn create_group(peers: &str, group: u64, start: &str, end: &str) {
    let (group, start, end) = (group.to_string(), format!("b/{start}"), format!("b/{end}"));
    metadata_group::meta_admin(peers, &["create-group", "--group", &group, "--start", &start, "--end", &end]);
}

/// The listing of `keys` under no prefix, folded at `delimiter`: what paging must reproduce.
fn expected(keys: &BTreeSet<String>, delimiter: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let entry = match key.find(delimiter).filter(|_| !delimiter.is_empty()) {
            Some(at) => key[..at + delimiter.len()].to_string(),
            None => key.clone(),
        };
        if out.last() != Some(&entry) {
            out.push(entry);
        }
    }
    out
}

/// Pages through bucket "b" as the gateway does: each page resumes after the last entry.
async fn page_through(listings: &ListingClient, delimiter: &str, page_size: u32) -> Vec<String> {
    let mut entries = Vec::new();
    let mut marker = String::new();
    for _ in 0..10_000 {
        let request = ListObjectsRequest {
            bucket: "b".into(),
            delimiter: delimiter.into(),
            start_after: marker.clone(),
            max_keys: page_size,
            ..Default::default()
        };
        let page = listings.list_objects(request).await.expect("list a page").into_inner();
        let mut page_entries: Vec<String> =
            page.objects.iter().map(|o| o.key.clone()).chain(page.common_prefixes.iter().cloned()).collect();
        page_entries.sort();
        assert!(page_entries.len() <= page_size as usize, "a page holds at most max_keys entries");
        if page.is_truncated {
            assert_eq!(page_entries.len(), page_size as usize, "pages are filled across range ends");
            assert_eq!(page_entries.last(), Some(&page.next_marker));
        }
        entries.extend(page_entries);
        if !page.is_truncated {
            return entries;
        }
        marker = page.next_marker;
    }
    panic!("the listing never ends");
}

#[test]
fn metadata_clients_route_by_range_and_list_across_range_boundaries() {
    let dir =
        tempfile::Builder::new().prefix("coffer-routing").tempdir_in(crate::common::test_root()).expect("tempdir");
    let (_procs, urls, peers) = metadata_group::start_three(dir.path());
    let rt = runtime();
    metadata_group::wait_for_leader(&rt, &urls, Duration::from_secs(30)).expect("group 0 elects a leader");
    let connect = || rt.block_on(async { MetadataClient::connect(&urls, &ClientConfig::default()) }).expect("client");

    // Group 1 owns "b"'s keys in [f, m/5); group 2 [m/5, t); group 0 the rest.
    create_group(&peers, 1, "f", "m/5");
    wait_for_group(&rt, &urls, 1);
    // A client that loads its table now, before group 2 exists.
    let early = connect();
    rt.block_on(async {
        // Once, in group 0, which hands it to group 1 now and to group 2 when group 2 is created.
        let bucket = CreateBucketRequest { name: "b".into(), owner: "me".into(), ..Default::default() };
        early.rpc().create_bucket(bucket).await.expect("create the bucket");
    });
    create_group(&peers, 2, "m/5", "t");
    wait_for_group(&rt, &urls, 2);
    let client = connect();

    // Keys over every range: 26 stems of 8 keys, "m/00".."m/99" across the group 1/2 boundary,
    // nested prefixes, and the range bounds themselves.
    let mut keys = BTreeSet::new();
    for stem in 'a'..='z' {
        for i in 0..8 {
            keys.insert(format!("{stem}{i:02}"));
        }
    }
    for i in 0..100 {
        keys.insert(format!("m/{i:02}"));
    }
    for key in ["d/x/1", "d/y", "f", "m/5", "s/deep/1", "t", "t/1", "zz/top"] {
        keys.insert(key.to_string());
    }
    rt.block_on(put_all_routed(&client, &keys));
    eprintln!("wrote {} keys through the routed client", keys.len());

    rt.block_on(async {
        // Each key is where its range says, and only there.
        for (key, owner) in [("a00", 0), ("f", 1), ("m/49", 1), ("m/5", 2), ("m/50", 2), ("s07", 2), ("t", 0)] {
            for group in 0..3u64 {
                let request = GetObjectRequest { bucket: "b".into(), key: key.into(), ..Default::default() };
                let found = client.rpc().get_object(in_group(request, group)).await.map_err(RemoteError::from);
                match found {
                    Ok(_) => assert_eq!(group, owner, "{key} is in group {group}"),
                    Err(e) if group == owner => panic!("{key} is missing from group {owner}: {e}"),
                    // Group 0 refuses the keys of its range groups as they refuse keys outside theirs.
                    Err(e) => assert_eq!(e.code, ErrorCode::WrongRange, "{key} in group {group}: {e}"),
                }
            }
        }
        // Every object reads back through the router.
        assert_read_back(&client, &keys).await;

        // One raw page: group 0's part ends where group 1's starts.
        let first = ListObjectsRequest { bucket: "b".into(), max_keys: 1000, ..Default::default() };
        let page = client.rpc().list_objects(first).await.expect("first page").into_inner();
        assert!(page.is_truncated, "group 0 stops at group 1's range");
        assert_eq!(page.resume_at, "f");
        assert!(page.objects.iter().all(|o| o.key.as_str() < "f"));

        // Full listings, page by page, as the gateway pages.
        let listings = ListingClient::linearizable(client.clone());
        for delimiter in ["", "/"] {
            let want = expected(&keys, delimiter);
            for page_size in [7, 1000] {
                let got = page_through(&listings, delimiter, page_size).await;
                assert_eq!(got, want, "delimiter {delimiter:?}, pages of {page_size}");
            }
        }

        // Versions (objects written before versioning are "null" versions), also page by page.
        let mut listed = Vec::new();
        let mut request = ListObjectVersionsRequest { bucket: "b".into(), max_keys: 9, ..Default::default() };
        loop {
            let page = listings.list_object_versions(request.clone()).await.expect("versions page").into_inner();
            listed.extend(page.versions.iter().map(|v| v.record.as_ref().map(|r| r.key.clone()).unwrap_or_default()));
            if !page.is_truncated {
                break;
            }
            assert_eq!(page.versions.len(), 9, "version pages are filled across range ends");
            request.key_marker = page.next_key_marker;
            request.version_id_marker = page.next_version_id_marker;
        }
        assert_eq!(listed, keys.iter().cloned().collect::<Vec<_>>(), "every version once, in order");

        // The early client's table predates group 2: a listing starting in group 2's range goes
        // to group 0, which answers WrongRange; the client refreshes and asks group 2.
        let request = ListObjectsRequest {
            bucket: "b".into(),
            prefix: "m/".into(),
            start_after: "m/77".into(),
            max_keys: 1000,
            ..Default::default()
        };
        let refused = client.rpc().list_objects(in_group(request.clone(), 0)).await.map_err(RemoteError::from);
        assert_eq!(refused.expect_err("group 0 refuses").code, ErrorCode::WrongRange);
        let page = early.rpc().list_objects(request).await.expect("the early client finds group 2").into_inner();
        let got: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        let want: Vec<String> = (78..100).map(|i| format!("m/{i:02}")).collect();
        assert_eq!(got, want);

        // Group 0 refuses to write a key that a range group owns: a client addressing it (by
        // header here, as a stale table would) is told WrongRange instead of writing the key
        // where the range group's readers never look.
        for key in ["g-stale", "m/77x"] {
            let request = PutObjectRequest { record: Some(object(key)), intents: Vec::new(), condition: None };
            let refused = client.rpc().put_object(in_group(request, 0)).await.map_err(RemoteError::from);
            assert_eq!(refused.expect_err("group 0 refuses the write").code, ErrorCode::WrongRange, "{key}");
        }
        let request = GetObjectRequest { bucket: "b".into(), key: "g-stale".into(), ..Default::default() };
        let refused = client.rpc().get_object(in_group(request, 0)).await.map_err(RemoteError::from);
        assert_eq!(refused.expect_err("group 0 refuses the read").code, ErrorCode::WrongRange);
        // Without a header the router sends it to group 2 (the early client refreshed its table
        // on the WrongRange above, or since in the background).
        let request = PutObjectRequest { record: Some(object("m/77x")), intents: Vec::new(), condition: None };
        early.rpc().put_object(request).await.expect("the early client writes in group 2");
        let request = GetObjectRequest { bucket: "b".into(), key: "m/77x".into(), ..Default::default() };
        client.rpc().get_object(in_group(request, 2)).await.expect("m/77x is in group 2");
    });
}

/// Every key of bucket "b" in `keys` reads back through the routed client, its inline data the
/// key's bytes (as [`object`] wrote it).
pub(crate) async fn assert_read_back(client: &MetadataClient, keys: &BTreeSet<String>) {
    for key in keys {
        let request = GetObjectRequest { bucket: "b".into(), key: key.clone(), ..Default::default() };
        let record = client.rpc().get_object(request).await.unwrap_or_else(|e| panic!("get {key}: {e}"));
        let data: Vec<u8> =
            record.into_inner().record.unwrap_or_default().segments.into_iter().flat_map(|s| s.inline_data).collect();
        assert_eq!(data, key.as_bytes(), "{key}");
    }
}

/// Puts `key` through the routed client, retrying while its range group has not received the
/// bucket yet (Unavailable) for at most 30 s.
/// Writes every key of `keys` through the routed client, 16 at a time (see [`put_routed`]).
pub(crate) async fn put_all_routed(client: &MetadataClient, keys: &BTreeSet<String>) {
    let mut writes = tokio::task::JoinSet::new();
    let all: Vec<String> = keys.iter().cloned().collect();
    for chunk in all.chunks(all.len().div_ceil(16)) {
        let (client, chunk) = (client.clone(), chunk.to_vec());
        writes.spawn(async move {
            for key in chunk {
                put_routed(&client, &key).await;
            }
        });
    }
    while let Some(done) = writes.join_next().await {
        done.expect("a writer task");
    }
}

pub(crate) async fn put_routed(client: &MetadataClient, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = PutObjectRequest { record: Some(object(key)), intents: Vec::new(), condition: None };
        match client.rpc().put_object(request).await.map_err(RemoteError::from) {
            Ok(_) => return,
            Err(e) if e.code == ErrorCode::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("put {key}: {e}"),
        }
    }
}

/// Every version id of `key`, newest first, through the routed client.
async fn versions_of(client: &MetadataClient, key: &str) -> Vec<String> {
    let request =
        ListObjectVersionsRequest { bucket: "b".into(), prefix: key.into(), max_keys: 100, ..Default::default() };
    let page = client.rpc().list_object_versions(request).await.expect("list versions").into_inner();
    page.versions.into_iter().filter_map(|v| v.record).filter(|r| r.key == key).map(|r| r.version_id).collect()
}

#[test]
fn bucket_state_reaches_the_range_groups_from_group_0() {
    let dir =
        tempfile::Builder::new().prefix("coffer-bucket-state").tempdir_in(crate::common::test_root()).expect("tempdir");
    let (_procs, urls, peers) = metadata_group::start_three(dir.path());
    let rt = runtime();
    metadata_group::wait_for_leader(&rt, &urls, Duration::from_secs(30)).expect("group 0 elects a leader");
    // Group 1 owns "b"'s keys in [f, m); group 2 [m, t); group 0 the rest.
    create_group(&peers, 1, "f", "m");
    create_group(&peers, 2, "m", "t");
    wait_for_group(&rt, &urls, 1);
    wait_for_group(&rt, &urls, 2);
    let client = rt.block_on(async { MetadataClient::connect(&urls, &ClientConfig::default()) }).expect("client");

    rt.block_on(async {
        // Created once, without a header: group 0, which hands it to groups 1 and 2.
        let bucket = CreateBucketRequest { name: "b".into(), owner: "me".into(), ..Default::default() };
        client.rpc().create_bucket(bucket).await.expect("create the bucket");
        let keys = ["a1", "g1", "n1", "z1"];
        for key in keys {
            put_routed(&client, key).await;
        }
        for (key, owner) in [("a1", 0u64), ("g1", 1), ("n1", 2), ("z1", 0)] {
            let request = GetObjectRequest { bucket: "b".into(), key: key.into(), ..Default::default() };
            client.rpc().get_object(in_group(request, owner)).await.unwrap_or_else(|e| panic!("{key} in {owner}: {e}"));
        }

        // Versioning, changed through group 0, reaches both range groups.
        let enable = SetBucketVersioningRequest { name: "b".into(), versioning: Versioning::Enabled as i32 };
        client.rpc().set_bucket_versioning(enable).await.expect("enable versioning");
        for group in [1u64, 2] {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let request = GetBucketRequest { name: "b".into() };
                let bucket = client.rpc().get_bucket(in_group(request, group)).await.expect("get bucket");
                if bucket.into_inner().bucket.is_some_and(|b| b.versioning() == Versioning::Enabled) {
                    break;
                }
                assert!(Instant::now() < deadline, "versioning reaches group {group}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        for key in ["g1", "n1"] {
            put_routed(&client, key).await;
            assert_eq!(versions_of(&client, key).await.len(), 2, "{key}: the null version and a new one");
        }

        // DeleteBucket: group 0's own keys gone, the range groups' keys still there: refused.
        let delete_all = |key: &'static str| {
            let client = client.clone();
            async move {
                for version_id in versions_of(&client, key).await {
                    let request =
                        DeleteObjectRequest { bucket: "b".into(), key: key.into(), version_id, ..Default::default() };
                    client.rpc().delete_object(request).await.unwrap_or_else(|e| panic!("delete {key}: {e}"));
                }
                assert!(versions_of(&client, key).await.is_empty(), "{key} has no version left");
            }
        };
        for key in ["a1", "z1"] {
            delete_all(key).await;
        }
        let refused = client.rpc().delete_bucket(DeleteBucketRequest { name: "b".into() }).await;
        assert_eq!(
            refused.map_err(RemoteError::from).expect_err("keys in range groups").code,
            ErrorCode::BucketNotEmpty
        );
        delete_all("g1").await;
        let refused = client.rpc().delete_bucket(DeleteBucketRequest { name: "b".into() }).await;
        assert_eq!(refused.map_err(RemoteError::from).expect_err("keys in group 2").code, ErrorCode::BucketNotEmpty);
        delete_all("n1").await;
        client.rpc().delete_bucket(DeleteBucketRequest { name: "b".into() }).await.expect("delete the empty bucket");
        // The deletion reaches the range groups too.
        for group in [1u64, 2] {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let request = GetBucketRequest { name: "b".into() };
                let found = client.rpc().get_bucket(in_group(request, group)).await.map_err(RemoteError::from);
                match found {
                    Err(e) if e.code == ErrorCode::NoSuchBucket => break,
                    _ => assert!(Instant::now() < deadline, "the deletion reaches group {group}: {found:?}"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
}
