//! The node's disks behind an async interface: every disk operation runs on tokio's blocking pool, never on the
//! runtime's worker threads, and never through `tokio::fs` (whose internal buffer would defeat O_DIRECT).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use coffer_proto::pb::metadata::{DiskInfo, DiskState as WireDiskState};

use crate::aligned::BufferPool;
use crate::budget::IoBudget;
use crate::disk::{self, Disk};
use crate::engine::{DiskState, Engine, EngineConfig, OpenShard};
use crate::error::BlobnodeError;
use crate::key::ShardKey;

pub struct Store {
    engines: Vec<Arc<Engine>>,
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
    /// Opens (and on first use initialises) every disk, recovers their indexes, and reads the node identity.
    pub async fn open(roots: Vec<PathBuf>, config: EngineConfig, io_memory_bytes: u64) -> Result<Store, BlobnodeError> {
        let (engines, node_id) = blocking(move || {
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
            // One pool for the node. Idle buffers are kept up to an eighth of the I/O memory bound (32 MiB by
            // default: 32 shards of 1 MiB), so what the pool holds adds little to what may be in flight.
            let pool = BufferPool::new(io_memory_bytes / 8);
            let engines = disks
                .into_iter()
                .map(|d| Engine::open(d, config.clone(), pool.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((engines, node_id))
        })
        .await?;
        Ok(Store {
            engines: engines.into_iter().map(Arc::new).collect(),
            node_id,
            budget: IoBudget::new(io_memory_bytes),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn engines(&self) -> &[Arc<Engine>] {
        &self.engines
    }

    pub fn engine(&self, disk_id: &str) -> Result<Arc<Engine>, BlobnodeError> {
        self.engines
            .iter()
            .find(|e| e.id() == disk_id)
            .cloned()
            .ok_or_else(|| BlobnodeError::NoSuchDisk(disk_id.into()))
    }

    pub fn budget(&self) -> &IoBudget {
        &self.budget
    }

    pub async fn open_shard(&self, engine: Arc<Engine>, key: ShardKey) -> Result<OpenShard, BlobnodeError> {
        blocking(move || engine.open_shard(&key).inspect_err(|e| engine.shared().note_error(e))).await
    }

    pub async fn read_range(
        &self,
        engine: Arc<Engine>,
        shard: OpenShard,
        range: Range<u64>,
    ) -> Result<Bytes, BlobnodeError> {
        blocking(move || shard.read_range(range).inspect_err(|e| engine.shared().note_error(e))).await
    }

    /// Fresh state and capacity figures for the heartbeat; checks each disk's folder and free space on the way.
    pub async fn disk_infos(&self) -> Vec<DiskInfo> {
        let engines = self.engines.clone();
        let infos = blocking(move || Ok(engines.iter().map(|engine| disk_info(engine)).collect::<Vec<_>>())).await;
        infos.unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not gather disk usage");
            Vec::new()
        })
    }
}

/// The disk's figures as `coffer_blobnode_*` series, refreshed with every heartbeat.
fn publish_metrics(engine: &Engine, (capacity, used): (u64, u64), state: DiskState) {
    let disk = engine.disk().id().to_string();
    let counters = engine.counters();
    metrics::gauge!("coffer_blobnode_disk_capacity_bytes", "disk" => disk.clone()).set(capacity as f64);
    metrics::gauge!("coffer_blobnode_disk_used_bytes", "disk" => disk.clone()).set(used as f64);
    metrics::gauge!("coffer_blobnode_disk_healthy", "disk" => disk.clone())
        .set(f64::from(u8::from(state == DiskState::Ok)));
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    metrics::counter!("coffer_blobnode_fsyncs_total", "disk" => disk.clone()).absolute(load(&counters.syncs));
    metrics::counter!("coffer_blobnode_shard_puts_total", "disk" => disk.clone()).absolute(load(&counters.puts));
    metrics::counter!("coffer_blobnode_bytes_written_total", "disk" => disk.clone())
        .absolute(load(&counters.bytes_written));
    metrics::counter!("coffer_blobnode_scrubbed_bytes_total", "disk" => disk.clone())
        .absolute(load(&counters.scrubbed_bytes));
    metrics::counter!("coffer_blobnode_damaged_shards_found_total", "disk" => disk)
        .absolute(load(&counters.damaged_found));
}

fn disk_info(engine: &Engine) -> DiskInfo {
    let disk = engine.disk();
    let usage = engine.refresh_state();
    let state = engine.state();
    publish_metrics(engine, usage.as_ref().map_or((0, 0), |u| (u.capacity_bytes, u.used_bytes)), state);
    DiskInfo {
        disk_id: disk.id().to_string(),
        path: disk.root().display().to_string(),
        capacity_bytes: usage.as_ref().map_or(0, |u| u.capacity_bytes),
        used_bytes: usage.as_ref().map_or(0, |u| u.used_bytes),
        healthy: state == DiskState::Ok,
        state: match state {
            DiskState::Ok => WireDiskState::Ok,
            DiskState::ReadOnly => WireDiskState::ReadOnly,
            DiskState::Faulty => WireDiskState::Faulty,
            DiskState::Missing => WireDiskState::Missing,
        } as i32,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::record::tests::{pattern, seal_key};

    pub(crate) fn test_config() -> EngineConfig {
        EngineConfig { chunk_bytes: 64 << 20, preallocate: true, commit_window: Duration::ZERO, reserve_bytes: 0 }
    }

    #[tokio::test]
    async fn disks_by_id_and_duplicates_refused() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let store = Store::open(vec![a.path().into(), b.path().into()], test_config(), 1 << 20).await.expect("open");
        assert_eq!(store.engines().len(), 2);
        let id = store.engines()[1].id().to_string();
        assert_eq!(store.engine(&id).expect("by id").disk().root(), b.path());
        assert!(matches!(store.engine("nope"), Err(BlobnodeError::NoSuchDisk(_))));
        let infos = store.disk_infos().await;
        assert!(infos.iter().all(|d| d.healthy && d.capacity_bytes > 0 && d.state == WireDiskState::Ok as i32));
        let node = store.node_id().to_string();
        drop(store);

        let again = Store::open(vec![b.path().into(), a.path().into()], test_config(), 1 << 20).await.expect("reopen");
        assert_eq!(again.node_id(), node);
        drop(again);
        let twice = Store::open(vec![a.path().into(), a.path().into()], test_config(), 1 << 20).await;
        assert!(matches!(twice, Err(BlobnodeError::Config(_))));
        assert!(matches!(Store::open(vec![], test_config(), 1 << 20).await, Err(BlobnodeError::Config(_))));
    }

    #[tokio::test]
    async fn async_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(vec![dir.path().into()], test_config(), 1 << 20).await.expect("open");
        let engine = Arc::clone(&store.engines()[0]);
        let key = ShardKey { data_id: vec![9; 16], stripe: 0, index: 0 };
        let data = pattern(100_000, 1);
        engine.put(seal_key(key.clone(), &data)).await.expect("write");
        let shard = store.open_shard(Arc::clone(&engine), key.clone()).await.expect("open shard");
        assert_eq!(store.read_range(Arc::clone(&engine), shard, 10..99_000).await.expect("read"), &data[10..99_000]);
        engine.delete(key.data_id.clone()).await.expect("delete");
        assert!(matches!(store.open_shard(engine, key).await, Err(BlobnodeError::NoSuchShard(_))));
    }
}
