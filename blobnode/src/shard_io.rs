//! Blocking shard operations on one disk: pread/pwrite on aligned buffers, and the temp-file, fdatasync, rename,
//! fsync-the-directory sequence that makes a put crash-safe. Call only from blocking threads.

use std::fs::{self, File};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::aligned::AlignedBuf;
use crate::disk::Disk;
use crate::error::BlobnodeError;
use crate::fsutil;
use crate::key::ShardKey;
use crate::shard_file::{HEADER_BYTES, SealedShard, ShardHeader, file_bytes};

/// Attempts at moving a written shard into its data directory while a concurrent DeleteData removes that directory.
const RENAME_ATTEMPTS: usize = 3;

/// Stores a sealed shard durably, replacing any previous version. Returns once data and name are on disk.
pub fn write_shard(disk: &Disk, key: &ShardKey, sealed: &SealedShard) -> Result<(), BlobnodeError> {
    let tmp = disk.tmp_path("shard");
    let result = write_synced(disk, &tmp, sealed).and_then(|()| move_into_place(disk, key, &tmp));
    if result.is_err() {
        // Best effort: whatever is left in tmp goes at the next start.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn move_into_place(disk: &Disk, key: &ShardKey, tmp: &Path) -> Result<(), BlobnodeError> {
    let data_dir = disk.data_dir(&key.data_id);
    let target = data_dir.join(key.file_name());
    let mut attempt = 1;
    loop {
        fsutil::ensure_dir(&data_dir)?;
        match fs::rename(tmp, &target) {
            Ok(()) => return fsutil::sync_dir(&data_dir),
            // DeleteData moved the directory away between our mkdir and rename: make it again.
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < RENAME_ATTEMPTS => attempt += 1,
            Err(e) => return Err(BlobnodeError::io("rename shard into place", &target, e)),
        }
    }
}

fn write_synced(disk: &Disk, path: &Path, sealed: &SealedShard) -> Result<(), BlobnodeError> {
    // Checked on the way out as on the way in: a header that would not read back is a bug, never written.
    if ShardHeader::decode(&sealed.image).as_ref() != Ok(&sealed.header) {
        return Err(BlobnodeError::Internal(format!("sealed image of {} does not carry its header", path.display())));
    }
    let file = fsutil::shard_open_options(disk.direct_io())
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| BlobnodeError::io("create shard", path, e))?;
    file.write_all_at(&sealed.image, 0).map_err(|e| BlobnodeError::io("write shard", path, e))?;
    file.sync_data().map_err(|e| BlobnodeError::io("fdatasync shard", path, e))
}

/// An open shard whose header has been verified. Cheap to clone, so each blocking read can own one.
#[derive(Clone)]
pub struct OpenShard {
    file: Arc<File>,
    header: Arc<ShardHeader>,
    path: Arc<PathBuf>,
}

impl OpenShard {
    pub fn open(disk: &Disk, key: &ShardKey) -> Result<OpenShard, BlobnodeError> {
        let path = disk.shard_path(key);
        let file = match fsutil::shard_open_options(disk.direct_io()).read(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobnodeError::NoSuchShard(format!("{key} on disk {}", disk.id())));
            }
            Err(e) => return Err(BlobnodeError::io("open shard", path, e)),
        };
        let mut block = AlignedBuf::zeroed(HEADER_BYTES);
        read_exact_at(&file, &mut block, 0, &path)?;
        let header = ShardHeader::decode(&block).map_err(|detail| BlobnodeError::corrupt(&path, detail))?;
        let on_disk = file.metadata().map_err(|e| BlobnodeError::io("stat shard", &path, e))?.len();
        let expected = file_bytes(header.shard_len);
        if on_disk < expected {
            return Err(BlobnodeError::corrupt(&path, format!("truncated: {on_disk} bytes, {expected} expected")));
        }
        Ok(OpenShard { file: Arc::new(file), header: Arc::new(header), path: Arc::new(path) })
    }

    pub fn header(&self) -> &ShardHeader {
        &self.header
    }

    /// Reads `range` of the shard, verifying every block it touches. Blocking.
    pub fn read_range(&self, range: Range<u64>) -> Result<Bytes, BlobnodeError> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let plan = self.header.plan_read(range);
        let mut buf = AlignedBuf::zeroed(plan.read_len);
        read_exact_at(&self.file, &mut buf, plan.file_offset, &self.path)?;
        self.header
            .verify_blocks(plan.first_block, &buf)
            .map_err(|detail| BlobnodeError::corrupt(&*self.path, detail))?;
        Ok(buf.into_bytes(plan.keep))
    }
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64, path: &Path) -> Result<(), BlobnodeError> {
    file.read_exact_at(buf, offset).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => BlobnodeError::corrupt(path, format!("truncated before byte {}", offset)),
        _ => BlobnodeError::io("read shard", path, e),
    })
}

/// Removes every shard of `data_id` on `disk`. Idempotent. The directory is first renamed into tmp, so the delete
/// is atomic and durable at once; the bytes are freed afterwards, or at the next start if we crash first.
pub fn delete_data(disk: &Disk, data_id: &[u8]) -> Result<(), BlobnodeError> {
    let dir = disk.data_dir(data_id);
    let trash = disk.tmp_path("deleted");
    match fs::rename(&dir, &trash) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BlobnodeError::io("move data to trash", &dir, e)),
    }
    if let Some(parent) = dir.parent() {
        fsutil::sync_dir(parent)?;
    }
    if let Err(e) = fs::remove_dir_all(&trash) {
        tracing::warn!(path = %trash.display(), error = %e, "could not free deleted data; retried at next start");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard_file::tests::{pattern, seal};
    use crate::shard_file::{BLOCK_BYTES, crc32c};

    fn disk() -> (tempfile::TempDir, Disk) {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = Disk::open(dir.path()).expect("open disk");
        (dir, disk)
    }

    fn key(stripe: u32) -> ShardKey {
        ShardKey { data_id: vec![0xde, 0xad, 0xbe, 0xef], stripe, index: 1 }
    }

    fn put(disk: &Disk, key: &ShardKey, data: &[u8]) {
        write_shard(disk, key, &seal(data)).expect("write shard");
    }

    #[test]
    fn round_trip_of_many_sizes() {
        let (_dir, disk) = disk();
        let sizes = [0, 1, 4095, 4096, BLOCK_BYTES - 1, BLOCK_BYTES, BLOCK_BYTES + 1, (1 << 20) + 3];
        for (i, &len) in sizes.iter().enumerate() {
            let data = pattern(len, i as u32);
            let key = key(i as u32);
            put(&disk, &key, &data);
            let shard = OpenShard::open(&disk, &key).expect("open");
            assert_eq!(shard.header().shard_len, len as u64);
            assert_eq!(shard.header().crc32c, crc32c(&data));
            assert_eq!(shard.read_range(0..len as u64).expect("read"), data, "len {len}");
            let on_disk = fs::metadata(disk.shard_path(&key)).expect("stat").len();
            assert_eq!(on_disk, file_bytes(len as u64));
        }
        assert_eq!(fs::read_dir(disk.root().join("tmp")).expect("list").count(), 0);
    }

    #[test]
    fn ranges_crossing_block_boundaries() {
        let (_dir, disk) = disk();
        let len = 3 * BLOCK_BYTES + 100;
        let data = pattern(len, 9);
        put(&disk, &key(0), &data);
        let shard = OpenShard::open(&disk, &key(0)).expect("open");
        let b = BLOCK_BYTES;
        for (start, end) in [(0, 1), (b - 1, b + 1), (b - 10, 2 * b + 10), (5, len), (len - 1, len), (2 * b, 3 * b)] {
            let got = shard.read_range(start as u64..end as u64).expect("read");
            assert_eq!(got, &data[start..end], "{start}..{end}");
        }
        assert!(shard.read_range(7..7).expect("empty").is_empty());
    }

    #[test]
    fn overwrite_replaces() {
        let (_dir, disk) = disk();
        put(&disk, &key(0), b"first version");
        put(&disk, &key(0), b"second");
        let shard = OpenShard::open(&disk, &key(0)).expect("open");
        assert_eq!(shard.read_range(0..6).expect("read"), &b"second"[..]);
    }

    #[test]
    fn flipped_byte_is_corruption_not_data() {
        let (_dir, disk) = disk();
        let data = pattern(2 * BLOCK_BYTES, 10);
        put(&disk, &key(0), &data);
        let path = disk.shard_path(&key(0));
        let mut bytes = fs::read(&path).expect("read file");
        bytes[HEADER_BYTES + BLOCK_BYTES + 5] ^= 0x10;
        fs::write(&path, &bytes).expect("damage");
        let shard = OpenShard::open(&disk, &key(0)).expect("header still fine");
        assert_eq!(shard.read_range(0..10).expect("first block intact"), &data[..10]);
        let err = shard.read_range(0..data.len() as u64).expect_err("second block corrupt");
        assert!(matches!(err, BlobnodeError::CorruptShard { .. }), "{err}");

        bytes[20] ^= 1;
        fs::write(&path, &bytes).expect("damage header");
        let err = OpenShard::open(&disk, &key(0)).err().expect("header corrupt");
        assert!(matches!(err, BlobnodeError::CorruptShard { .. }), "{err}");
    }

    #[test]
    fn truncated_file_is_corruption() {
        let (_dir, disk) = disk();
        put(&disk, &key(0), &pattern(3 * BLOCK_BYTES, 11));
        let path = disk.shard_path(&key(0));
        let file = fs::OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(HEADER_BYTES as u64 + BLOCK_BYTES as u64).expect("truncate");
        let err = OpenShard::open(&disk, &key(0)).err().expect("truncated");
        assert!(matches!(err, BlobnodeError::CorruptShard { .. }), "{err}");
        file.set_len(100).expect("truncate into header");
        let err = OpenShard::open(&disk, &key(0)).err().expect("truncated header");
        assert!(matches!(err, BlobnodeError::CorruptShard { .. }), "{err}");
    }

    #[test]
    fn missing_shard_and_idempotent_delete() {
        let (_dir, disk) = disk();
        assert!(matches!(OpenShard::open(&disk, &key(0)), Err(BlobnodeError::NoSuchShard(_))));
        put(&disk, &key(0), b"a");
        put(&disk, &key(1), b"b");
        let other = ShardKey { data_id: vec![1], stripe: 0, index: 0 };
        put(&disk, &other, b"c");
        delete_data(&disk, &key(0).data_id).expect("delete");
        delete_data(&disk, &key(0).data_id).expect("delete again");
        assert!(matches!(OpenShard::open(&disk, &key(0)), Err(BlobnodeError::NoSuchShard(_))));
        assert!(matches!(OpenShard::open(&disk, &key(1)), Err(BlobnodeError::NoSuchShard(_))));
        assert!(OpenShard::open(&disk, &other).is_ok());
        assert_eq!(fs::read_dir(disk.root().join("tmp")).expect("list").count(), 0);
        put(&disk, &key(0), b"after delete");
        assert!(OpenShard::open(&disk, &key(0)).is_ok());
    }
}
