//! Reads under failure with the split roles as separate processes: lost blobnodes and a
//! corrupted shard must never change the bytes a GET returns.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const STRIPE: usize = 4 * 1024 * 1024;

/// The chunk files of a blobnode disk (DIR/chunks/*.chunk).
fn chunk_files(disk: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(disk.join("chunks")) else { return Vec::new() };
    entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "chunk")).collect()
}

fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).expect("open shard");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset).expect("read byte");
    byte[0] ^= 0x5A;
    file.write_all_at(&byte, offset).expect("write byte");
    file.sync_all().expect("sync");
}

#[test]
fn two_lost_blobnodes_and_a_corrupt_shard_do_not_change_the_bytes() {
    let mut cluster = Split::start(6, "4+2");
    let s3 = cluster.client();
    let sizes = [200 * 1024, STRIPE + 3, 3 * STRIPE + 1];
    let objects: Vec<(String, Vec<u8>)> =
        sizes.iter().enumerate().map(|(i, &n)| (format!("obj-{i}"), pattern(n, 100 + i as u64))).collect();
    let rt = runtime();
    rt.block_on(async {
        s3.create_bucket().bucket("deg").send().await.expect("create");
        for (key, data) in &objects {
            put_bytes(&s3, "deg", key, data.clone()).await;
        }
    });

    // A flipped byte every 32 KiB past the chunk header damages every record on the first blobnode (the smallest
    // is a 4 KiB header plus 52 KiB of data): record headers and data blocks alike are caught by their checksums.
    let files = chunk_files(&cluster.blobnode_disks[0]);
    assert!(!files.is_empty(), "no chunk files found on the first blobnode");
    for file in &files {
        let len = std::fs::metadata(file).expect("stat").len();
        let mut offset = 4096 + 17;
        while offset < len {
            flip_byte(file, offset);
            offset += 32 * 1024;
        }
    }
    rt.block_on(async {
        for (key, data) in &objects {
            assert!(get_bytes(&s3, "deg", key).await == *data, "{key} after corruption");
            let last = data.len() as u64 - 1;
            assert!(get_range(&s3, "deg", key, 0, last.min(99)).await == data[..=last.min(99) as usize]);
        }
    });

    // kill -9 two blobnodes: still every byte right (the corrupt node is one of them here, so
    // the third loss is never needed).
    cluster.blobnodes[0].kill9();
    cluster.blobnodes[1].kill9();
    rt.block_on(async {
        for (key, data) in &objects {
            assert!(get_bytes(&s3, "deg", key).await == *data, "{key} with two blobnodes down");
            let mid = data.len() as u64 / 2;
            let got = get_range(&s3, "deg", key, mid, mid + 10).await;
            assert!(got == data[mid as usize..=mid as usize + 10], "{key} ranged with two blobnodes down");
        }
    });
}
