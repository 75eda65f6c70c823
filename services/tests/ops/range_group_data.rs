//! Range groups stand alone (issue 11; the first of the remaining steps in
//! docs/design/metadata-sharding.md): three `coffer metadata` replicas form group 0, range group 1
//! owns bucket "data"'s keys below "m", and three blobnodes and a gateway (`--ec 2+1`, 1 MiB
//! stripes) serve S3. Erasure-coded objects of several sizes (one stripe, several, multi-MiB) and a
//! multipart upload written through the gateway land in group 1 — the data allocated there by its
//! leader from group 0's cluster map, the intents committed there — and read back byte-exact; an
//! object above "m" stays group 0's. Data that an overwrite, a delete or an aborted upload leaves
//! behind is collected by group 1's own collector (group 0 never held those data ids): every shard
//! of it disappears from the blobnodes, and the shards of the objects still stored stay.
//!
//! Calls by data id: a damaged-shard report of group 1's data, sent through the routed client, is
//! kept by group 1 only (one naming the object's key goes to group 1 alone, one naming a key of
//! group 0 to group 0 alone); a `coffer repair` worker claims it from group 1, rebuilds the column and
//! completes it there, and the object reads back. The bucket's usage sums both groups, and so do
//! group 0's repair status and damaged-shard listing (addressed to one group, each answers alone).
//! Group 1's own lifecycle worker expires an object of its range by the bucket's rule (lifecycle
//! days of 2 s).
//!
//! Node administration asks the range groups: a draining node that group 0's records no longer
//! name but group 1's do cannot be removed and is not called drained until group 1's data moved
//! (to a fourth blobnode, by a repair worker started only then); then it is removed.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, CompletedMultipartUpload, CompletedPart, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter,
};
use coffer_proto::blobnode_client::BlobnodePool;
use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::blobnode::ShardId;
use coffer_proto::pb::metadata::{
    DamagedShard, DataLayout, GetBucketUsageRequest, GetClusterMapRequest, GetObjectRequest, GetRepairStatusRequest,
    ListDamagedShardsRequest, ListPartsRequest, NodeAdmin, ObjectRecord, RemoveNodeRequest, ReportDamagedShardsRequest,
    Segment, SetNodeAdminRequest,
};
use coffer_proto::{ErrorCode, RemoteError};

use crate::common::metadata_group::{self, in_group, start_blobnodes_and_gateway, wait_for_group};
use crate::common::{Proc, blobnode_args_for, client, error_code, get_bytes, get_range, pattern, put_bytes, runtime};

const BUCKET: &str = "data";

/// The record of `key` as group `group` holds it (WrongRange if another group owns the key).
async fn record_in(metadata: &MetadataClient, group: u64, key: &str) -> Result<ObjectRecord, RemoteError> {
    let request = GetObjectRequest { bucket: BUCKET.into(), key: key.into(), ..Default::default() };
    let found = metadata.rpc().get_object(in_group(request, group)).await.map_err(RemoteError::from)?;
    Ok(found.into_inner().record.unwrap_or_default())
}

fn layouts(segments: &[Segment]) -> Vec<DataLayout> {
    segments.iter().filter_map(|s| s.layout.clone()).collect()
}

/// Whether the blobnodes still hold shard 0 of stripe 0 of every column of `layout` (all of them,
/// or none of them: anything in between is reported as "some").
async fn shards_held(pool: &BlobnodePool, layout: &DataLayout) -> &'static str {
    let mut held = 0;
    for (index, location) in layout.shards.iter().enumerate() {
        let id = ShardId { data_id: layout.data_id.clone(), stripe: 0, index: index as u32 };
        match pool.stat_shard(&location.node_id, &location.disk_id, id).await {
            Ok(_) => held += 1,
            Err(e) if e.code == ErrorCode::NoSuchShard => {}
            Err(e) => panic!("stat shard {index} of {}: {e}", hex::encode(&layout.data_id)),
        }
    }
    match held {
        0 => "none",
        n if n == layout.shards.len() => "all",
        _ => "some",
    }
}

#[test]
fn a_range_group_stores_erasure_coded_objects_and_collects_their_garbage() {
    let dir =
        tempfile::Builder::new().prefix("coffer-range-data").tempdir_in(crate::common::test_root()).expect("tempdir");
    // Replaced and deleted data is collected one second after it stopped being referenced.
    let flags =
        ["--gc-grace", "1s", "--gc-interval", "200ms", "--lifecycle-day-seconds", "2", "--lifecycle-interval", "200ms"];
    let (_procs, urls, peers) = metadata_group::start_three_with(dir.path(), &flags);
    let rt = runtime();
    metadata_group::wait_for_leader(&rt, &urls, Duration::from_secs(30)).expect("group 0 elects a leader");
    metadata_group::meta_admin(
        &peers,
        &["create-group", "--group", "1", "--start", BUCKET, "--end", &format!("{BUCKET}/m")],
    );
    wait_for_group(&rt, &urls, 1);
    let (_blobnodes, _gateway, addr) = start_blobnodes_and_gateway(dir.path(), &peers, &["--stripe-size", "1MiB"]);
    let s3 = client(&format!("http://{addr}"));
    let metadata = rt.block_on(async { MetadataClient::connect(&urls, &ClientConfig::default()) }).expect("client");

    let objects: Vec<(&str, Vec<u8>)> = vec![
        ("a/200k", pattern(200 << 10, 1)),
        ("b/1m", pattern(1 << 20, 2)),
        ("c/5m", pattern((5 << 20) + 17, 3)),
        ("d/9m", pattern((9 << 20) + 3, 4)),
        // Above "m": group 0's.
        ("z/3m", pattern(3 << 20, 5)),
    ];
    let part_sizes = [(5 << 20) + 1, 5 << 20, (2 << 20) + 5];
    let parts: Vec<Vec<u8>> = part_sizes.iter().enumerate().map(|(i, len)| pattern(*len, 10 + i as u64)).collect();
    let multipart: Vec<u8> = parts.concat();

    let garbage: Vec<DataLayout> = rt.block_on(async {
        // The bucket is created in group 0 and handed to group 1 in the background; placement
        // needs the blobnodes' heartbeats. Retry the first write until both are there.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let made = s3.create_bucket().bucket(BUCKET).send().await;
            if made.is_ok() || Instant::now() > deadline {
                made.expect("create bucket");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = ByteStream::from(pattern(300 << 10, 0));
            let put = s3.put_object().bucket(BUCKET).key("a/first").body(body).send().await;
            if put.is_ok() || Instant::now() > deadline {
                put.expect("the first erasure-coded PUT into group 1");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let mut garbage = Vec::new();
        for (key, data) in &objects {
            put_bytes(&s3, BUCKET, key, data.clone()).await;
            assert_eq!(&get_bytes(&s3, BUCKET, key).await, data, "{key} reads back");
            let owner = if *key < "m" { 1 } else { 0 };
            let record =
                record_in(&metadata, owner, key).await.unwrap_or_else(|e| panic!("{key} in group {owner}: {e}"));
            assert!(!layouts(&record.segments).is_empty(), "{key} is erasure-coded, not inline");
            let elsewhere = record_in(&metadata, 1 - owner, key).await.expect_err("one group holds a key");
            assert_eq!(elsewhere.code, ErrorCode::WrongRange, "{key} outside group {}", 1 - owner);
        }
        let middle = get_range(&s3, BUCKET, "d/9m", (4 << 20) - 5, (4 << 20) + 10).await;
        assert_eq!(middle, objects[3].1[(4 << 20) - 5..(4 << 20) + 11], "a range across stripes");

        // A multipart upload in group 1: parts allocated there, completed there.
        let upload = s3.create_multipart_upload().bucket(BUCKET).key("k/multi").send().await.expect("create upload");
        let upload_id = upload.upload_id().expect("upload id").to_string();
        let mut completed = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let number = i as i32 + 1;
            let uploaded = s3
                .upload_part()
                .bucket(BUCKET)
                .key("k/multi")
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(part.clone()))
                .send()
                .await
                .expect("upload part");
            completed.push(CompletedPart::builder().part_number(number).set_e_tag(uploaded.e_tag).build());
        }
        let done = CompletedMultipartUpload::builder().set_parts(Some(completed)).build();
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("k/multi")
            .upload_id(&upload_id)
            .multipart_upload(done)
            .send()
            .await
            .expect("complete upload");
        assert_eq!(get_bytes(&s3, BUCKET, "k/multi").await, multipart, "the multipart object reads back");
        let across = get_range(&s3, BUCKET, "k/multi", (5 << 20) - 3, (5 << 20) + 3).await;
        assert_eq!(across, multipart[(5 << 20) - 3..(5 << 20) + 4], "a range across two parts");
        let record = record_in(&metadata, 1, "k/multi").await.expect("the multipart object is group 1's");
        assert_eq!(layouts(&record.segments).len(), 3, "one data per part");
        garbage.extend(layouts(&record.segments));

        // An aborted upload's part is garbage at once.
        let aborted = s3.create_multipart_upload().bucket(BUCKET).key("k/aborted").send().await.expect("upload");
        let aborted_id = aborted.upload_id().expect("upload id").to_string();
        s3.upload_part()
            .bucket(BUCKET)
            .key("k/aborted")
            .upload_id(&aborted_id)
            .part_number(1)
            .body(ByteStream::from(pattern(1 << 20, 20)))
            .send()
            .await
            .expect("upload a part");
        let listed = ListPartsRequest {
            bucket: BUCKET.into(),
            key: "k/aborted".into(),
            upload_id: aborted_id.clone(),
            max_parts: 10,
            ..Default::default()
        };
        let listed = metadata.rpc().list_parts(in_group(listed, 1)).await.expect("list parts in group 1");
        let part_segments: Vec<Segment> = listed.into_inner().parts.into_iter().filter_map(|p| p.segment).collect();
        assert_eq!(layouts(&part_segments).len(), 1);
        garbage.extend(layouts(&part_segments));
        s3.abort_multipart_upload().bucket(BUCKET).key("k/aborted").upload_id(&aborted_id).send().await.expect("abort");

        // An overwrite leaves the old data behind; deletes leave theirs.
        let replaced = record_in(&metadata, 1, "b/1m").await.expect("b/1m");
        garbage.extend(layouts(&replaced.segments));
        let newer = pattern(3 << 20, 30);
        put_bytes(&s3, BUCKET, "b/1m", newer.clone()).await;
        assert_eq!(get_bytes(&s3, BUCKET, "b/1m").await, newer, "the overwrite reads back");
        for key in ["a/200k", "c/5m", "k/multi"] {
            if key != "k/multi" {
                let record = record_in(&metadata, 1, key).await.expect("a stored object");
                garbage.extend(layouts(&record.segments));
            }
            s3.delete_object().bucket(BUCKET).key(key).send().await.expect("delete");
            let gone = s3.head_object().bucket(BUCKET).key(key).send().await;
            assert!(gone.is_err(), "{key} is deleted");
        }
        garbage
    });

    rt.block_on(async {
        let map = metadata.rpc().get_cluster_map(GetClusterMapRequest {}).await.expect("cluster map").into_inner();
        let pool = BlobnodePool::new(ClientConfig::default());
        pool.set_nodes(map.nodes.into_iter().filter_map(|n| n.info).map(|i| (i.node_id, i.address)));
        // Group 1's collector deletes every shard of the garbage (it was never group 0's).
        let deadline = Instant::now() + Duration::from_secs(60);
        for layout in &garbage {
            loop {
                let held = shards_held(&pool, layout).await;
                if held == "none" {
                    break;
                }
                assert!(Instant::now() < deadline, "data {} is still held ({held})", hex::encode(&layout.data_id));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // What is still stored keeps its shards, and reads back.
        for key in ["d/9m", "b/1m", "a/first"] {
            let record = record_in(&metadata, 1, key).await.expect("a stored object");
            for layout in layouts(&record.segments) {
                assert_eq!(shards_held(&pool, &layout).await, "all", "{key} keeps its shards");
            }
        }
        assert_eq!(get_bytes(&s3, BUCKET, "d/9m").await, objects[3].1);
        assert_eq!(get_bytes(&s3, BUCKET, "z/3m").await, objects[4].1);
        let listing = s3.list_objects_v2().bucket(BUCKET).send().await.expect("list");
        let keys: Vec<&str> = listing.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, ["a/first", "b/1m", "d/9m", "z/3m"], "the listing crosses from group 1 to group 0");
        let usage = metadata.rpc().get_bucket_usage(GetBucketUsageRequest { name: BUCKET.into() }).await;
        let usage = usage.expect("bucket usage").into_inner();
        let bytes = (300 << 10) + (3 << 20) + objects[3].1.len() + objects[4].1.len();
        assert_eq!((usage.objects, usage.bytes), (4, bytes as u64), "usage sums group 1's and group 0's objects");

        // Lose column 0 of d/9m (every stripe) and report it through the routed client: only group
        // 1, which holds the data, keeps it.
        let record = record_in(&metadata, 1, "d/9m").await.expect("d/9m");
        let layout = layouts(&record.segments).remove(0);
        let lost = layout.shards[0].clone();
        pool.delete_data(&lost.node_id, &lost.disk_id, &layout.data_id).await.expect("delete column 0");
        assert_eq!(shards_held(&pool, &layout).await, "some");
        let report = DamagedShard {
            node_id: lost.node_id.clone(),
            disk_id: lost.disk_id.clone(),
            data_id: layout.data_id.clone(),
            stripe: 0,
            index: 0,
            reason: "missing".into(),
            ..Default::default()
        };
        // Stripe 1 as a writer reports what it could not write: naming the key, which routes the
        // report to that key's group alone. Stripe 0 without a key, as the scrubber does: to every
        // group.
        let keyed = ReportDamagedShardsRequest {
            shards: vec![DamagedShard { stripe: 1, ..report.clone() }],
            bucket: BUCKET.into(),
            key: "d/9m".into(),
        };
        metadata.rpc().report_damaged_shards(keyed).await.expect("keyed report");
        metadata
            .rpc()
            .report_damaged_shards(ReportDamagedShardsRequest { shards: vec![report.clone()], ..Default::default() })
            .await
            .expect("report");
        let damaged_in = |group: u64| {
            let metadata = metadata.clone();
            async move {
                let request = in_group(ListDamagedShardsRequest { limit: 100 }, group);
                metadata.rpc().list_damaged_shards(request).await.expect("list damaged").into_inner().shards.len()
            }
        };
        assert_eq!(damaged_in(1).await, 2, "group 1 holds the data: it keeps both reports");
        assert_eq!(damaged_in(0).await, 0, "group 0 does not hold it");
        // A keyed report reaches its key's group only: named by a key of group 0 (wrongly, for
        // group 1's data), group 1 never sees it and group 0 keeps nothing it does not hold.
        let misnamed = ReportDamagedShardsRequest {
            shards: vec![DamagedShard { stripe: 2, ..report.clone() }],
            bucket: BUCKET.into(),
            key: "z/elsewhere".into(),
        };
        metadata.rpc().report_damaged_shards(misnamed).await.expect("misnamed report");
        assert_eq!((damaged_in(0).await, damaged_in(1).await), (0, 2), "sent to group 0 alone");
        // Unaddressed, group 0 answers for every group: the union of the reports, the sum of the
        // repair status.
        let all = metadata.rpc().list_damaged_shards(ListDamagedShardsRequest { limit: 100 }).await;
        assert_eq!(all.expect("list damaged").into_inner().shards.len(), 2, "group 0 lists group 1's reports");
        let repair_status = |group: Option<u64>| {
            let metadata = metadata.clone();
            async move {
                let request = GetRepairStatusRequest { grace_ms: 3_600_000 };
                let answer = match group {
                    Some(group) => metadata.rpc().get_repair_status(in_group(request, group)).await,
                    None => metadata.rpc().get_repair_status(request).await,
                };
                let status = answer.expect("repair status").into_inner();
                (status.damaged_reports, status.degraded_columns)
            }
        };
        assert_eq!(repair_status(Some(0)).await, (0, 0), "group 0 alone");
        assert_eq!(repair_status(Some(1)).await, (2, 1), "group 1 alone: two reports of one column");
        assert_eq!(repair_status(None).await, (2, 1), "the sum counts group 1's damaged column");
    });

    // A repair worker claims from every group in turn and completes where it claimed.
    let mut args: Vec<String> =
        ["repair", "--metadata", &peers, "--repair-interval", "300ms"].map(String::from).to_vec();
    args.extend(["--repair-grace".to_string(), "1h".to_string()]);
    let repair = Proc::spawn("repair", &args, dir.path());
    rt.block_on(async {
        let map = metadata.rpc().get_cluster_map(GetClusterMapRequest {}).await.expect("cluster map").into_inner();
        let pool = BlobnodePool::new(ClientConfig::default());
        pool.set_nodes(map.nodes.into_iter().filter_map(|n| n.info).map(|i| (i.node_id, i.address)));
        let record = record_in(&metadata, 1, "d/9m").await.expect("d/9m");
        let layout = layouts(&record.segments).remove(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        while shards_held(&pool, &layout).await != "all" {
            assert!(Instant::now() < deadline, "column 0 of d/9m is not rebuilt");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(get_bytes(&s3, BUCKET, "d/9m").await, objects[3].1, "d/9m reads back after its repair");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let request = in_group(ListDamagedShardsRequest { limit: 100 }, 1);
            let left = metadata.rpc().list_damaged_shards(request).await.expect("list damaged").into_inner().shards;
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "the report stays after the repair completed: {left:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Group 1's lifecycle worker applies the bucket's rule (delivered from group 0) to its keys.
        let rule = LifecycleRule::builder()
            .id("e")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("e/").build())
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .expect("rule");
        let config = BucketLifecycleConfiguration::builder().rules(rule).build().expect("config");
        s3.put_bucket_lifecycle_configuration()
            .bucket(BUCKET)
            .lifecycle_configuration(config)
            .send()
            .await
            .expect("lifecycle configuration");
        put_bytes(&s3, BUCKET, "e/old", pattern(200 << 10, 40)).await;
        record_in(&metadata, 1, "e/old").await.expect("e/old is group 1's");
        let deadline = Instant::now() + Duration::from_secs(30);
        while s3.head_object().bucket(BUCKET).key("e/old").send().await.is_ok() {
            assert!(Instant::now() < deadline, "e/old does not expire");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(get_bytes(&s3, BUCKET, "d/9m").await, objects[3].1, "outside the rule's prefix");

        // DeleteBucket fences group 1 first. With group 1 empty and group 0 holding z/3m, group 1
        // is fenced, group 0's delete is refused, and the fence is lifted: group 1 takes keys again.
        for key in ["a/first", "b/1m", "d/9m"] {
            s3.delete_object().bucket(BUCKET).key(key).send().await.expect("delete");
        }
        assert_eq!(error_code(s3.delete_bucket().bucket(BUCKET).send().await), "BucketNotEmpty", "z/3m is group 0's");
        put_bytes(&s3, BUCKET, "a/again", pattern(1000, 41)).await;
        record_in(&metadata, 1, "a/again").await.expect("a/again is group 1's: the fence was lifted");
        // The bucket's only object lives in group 1: not empty, until it is deleted.
        s3.delete_object().bucket(BUCKET).key("z/3m").send().await.expect("delete z/3m");
        assert_eq!(
            error_code(s3.delete_bucket().bucket(BUCKET).send().await),
            "BucketNotEmpty",
            "a/again is group 1's"
        );
        s3.delete_object().bucket(BUCKET).key("a/again").send().await.expect("delete a/again");
        s3.delete_bucket().bucket(BUCKET).send().await.expect("delete the empty bucket");
        assert_eq!(error_code(s3.head_bucket().bucket(BUCKET).send().await), "NotFound");
        // The deletion reaches group 1, which then answers NoSuchBucket for the bucket's keys.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match record_in(&metadata, 1, "a/again").await {
                Err(e) if e.code == ErrorCode::NoSuchBucket => break,
                other => assert!(Instant::now() < deadline, "the deletion reaches group 1: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // Node administration asks the range groups. With no repair worker running, a fourth blobnode
    // to move to and group 0 holding no data at all (z/3m is deleted), a node holding group 1's
    // data is drained: group 0's records alone would call it drained at once.
    drop(repair);
    let disk = dir.path().join("disk3");
    std::fs::create_dir_all(&disk).expect("disk");
    let _blobnode3 = Proc::spawn("blobnode3", &blobnode_args_for(&disk, &peers), dir.path());
    let (node, data) = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let map = metadata.rpc().get_cluster_map(GetClusterMapRequest {}).await.expect("map").into_inner();
            if map.nodes.iter().filter(|n| n.alive).count() == 4 {
                break;
            }
            assert!(Instant::now() < deadline, "the fourth blobnode registers");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        s3.create_bucket().bucket(BUCKET).send().await.expect("create the bucket again");
        // Group 1 takes the bucket's keys once the re-creation reached it.
        let data = pattern(300 << 10, 50);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let put = s3.put_object().bucket(BUCKET).key("a/drain").body(ByteStream::from(data.clone())).send().await;
            if put.is_ok() || Instant::now() > deadline {
                put.expect("a/drain into group 1");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let record = record_in(&metadata, 1, "a/drain").await.expect("a/drain is group 1's");
        let node = layouts(&record.segments).remove(0).shards[0].node_id.clone();
        let drain = SetNodeAdminRequest { node_id: node.clone(), admin: NodeAdmin::Draining as i32 };
        metadata.rpc().set_node_admin(drain).await.expect("drain");
        // Group 0's records name the node no more; group 1's do.
        let refused = metadata.rpc().remove_node(RemoveNodeRequest { node_id: node.clone() }).await;
        let refused = RemoteError::from(refused.expect_err("group 1 still holds data on the node"));
        assert_eq!(refused.code, ErrorCode::InvalidArgument, "{refused:?}");
        assert!(refused.message.contains("range group 1"), "{refused:?}");
        // Each repair status call plans group 0's repairs, which is where a node is called drained.
        // Group 1 counts the column to move once its copy of group 0's map (at most about a
        // second old) shows the drain.
        let mut calls_since = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while calls_since < 5 {
            let status = metadata.rpc().get_repair_status(GetRepairStatusRequest { grace_ms: 3_600_000 }).await;
            if status.expect("repair status").into_inner().degraded_columns >= 1 || calls_since > 0 {
                calls_since += 1;
            }
            assert!(Instant::now() < deadline, "group 1's column to move is counted");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(admin_of(&metadata, &node).await, NodeAdmin::Draining, "group 1 has not moved its data");
        (node, data)
    });
    let _repair = Proc::spawn("repair2", &args, dir.path());
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while admin_of(&metadata, &node).await != NodeAdmin::Drained {
            assert!(Instant::now() < deadline, "the node is called drained once group 1 moved its data");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let record = record_in(&metadata, 1, "a/drain").await.expect("a/drain");
        for layout in layouts(&record.segments) {
            assert!(layout.shards.iter().all(|s| s.node_id != node), "moved off the drained node: {layout:?}");
        }
        assert_eq!(get_bytes(&s3, BUCKET, "a/drain").await, data, "a/drain reads back after the move");
        metadata.rpc().remove_node(RemoveNodeRequest { node_id: node.clone() }).await.expect("remove the node");
    });
}

/// The admin state of `node` in group 0's cluster map.
async fn admin_of(metadata: &MetadataClient, node: &str) -> NodeAdmin {
    let map = metadata.rpc().get_cluster_map(GetClusterMapRequest {}).await.expect("map").into_inner();
    let status = map.nodes.into_iter().find(|n| n.info.as_ref().is_some_and(|i| i.node_id == node));
    status.expect("the node is in the map").admin()
}
