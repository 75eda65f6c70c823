//! Publishes the database's health as `coffer_metadata_*` metrics every few seconds: write
//! stalls, compaction debt and the block cache hit ratio.

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;

const EVERY: Duration = Duration::from_secs(10);

/// Never returns; stop it by aborting its task.
pub async fn publish(store: Arc<Store>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let store = store.clone();
        // Property reads take RocksDB's mutexes: keep them off the async workers.
        let Ok(stats) = tokio::task::spawn_blocking(move || store.stats()).await else {
            continue;
        };
        metrics::counter!("coffer_metadata_rocksdb_write_stall_micros_total").absolute(stats.stall_micros);
        metrics::gauge!("coffer_metadata_rocksdb_compaction_pending_bytes").set(stats.pending_compaction_bytes as f64);
        let lookups = stats.block_cache_hits + stats.block_cache_misses;
        if lookups > 0 {
            metrics::gauge!("coffer_metadata_block_cache_hit_ratio")
                .set(stats.block_cache_hits as f64 / lookups as f64);
        }
    }
}
