//! One disk: its persistent identity, its directory layout, its I/O mode and its capacity.
//!
//! ```text
//! DIR/coffer-disk.id          this disk's uuid, created on first use
//! DIR/coffer-node.id          the node's uuid (on one of the node's disks)
//! DIR/tmp/                    probes and scratch files; emptied at start
//! DIR/chunks/<id>.chunk       chunk files of shard records (see `chunk` and `record`)
//! DIR/index/                  RocksDB: shard id -> (chunk, offset, length), rebuilt from the chunks if lost
//! ```

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::aligned::{ALIGN, AlignedBuf};
use crate::error::BlobnodeError;
use crate::fsutil;

const DISK_ID_FILE: &str = "coffer-disk.id";
const NODE_ID_FILE: &str = "coffer-node.id";
const TMP_DIR: &str = "tmp";
const CHUNKS_DIR: &str = "chunks";
const INDEX_DIR: &str = "index";

#[derive(Debug)]
pub struct Disk {
    id: String,
    /// The uuid's bytes: seeds record header checksums, so records are only ever valid on their own disk.
    seed: [u8; 16],
    root: PathBuf,
    direct_io: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    /// Space an unprivileged writer can still use (f_bavail).
    pub free_bytes: u64,
}

impl Disk {
    /// Prepares a disk for use: identity, directories, leftovers from a crash removed, direct I/O probed. Blocking.
    pub fn open(root: &Path) -> Result<Disk, BlobnodeError> {
        if !root.is_dir() {
            fs::create_dir_all(root).map_err(|e| BlobnodeError::io("create disk directory", root, e))?;
            tracing::info!(disk = %root.display(), "created disk directory");
        }
        let id = match read_id_file(root, DISK_ID_FILE)? {
            Some(id) => id,
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                fsutil::write_file_atomic(root, DISK_ID_FILE, format!("{id}\n").as_bytes())?;
                tracing::info!(disk = %root.display(), disk_id = %id, "initialised new disk");
                id
            }
        };
        let tmp = root.join(TMP_DIR);
        fsutil::ensure_dir(&tmp)?;
        fsutil::ensure_dir(&root.join(CHUNKS_DIR))?;
        let removed = fsutil::empty_dir(&tmp)?;
        if removed > 0 {
            tracing::info!(disk = %root.display(), removed, "removed leftover scratch files");
        }
        let direct_io = probe_direct_io(&tmp)?;
        if direct_io {
            tracing::info!(disk = %root.display(), disk_id = %id, "disk ready, direct I/O");
        } else {
            tracing::warn!(
                disk = %root.display(), disk_id = %id,
                "filesystem refuses O_DIRECT: using buffered I/O + fdatasync on this disk"
            );
        }
        let seed =
            *uuid::Uuid::parse_str(&id).map_err(|e| BlobnodeError::Config(format!("disk id {id}: {e}")))?.as_bytes();
        Ok(Disk { id, seed, root: root.to_path_buf(), direct_io })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn direct_io(&self) -> bool {
        self.direct_io
    }

    pub fn usage(&self) -> Result<DiskUsage, BlobnodeError> {
        statvfs_usage(&self.root).map_err(|e| BlobnodeError::io("statvfs", &self.root, e))
    }

    pub fn seed(&self) -> &[u8; 16] {
        &self.seed
    }

    pub fn chunks_dir(&self) -> PathBuf {
        self.root.join(CHUNKS_DIR)
    }

    pub fn index_dir(&self) -> PathBuf {
        self.root.join(INDEX_DIR)
    }

    /// Whether the disk's folder is still there and still this disk: a vanished or swapped folder must not take
    /// writes (they would land on the root filesystem or on another disk).
    pub fn check_identity(&self) -> Result<(), BlobnodeError> {
        match read_id_file(&self.root, DISK_ID_FILE)? {
            Some(id) if id == self.id => Ok(()),
            Some(other) => Err(BlobnodeError::Config(format!("{} now holds disk {other}", self.root.display()))),
            None => Err(BlobnodeError::Config(format!("{} lost its disk identity", self.root.display()))),
        }
    }

    /// A fresh name under the disk's tmp directory; `kind` only helps a human reading the directory.
    #[cfg(test)]
    pub fn tmp_path(&self, kind: &str) -> PathBuf {
        self.root.join(TMP_DIR).join(format!("{}.{kind}", uuid::Uuid::new_v4().simple()))
    }
}

/// The node's id: read from whichever disk holds it, created on the first disk if none does. Blocking.
pub fn node_id(disks: &[Disk]) -> Result<String, BlobnodeError> {
    let mut found: Option<(String, &Path)> = None;
    for disk in disks {
        let Some(id) = read_id_file(disk.root(), NODE_ID_FILE)? else {
            continue;
        };
        match &found {
            Some((other, other_root)) if *other != id => {
                return Err(BlobnodeError::Config(format!(
                    "disks belong to different nodes: {} has node id {other}, {} has {id}",
                    other_root.display(),
                    disk.root().display()
                )));
            }
            Some(_) => {}
            None => found = Some((id, disk.root())),
        }
    }
    if let Some((id, _)) = found {
        return Ok(id);
    }
    let first = disks.first().ok_or_else(|| BlobnodeError::Config("no disks given".into()))?;
    let id = uuid::Uuid::new_v4().to_string();
    fsutil::write_file_atomic(first.root(), NODE_ID_FILE, format!("{id}\n").as_bytes())?;
    tracing::info!(node_id = %id, disk = %first.root().display(), "created node identity");
    Ok(id)
}

fn read_id_file(dir: &Path, name: &str) -> Result<Option<String>, BlobnodeError> {
    let path = dir.join(name);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BlobnodeError::io("read identity", &path, e)),
    };
    // A damaged identity must stop the node: silently minting a new one would orphan every shard on the disk.
    let id = uuid::Uuid::parse_str(text.trim())
        .map_err(|e| BlobnodeError::Config(format!("{} is not a valid uuid: {e}", path.display())))?;
    Ok(Some(id.to_string()))
}

/// Whether the filesystem under `tmp` takes aligned O_DIRECT writes and reads.
fn probe_direct_io(tmp: &Path) -> Result<bool, BlobnodeError> {
    let path = tmp.join("probe.direct-io");
    let attempt = || -> io::Result<()> {
        let file = fsutil::shard_open_options(true).read(true).write(true).create_new(true).open(&path)?;
        let mut buf = AlignedBuf::zeroed(ALIGN);
        buf[0] = 0xc0;
        file.write_all_at(&buf, 0)?;
        file.sync_data()?;
        buf[0] = 0;
        file.read_exact_at(&mut buf, 0)?;
        if buf[0] != 0xc0 {
            return Err(io::Error::other("direct I/O read back different bytes"));
        }
        Ok(())
    };
    let result = attempt();
    let _ = fs::remove_file(&path);
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(e) => Err(BlobnodeError::io("probe direct I/O", &path, e)),
    }
}

fn statvfs_usage(path: &Path) -> io::Result<DiskUsage> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: statvfs is plain data for which all-zero bytes is a valid value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid, exclusively borrowed out-parameter.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let fragment = stat.f_frsize as u64;
    let blocks = stat.f_blocks as u64;
    let free = stat.f_bfree as u64;
    Ok(DiskUsage {
        capacity_bytes: blocks.saturating_mul(fragment),
        used_bytes: blocks.saturating_sub(free).saturating_mul(fragment),
        free_bytes: (stat.f_bavail as u64).saturating_mul(fragment),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Disk::open(dir.path()).expect("open");
        let again = Disk::open(dir.path()).expect("reopen");
        assert_eq!(first.id(), again.id());
        assert!(dir.path().join("chunks").is_dir());
        first.check_identity().expect("still there");
        let usage = first.usage().expect("usage");
        assert!(usage.capacity_bytes > 0 && usage.used_bytes <= usage.capacity_bytes);
    }

    #[test]
    fn probe_finds_direct_io_on_a_real_filesystem() {
        // /tmp here is ext4 (see DESIGN-NOTES); where it is not, the probe may rightly say no.
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = Disk::open(dir.path()).expect("open");
        eprintln!("direct I/O on {}: {}", dir.path().display(), disk.direct_io());
    }

    #[test]
    fn leftover_temp_files_are_removed_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = Disk::open(dir.path()).expect("open");
        fs::write(disk.tmp_path("probe"), b"half a probe").expect("leftover file");
        fs::create_dir(disk.tmp_path("deleted")).expect("leftover dir");
        drop(disk);
        let disk = Disk::open(dir.path()).expect("reopen");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).expect("list").count(), 0);
        assert!(disk.tmp_path("x").starts_with(dir.path().join("tmp")));
    }

    #[test]
    fn damaged_identity_stops_the_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(DISK_ID_FILE), b"not-a-uuid").expect("write");
        assert!(matches!(Disk::open(dir.path()), Err(BlobnodeError::Config(_))));
    }

    #[test]
    fn node_id_survives_and_conflicts_are_refused() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let disks = || vec![Disk::open(a.path()).expect("a"), Disk::open(b.path()).expect("b")];
        let id = node_id(&disks()).expect("create");
        assert_eq!(node_id(&disks()).expect("read"), id);
        // Order of --disk flags must not matter.
        let reversed: Vec<Disk> = disks().into_iter().rev().collect();
        assert_eq!(node_id(&reversed).expect("read reversed"), id);
        fsutil::write_file_atomic(b.path(), NODE_ID_FILE, uuid::Uuid::new_v4().to_string().as_bytes())
            .expect("second id");
        assert!(matches!(node_id(&disks()), Err(BlobnodeError::Config(_))));
    }
}
