//! Bitrot scrubbing: every shard on a disk is read back and verified at a bounded rate, and what fails is reported
//! to the metadata service so repair can rebuild it from the rest of its stripe.
//!
//! The scrubber walks the index in key order a page at a time and sleeps so that its reads stay under the
//! configured bytes per second: on an idle node it costs that much I/O and the CPU of checking CRCs, nothing more.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use coffer_proto::RemoteError;
use coffer_proto::metadata_client::MetadataClient;
use coffer_proto::pb::metadata::{DamagedShard, ReportDamagedShardsRequest};

use crate::engine::Engine;
use crate::error::BlobnodeError;
use crate::index::Location;
use crate::key::ShardKey;
use crate::pace::pace;
use crate::record::HEADER_BYTES;

/// Index entries read per step of the walk.
const PAGE: usize = 256;
/// Verification reads whole blocks, one window at a time, so a 60 MiB shard never needs 60 MiB of memory.
const WINDOW_BYTES: u64 = 1 << 20;
/// Reports held back while the metadata service is unreachable; beyond this the next pass finds them again.
const MAX_PENDING_REPORTS: usize = 10_000;
const REPORT_BATCH: usize = 1000;

#[derive(Debug, Clone, Copy)]
pub struct ScrubConfig {
    pub bytes_per_s: u64,
    pub interval: Duration,
}

/// Where damage reports go; a trait so tests can collect them.
pub trait DamageReporter: Send + Sync + 'static {
    fn report(&self, shards: Vec<DamagedShard>) -> impl Future<Output = Result<(), RemoteError>> + Send;
}

impl DamageReporter for MetadataClient {
    async fn report(&self, shards: Vec<DamagedShard>) -> Result<(), RemoteError> {
        self.rpc().report_damaged_shards(ReportDamagedShardsRequest { shards, ..Default::default() }).await?;
        Ok(())
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub shards: u64,
    pub bytes: u64,
    pub damaged: u64,
}

/// Never returns while scrubbing is on; stop it by aborting its task.
pub async fn run(engine: Arc<Engine>, node_id: String, reporter: impl DamageReporter, config: ScrubConfig) {
    if config.bytes_per_s == 0 {
        return;
    }
    let mut pending = Vec::new();
    loop {
        let started = Instant::now();
        match pass(&engine, &node_id, &reporter, config.bytes_per_s, &mut pending).await {
            Ok(report) => tracing::info!(disk = %engine.disk().root().display(), shards = report.shards,
                bytes = report.bytes, damaged = report.damaged, seconds = started.elapsed().as_secs(),
                "scrub pass finished"),
            Err(error) => tracing::warn!(disk = %engine.disk().root().display(), %error, "scrub pass stopped"),
        }
        tokio::time::sleep(config.interval).await;
    }
}

/// One walk over the whole disk. Damage found is reported as it is found (in batches), and kept in `pending`
/// while the metadata service cannot take it.
pub async fn pass(
    engine: &Arc<Engine>,
    node_id: &str,
    reporter: &impl DamageReporter,
    bytes_per_s: u64,
    pending: &mut Vec<DamagedShard>,
) -> Result<PassReport, BlobnodeError> {
    let mut report = PassReport::default();
    let mut after: Option<ShardKey> = None;
    loop {
        let page = {
            let engine = Arc::clone(engine);
            let from = after.clone();
            tokio::task::spawn_blocking(move || engine.shared().index.shards_after(from.as_ref(), PAGE)).await??
        };
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (key, location) in page {
            let started = Instant::now();
            let checked = {
                let engine = Arc::clone(engine);
                let key = key.clone();
                tokio::task::spawn_blocking(move || verify(&engine, &key, location)).await?
            };
            report.shards += 1;
            report.bytes += location.shard_len;
            engine.counters().scrubbed_bytes.fetch_add(location.shard_len, Ordering::Relaxed);
            if let Some((reason, detail)) = checked {
                report.damaged += 1;
                engine.counters().damaged_found.fetch_add(1, Ordering::Relaxed);
                tracing::error!(disk = %engine.disk().root().display(), shard = %key, reason, %detail,
                    "scrubber found a damaged shard");
                if pending.len() < MAX_PENDING_REPORTS {
                    pending.push(DamagedShard {
                        node_id: node_id.to_string(),
                        disk_id: engine.id().to_string(),
                        data_id: key.data_id.clone(),
                        stripe: key.stripe,
                        index: key.index,
                        reason: reason.to_string(),
                        detail,
                        reported_unix_ms: 0,
                    });
                }
            }
            // Pace by what was read: header plus data.
            pace(started, location.shard_len + HEADER_BYTES as u64, bytes_per_s).await;
        }
        flush(reporter, pending).await;
    }
    flush(reporter, pending).await;
    Ok(report)
}

async fn flush(reporter: &impl DamageReporter, pending: &mut Vec<DamagedShard>) {
    while !pending.is_empty() {
        let batch: Vec<DamagedShard> = pending.iter().take(REPORT_BATCH).cloned().collect();
        let sent = batch.len();
        match reporter.report(batch).await {
            Ok(()) => {
                pending.drain(..sent);
            }
            Err(error) => {
                tracing::warn!(%error, pending = pending.len(), "could not report damaged shards; will retry");
                return;
            }
        }
    }
}

/// Reads and verifies one record; `Some((reason, detail))` when it is damaged, None when intact or since gone.
fn verify(engine: &Engine, key: &ShardKey, location: Location) -> Option<(&'static str, String)> {
    let outcome = (|| -> Result<(), BlobnodeError> {
        let shard = engine.open_at(key, location)?;
        let mut position = 0;
        while position < location.shard_len {
            let end = (position + WINDOW_BYTES).min(location.shard_len);
            shard.read_range(position..end)?;
            position = end;
        }
        Ok(())
    })();
    let error = outcome.err()?;
    // A shard deleted or rewritten while it was checked is not damage.
    match engine.shared().index.get(key) {
        Ok(Some(current)) if current == location => {}
        _ => return None,
    }
    engine.shared().note_error(&error);
    let missing = engine.shared().chunk(location.chunk).is_none();
    Some((if missing { "missing" } else { "corrupt" }, error.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::engine::tests::{key, open};
    use crate::record::tests::{pattern, seal_key};
    use crate::store::tests::test_config;

    #[derive(Default)]
    struct Collect {
        reports: Mutex<Vec<DamagedShard>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl DamageReporter for Arc<Collect> {
        async fn report(&self, shards: Vec<DamagedShard>) -> Result<(), RemoteError> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(RemoteError::new(coffer_proto::ErrorCode::Unavailable, "down"));
            }
            self.reports.lock().expect("lock").extend(shards);
            Ok(())
        }
    }

    #[tokio::test]
    async fn finds_a_flipped_byte_and_reports_it_once_reachable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), test_config());
        for n in 0..6 {
            engine.put(seal_key(key(n), &pattern(300_000, n))).await.expect("put");
        }
        let damaged = engine.shared().index.get(&key(3)).expect("get").expect("present");
        let path = dir.path().join("chunks").join(crate::chunk::file_name(damaged.chunk));
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[damaged.offset as usize + 4096 + 200_000] ^= 0x01;
        std::fs::write(&path, &bytes).expect("damage");

        let reporter = Arc::new(Collect::default());
        reporter.fail.store(true, Ordering::Relaxed);
        let mut pending = Vec::new();
        let report = pass(&engine, "node-1", &reporter, 1 << 30, &mut pending).await.expect("pass");
        assert_eq!(report, PassReport { shards: 6, bytes: 6 * 300_000, damaged: 1 });
        assert_eq!(pending.len(), 1, "kept while the metadata service is down");
        reporter.fail.store(false, Ordering::Relaxed);
        pass(&engine, "node-1", &reporter, 1 << 30, &mut pending).await.expect("second pass");
        assert!(pending.is_empty());
        let reports = reporter.reports.lock().expect("lock").clone();
        assert_eq!(reports.len(), 2, "the held report and the second pass's");
        let report = &reports[0];
        assert_eq!(
            (report.data_id.clone(), report.stripe, report.index),
            (key(3).data_id, key(3).stripe, key(3).index)
        );
        assert_eq!(
            (report.reason.as_str(), report.node_id.as_str(), report.disk_id.as_str()),
            ("corrupt", "node-1", engine.id())
        );
    }

    #[tokio::test]
    async fn the_rate_bounds_the_pace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), test_config());
        for n in 0..4 {
            engine.put(seal_key(key(n), &pattern(60_000, n))).await.expect("put");
        }
        let reporter = Arc::new(Collect::default());
        let started = Instant::now();
        // 4 × (60 000 + 4096) bytes at 1 MB/s: at least about a quarter of a second.
        pass(&engine, "n", &reporter, 1_000_000, &mut Vec::new()).await.expect("pass");
        assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
    }
}
