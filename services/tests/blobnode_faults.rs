//! The blobnode storage engine under faults, with the real processes: kill -9 in the middle of a stream of puts,
//! a disk that fills up, and a flipped bit that only the scrubber can find.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coffer_proto::ErrorCode;
use coffer_proto::blobnode_client::BlobnodePool;
use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::blobnode::ShardId;
use coffer_proto::pb::metadata::{DiskState, GetClusterMapRequest, ListDamagedShardsRequest};
use common::*;

fn start_blobnode(disk: &Path, port: u16, log_dir: &Path, name: &str) -> Proc {
    let args: Vec<String> = [
        "blobnode",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--disk",
        &disk.display().to_string(),
        // Nothing listens there: the node serves shards without a metadata service.
        "--metadata",
        "http://127.0.0.1:1",
        "--scrub-rate",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Proc::spawn(name, &args, log_dir)
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "blobnode on {port} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn shard(n: u64) -> ShardId {
    ShardId { data_id: format!("crash-{}", n / 3).into_bytes(), stripe: (n % 3) as u32, index: 1 }
}

fn shard_data(n: u64) -> Bytes {
    // 1 KiB to ~300 KiB: small records share syncs, larger ones cross block and chunk-window boundaries.
    Bytes::from(pattern(1024 + ((n * 7919) % 300_000) as usize, n))
}

#[test]
fn kill_9_during_puts_loses_no_acknowledged_shard_and_serves_no_torn_one() {
    let dir = tempfile::Builder::new().prefix("coffer-crash").tempdir_in(test_root()).expect("tempdir");
    let disk = dir.path().join("disk");
    let port = free_port();
    let mut node = start_blobnode(&disk, port, dir.path(), "blobnode");
    wait_port(port);
    // The port opens before the disks: wait for the identity too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !disk.join("coffer-disk.id").exists() {
        assert!(Instant::now() < deadline, "disk never initialised");
        std::thread::sleep(Duration::from_millis(20));
    }
    let disk_id = std::fs::read_to_string(disk.join("coffer-disk.id")).expect("disk id").trim().to_string();
    let rt = runtime();
    let pool = BlobnodePool::new(ClientConfig::default());
    rt.block_on(async { pool.set_nodes([("n".to_string(), format!("http://127.0.0.1:{port}"))]) });

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let attempted = Arc::new(Mutex::new(Vec::new()));
    rt.block_on(async {
        let mut writers = Vec::new();
        for w in 0..16u64 {
            let (pool, disk_id) = (pool.clone(), disk_id.clone());
            let (acknowledged, attempted) = (Arc::clone(&acknowledged), Arc::clone(&attempted));
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let n = i * 16 + w;
                    attempted.lock().expect("lock").push(n);
                    match pool.put_shard("n", &disk_id, shard(n), shard_data(n)).await {
                        Ok(()) => acknowledged.lock().expect("lock").push(n),
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        node.kill9();
        for writer in writers {
            writer.await.expect("writer");
        }
    });
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let attempted = attempted.lock().expect("lock").clone();
    assert!(acknowledged.len() > 50, "only {} puts acknowledged before the kill", acknowledged.len());

    let port = free_port();
    let _node = start_blobnode(&disk, port, dir.path(), "blobnode-restarted");
    wait_port(port);
    let pool = BlobnodePool::new(ClientConfig::default());
    rt.block_on(async { pool.set_nodes([("n".to_string(), format!("http://127.0.0.1:{port}"))]) });
    let mut unacknowledged_present = 0;
    rt.block_on(async {
        for &n in &acknowledged {
            let got = pool.get_shard("n", &disk_id, shard(n), 0, 0).await.expect("acknowledged shard readable");
            assert!(got == shard_data(n), "acknowledged shard {n} differs after the crash");
        }
        // A put in flight at the kill is either entirely there or not there at all.
        for n in attempted.iter().filter(|n| !acknowledged.contains(n)) {
            match pool.get_shard("n", &disk_id, shard(*n), 0, 0).await {
                Ok(got) => {
                    assert!(got == shard_data(*n), "unacknowledged shard {n} is torn");
                    unacknowledged_present += 1;
                }
                Err(e) => assert_eq!(e.code, ErrorCode::NoSuchShard, "shard {n}: {e}"),
            }
        }
    });
    eprintln!(
        "{} acknowledged puts all read back; {} of {} in-flight puts made it whole",
        acknowledged.len(),
        unacknowledged_present,
        attempted.len() - acknowledged.len()
    );
}

/// Mounts a small tmpfs on `dir` (root only); unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?;
        status.success().then(|| SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A metadata client for the cluster's metadata service (built inside the runtime, as its channels need one).
fn metadata_client(rt: &tokio::runtime::Runtime, cluster: &Split) -> MetadataClient {
    rt.block_on(async {
        MetadataClient::connect(std::slice::from_ref(&cluster.metadata_url), &ClientConfig::default())
            .expect("metadata client")
    })
}

async fn disk_states(metadata: &MetadataClient) -> HashMap<String, i32> {
    let map = metadata.rpc().get_cluster_map(GetClusterMapRequest {}).await.expect("cluster map").into_inner();
    map.nodes.into_iter().filter_map(|n| n.info).flat_map(|n| n.disks).map(|d| (d.path, d.state)).collect()
}

#[test]
fn a_full_disk_turns_read_only_and_new_shards_go_elsewhere() {
    let mounts: Mutex<Vec<SmallDisk>> = Mutex::new(Vec::new());
    // Blobnode 0's disk is a 24 MiB filesystem with no reserve: it runs into ENOSPC for real. Where tmpfs cannot be
    // mounted (not root), a reserve larger than the disk stands in for the full disk.
    let cluster = Split::start_with(7, "4+2", |i, disk| {
        if i != 0 {
            return Vec::new();
        }
        match SmallDisk::mount(disk, "24m") {
            Some(mount) => {
                mounts.lock().expect("lock").push(mount);
                vec!["--disk-reserve".into(), "0".into(), "--chunk-size".into(), "64MiB".into()]
            }
            None => {
                eprintln!("cannot mount tmpfs here; using a reserve larger than the disk instead");
                vec!["--disk-reserve".into(), "1000000GiB".into()]
            }
        }
    });
    let small = cluster.blobnode_disks[0].display().to_string();
    let s3 = cluster.client();
    let rt = runtime();
    let metadata = metadata_client(&rt, &cluster);
    rt.block_on(async {
        s3.create_bucket().bucket("full").send().await.expect("create");
        // 4 MiB objects put one 1 MiB shard on each of six of the seven disks: the small one fills within a few.
        let mut stored = Vec::new();
        let mut refused = Vec::new();
        let mut read_only_seen_at = None;
        for i in 0..60u64 {
            let data = pattern(4 << 20, i);
            let key = format!("obj-{i}");
            match s3.put_object().bucket("full").key(&key).body(data.clone().into()).send().await {
                Ok(_) => stored.push((key, data)),
                Err(e) => {
                    // A put that hit ENOSPC fails cleanly (a 5xx) and leaves nothing visible.
                    eprintln!("put {key} refused while the disk filled: {}", error_code(Err::<(), _>(e)));
                    refused.push((i, key));
                }
            }
            if read_only_seen_at.is_none()
                && disk_states(&metadata).await.get(&small) == Some(&(DiskState::ReadOnly as i32))
            {
                read_only_seen_at = Some(i);
            }
            // Once the metadata service knows, further puts go to the other six disks.
            if read_only_seen_at.is_some_and(|at| i >= at + 8) {
                break;
            }
        }
        let at = read_only_seen_at.expect("the small disk reported read-only");
        eprintln!("small disk read-only after {} puts; {} refused while it filled", at + 1, refused.len());
        assert!(refused.iter().all(|(i, _)| *i <= at), "puts refused after the disk was known full: {refused:?}");
        assert!(stored.len() >= 8);
        for (key, data) in &stored {
            assert!(get_bytes(&s3, "full", key).await == *data, "{key} reads back");
        }
        for (_, key) in &refused {
            let missing = s3.head_object().bucket("full").key(key).send().await;
            let code = error_code(missing);
            assert!(code == "NotFound" || code == "HTTP 404", "{key} must not be visible: {code}");
        }
        for line in cluster.blobnodes[0].log().lines().filter(|l| l.contains("state") || l.contains("ENOSPC")) {
            eprintln!("blobnode0: {line}");
        }
        let states = disk_states(&metadata).await;
        assert_eq!(states.get(&small), Some(&(DiskState::ReadOnly as i32)), "{states:?}");
    });
    // The processes stop, then the small disk is unmounted, and only then the folder goes: a mount point inside it
    // stopped the folder's removal half way and left the other disks behind.
    let dir = cluster.stop();
    drop(mounts);
    drop(dir);
}

#[test]
fn the_scrubber_finds_a_flipped_byte_and_reports_it() {
    let cluster = Split::start_with(6, "4+2", |_, _| {
        vec!["--scrub-rate".into(), "64MiB".into(), "--scrub-interval".into(), "1s".into()]
    });
    let s3 = cluster.client();
    let rt = runtime();
    let metadata = metadata_client(&rt, &cluster);
    rt.block_on(async {
        s3.create_bucket().bucket("scrub").send().await.expect("create");
        put_bytes(&s3, "scrub", "victim", pattern(1 << 20, 7)).await;
    });
    // The object's shard on blobnode 0: the only record of its only chunk, data right after two header blocks.
    let chunk = cluster.blobnode_disks[0].join("chunks").join("00000001.chunk");
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&chunk).expect("chunk");
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, 8192 + 1000).expect("read");
        byte[0] ^= 0x08;
        file.write_all_at(&byte, 8192 + 1000).expect("flip");
        file.sync_all().expect("sync");
    }
    let reports = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let reports = metadata
                .rpc()
                .list_damaged_shards(ListDamagedShardsRequest { limit: 0 })
                .await
                .expect("list damaged")
                .into_inner()
                .shards;
            if !reports.is_empty() || Instant::now() > deadline {
                return reports;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].reason, "corrupt");
    assert!(reports[0].reported_unix_ms > 0);
    // The damage is never served: the GET still returns the right bytes, rebuilt from the other shards.
    rt.block_on(async {
        assert!(get_bytes(&s3, "scrub", "victim").await == pattern(1 << 20, 7));
    });
}
