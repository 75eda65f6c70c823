//! The node's disks behind an async interface: every disk operation runs on tokio's blocking pool, never on the
//! runtime's worker threads, and never through `tokio::fs` (whose internal buffer would defeat O_DIRECT).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use coffer_proto::pb::metadata::DiskInfo;

use crate::budget::IoBudget;
use crate::disk::{self, Disk};
use crate::error::BlobnodeError;
use crate::key::ShardKey;
use crate::shard_file::SealedShard;
use crate::shard_io::{self, OpenShard};

pub struct Store {
    disks: Vec<Arc<Disk>>,
    node_id: String,
    budget: IoBudget,
}

async fn blocking<T, F>(f: F) -> Result<T, BlobnodeError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BlobnodeError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

impl Store {
    /// Opens (and on first use initialises) every disk, and the node identity they carry.
    pub async fn open(roots: Vec<PathBuf>, io_memory_bytes: u64) -> Result<Store, BlobnodeError> {
        let (disks, node_id) = blocking(move || {
            if roots.is_empty() {
                return Err(BlobnodeError::Config("at least one --disk is required".into()));
            }
            let disks = roots.iter().map(|root| Disk::open(root)).collect::<Result<Vec<_>, _>>()?;
            for (i, disk) in disks.iter().enumerate() {
                if let Some(twin) = disks[..i].iter().find(|d| d.id() == disk.id()) {
                    return Err(BlobnodeError::Config(format!(
                        "{} and {} are the same disk (id {})",
                        twin.root().display(),
                        disk.root().display(),
                        disk.id()
                    )));
                }
            }
            let node_id = disk::node_id(&disks)?;
            Ok((disks, node_id))
        })
        .await?;
        Ok(Store { disks: disks.into_iter().map(Arc::new).collect(), node_id, budget: IoBudget::new(io_memory_bytes) })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn disks(&self) -> &[Arc<Disk>] {
        &self.disks
    }

    pub fn disk(&self, disk_id: &str) -> Result<Arc<Disk>, BlobnodeError> {
        self.disks.iter().find(|d| d.id() == disk_id).cloned().ok_or_else(|| BlobnodeError::NoSuchDisk(disk_id.into()))
    }

    pub fn budget(&self) -> &IoBudget {
        &self.budget
    }

    pub async fn write_shard(&self, disk: Arc<Disk>, key: ShardKey, sealed: SealedShard) -> Result<(), BlobnodeError> {
        blocking(move || shard_io::write_shard(&disk, &key, &sealed)).await
    }

    pub async fn open_shard(&self, disk: Arc<Disk>, key: ShardKey) -> Result<OpenShard, BlobnodeError> {
        blocking(move || OpenShard::open(&disk, &key)).await
    }

    pub async fn read_range(&self, shard: OpenShard, range: Range<u64>) -> Result<Bytes, BlobnodeError> {
        blocking(move || shard.read_range(range)).await
    }

    pub async fn delete_data(&self, disk: Arc<Disk>, data_id: Vec<u8>) -> Result<(), BlobnodeError> {
        blocking(move || shard_io::delete_data(&disk, &data_id)).await
    }

    /// Fresh capacity figures; a disk whose statvfs fails is reported unhealthy rather than dropped.
    pub async fn disk_infos(&self) -> Vec<DiskInfo> {
        let disks = self.disks.clone();
        let infos = blocking(move || {
            Ok(disks
                .iter()
                .map(|disk| {
                    let usage = disk.usage().inspect_err(|e| tracing::warn!(error = %e, "disk usage unavailable"));
                    DiskInfo {
                        disk_id: disk.id().to_string(),
                        path: disk.root().display().to_string(),
                        capacity_bytes: usage.as_ref().map_or(0, |u| u.capacity_bytes),
                        used_bytes: usage.as_ref().map_or(0, |u| u.used_bytes),
                        healthy: usage.is_ok(),
                    }
                })
                .collect::<Vec<_>>())
        })
        .await;
        infos.unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not gather disk usage");
            Vec::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard_file::tests::{pattern, seal};

    #[tokio::test]
    async fn disks_by_id_and_duplicates_refused() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let store = Store::open(vec![a.path().into(), b.path().into()], 1 << 20).await.expect("open");
        assert_eq!(store.disks().len(), 2);
        let id = store.disks()[1].id().to_string();
        assert_eq!(store.disk(&id).expect("by id").root(), b.path());
        assert!(matches!(store.disk("nope"), Err(BlobnodeError::NoSuchDisk(_))));
        let infos = store.disk_infos().await;
        assert!(infos.iter().all(|d| d.healthy && d.capacity_bytes > 0));
        let node = store.node_id().to_string();
        drop(store);

        let again = Store::open(vec![b.path().into(), a.path().into()], 1 << 20).await.expect("reopen");
        assert_eq!(again.node_id(), node);
        let twice = Store::open(vec![a.path().into(), a.path().into()], 1 << 20).await;
        assert!(matches!(twice, Err(BlobnodeError::Config(_))));
        assert!(matches!(Store::open(vec![], 1 << 20).await, Err(BlobnodeError::Config(_))));
    }

    #[tokio::test]
    async fn async_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(vec![dir.path().into()], 1 << 20).await.expect("open");
        let disk = Arc::clone(&store.disks()[0]);
        let key = ShardKey { data_id: vec![9; 16], stripe: 0, index: 0 };
        let data = pattern(100_000, 1);
        store.write_shard(Arc::clone(&disk), key.clone(), seal(&data)).await.expect("write");
        let shard = store.open_shard(Arc::clone(&disk), key.clone()).await.expect("open shard");
        assert_eq!(store.read_range(shard, 10..99_000).await.expect("read"), &data[10..99_000]);
        store.delete_data(Arc::clone(&disk), key.data_id.clone()).await.expect("delete");
        assert!(matches!(store.open_shard(disk, key).await, Err(BlobnodeError::NoSuchShard(_))));
    }
}
