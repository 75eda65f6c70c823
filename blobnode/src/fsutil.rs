//! Durability primitives: what must be synced, and in which order, for a file or a directory entry to survive a
//! crash. A new entry is durable only once its parent directory is fsync'd, so every helper that creates or renames
//! an entry syncs the parent before returning.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::BlobnodeError;

pub fn sync_dir(dir: &Path) -> Result<(), BlobnodeError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| BlobnodeError::io("sync directory", dir, e))
}

fn sync_parent(path: &Path) -> Result<(), BlobnodeError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

/// Ensures `dir` exists and its entry is durable. The parent is synced even when the directory already existed:
/// whoever created it may not have synced yet, and syncing a clean directory is cheap.
pub fn ensure_dir(dir: &Path) -> Result<(), BlobnodeError> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(BlobnodeError::io("create directory", dir, e)),
    }
    sync_parent(dir)
}

/// Replaces `dir/name` atomically with `contents`, durably: temp file, fsync, rename, fsync of `dir`.
pub fn write_file_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<(), BlobnodeError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let write = || -> io::Result<()> {
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        io::Write::write_all(&mut &file, contents)?;
        file.sync_all()
    };
    write().map_err(|e| BlobnodeError::io("write", &tmp, e))?;
    fs::rename(&tmp, &target).map_err(|e| BlobnodeError::io("rename into place", &target, e))?;
    sync_dir(dir)
}

/// Options for shard files, with O_DIRECT when the disk supports it. Buffers, offsets and lengths handed to such a
/// file must be aligned (see `aligned`).
pub fn shard_open_options(direct_io: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    if direct_io {
        options.custom_flags(libc::O_DIRECT);
    }
    options
}

/// Removes everything inside `dir`, keeping `dir`; returns how many entries went.
pub fn empty_dir(dir: &Path) -> Result<usize, BlobnodeError> {
    let entries = fs::read_dir(dir).map_err(|e| BlobnodeError::io("list", dir, e))?;
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(|e| BlobnodeError::io("list", dir, e))?.path();
        // symlink_metadata: a symlink is removed itself, never followed.
        let is_dir = fs::symlink_metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
        let result = if is_dir { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        match result {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(BlobnodeError::io("remove", &path, e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_file_atomic(dir.path(), "id", b"one").expect("write");
        write_file_atomic(dir.path(), "id", b"two").expect("rewrite");
        assert_eq!(fs::read(dir.path().join("id")).expect("read"), b"two");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn ensure_dir_is_idempotent_and_empty_dir_clears() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("a");
        ensure_dir(&sub).expect("create");
        ensure_dir(&sub).expect("again");
        fs::write(sub.join("f"), b"x").expect("file");
        ensure_dir(&sub.join("d")).expect("nested");
        fs::write(sub.join("d").join("g"), b"y").expect("nested file");
        assert_eq!(empty_dir(&sub).expect("empty"), 2);
        assert_eq!(fs::read_dir(&sub).expect("list").count(), 0);
        assert!(ensure_dir(&sub.join("f").join("x")).is_err());
    }
}
