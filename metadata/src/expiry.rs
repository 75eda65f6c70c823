//! Object expiry (Swift's `X-Delete-At` / `X-Delete-After`). An object whose reserved metadata
//! `x-delete-at` names a time (Unix seconds) is indexed under that time in the `expiry` column
//! family by the same write batch that makes it its key's current object, and leaves the index by
//! the batch that replaces or deletes it (`track`, called from `usage::account`, which sees every
//! such change). The `Expirer` takes the due entries in time order, a bounded number per tick, and
//! submits `Command::Expire`, which deletes the object only if it is still the indexed one.

use std::sync::Arc;
use std::time::Duration;

use coffer_proto::pb::metadata::ObjectRecord;
use rocksdb::WriteBatch;
use tokio::sync::oneshot;

use crate::applier::Applier;
use crate::command::{Applied, Command, Stamp};
use crate::error::MetadataError;
use crate::store::{Cf, Store};

/// The reserved metadata name (as the gateway stores it) holding the expiry time in Unix seconds.
pub const DELETE_AT: &str = "x-delete-at";
/// Entries taken per tick.
const BATCH: usize = 1000;

/// When `record` expires (Unix ms), if it does.
pub fn delete_at_ms(record: &ObjectRecord) -> Option<i64> {
    record.user_metadata.get(DELETE_AT)?.trim().parse::<i64>().ok().filter(|s| *s >= 0)?.checked_mul(1000)
}

fn index_key(at_ms: i64, bucket: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + bucket.len() + 1 + key.len());
    out.extend_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out
}

fn parse_index_key(raw: &[u8]) -> Option<(i64, String, String)> {
    let (at, rest) = raw.split_at_checked(8)?;
    let at_ms = i64::try_from(u64::from_be_bytes(at.try_into().ok()?)).ok()?;
    let split = rest.iter().position(|b| *b == 0)?;
    let bucket = String::from_utf8(rest[..split].to_vec()).ok()?;
    let key = String::from_utf8(rest[split + 1..].to_vec()).ok()?;
    Some((at_ms, bucket, key))
}

/// Keeps the index in step with `before` becoming `after` as the current object of its key.
pub fn track(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    before: Option<&ObjectRecord>,
    after: Option<&ObjectRecord>,
) -> Result<(), MetadataError> {
    let old = before.and_then(|r| Some((delete_at_ms(r)?, r.key.as_str())));
    let new = after.and_then(|r| Some((delete_at_ms(r)?, r.key.as_str())));
    if old == new {
        return Ok(());
    }
    let cf = store.cf(Cf::Expiry)?;
    if let Some((at_ms, key)) = old {
        batch.delete_cf(cf, index_key(at_ms, bucket, key));
    }
    if let Some((at_ms, key)) = new {
        batch.put_cf(cf, index_key(at_ms, bucket, key), []);
    }
    Ok(())
}

/// Index entries due at `now_ms`, oldest first, at most `limit`.
pub fn due(store: &Store, now_ms: i64, limit: usize) -> Result<Vec<(i64, String, String)>, MetadataError> {
    let cf = store.cf(Cf::Expiry)?;
    let mut out = Vec::new();
    for item in store.db().iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (raw, _) = item.map_err(MetadataError::db("reading the expiry index"))?;
        let Some(entry) = parse_index_key(&raw) else {
            return Err(MetadataError::corrupt("expiry index entry", String::from_utf8_lossy(&raw)));
        };
        if entry.0 > now_ms || out.len() >= limit {
            break;
        }
        out.push(entry);
    }
    Ok(out)
}

/// `Command::Expire`: deletes `bucket/key` if its current object is still the one indexed at
/// `at_ms` and that time has come (not yet: nothing changes); when the object changed, only
/// drops the stale index entry.
pub fn expire(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    key: &str,
    at_ms: i64,
    stamp: &Stamp,
) -> Result<Applied, MetadataError> {
    let current = match store.find_object(bucket, key) {
        Ok(current) => current,
        Err(MetadataError::NoSuchBucket(_)) => None,
        Err(e) => return Err(e),
    };
    match current {
        Some(record) if delete_at_ms(&record) == Some(at_ms) => {
            if at_ms > stamp.now_unix_ms {
                return Ok(Applied::Done);
            }
            // Deleting makes `usage::account` drop the index entry in this batch.
            crate::command::delete_object(store, batch, bucket, key, stamp)
        }
        _ => {
            batch.delete_cf(store.cf(Cf::Expiry)?, index_key(at_ms, bucket, key));
            Ok(Applied::Done)
        }
    }
}

/// The background task: every interval, the due entries through the applier.
pub struct Expirer {
    store: Arc<Store>,
    applier: Applier,
    interval: Duration,
    gc_grace: Duration,
}

impl Expirer {
    pub fn new(store: Arc<Store>, applier: Applier, interval: Duration, gc_grace: Duration) -> Self {
        Expirer { store, applier, interval, gc_grace }
    }

    pub async fn run(self, mut stop: oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                result = self.tick() => if let Err(e) = result {
                    tracing::warn!(error = %e, "expiry step failed");
                },
                _ = &mut stop => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = &mut stop => return,
            }
        }
    }

    fn stamp(&self) -> Stamp {
        Stamp::background(self.gc_grace)
    }

    /// One step: at most `BATCH` due entries, submitted together (they share WAL syncs).
    pub async fn tick(&self) -> Result<usize, MetadataError> {
        let store = self.store.clone();
        let now = crate::now_unix_ms();
        let entries = tokio::task::spawn_blocking(move || due(&store, now, BATCH))
            .await
            .map_err(|e| MetadataError::Internal(format!("expiry scan task failed: {e}")))??;
        let submitted = entries.iter().map(|(at_ms, bucket, key)| {
            let command =
                Command::Expire { bucket: bucket.clone(), key: key.clone(), at_ms: *at_ms, stamp: self.stamp() };
            self.applier.submit(command)
        });
        let mut expired = 0;
        for outcome in futures::future::join_all(submitted).await {
            match outcome {
                Ok(_) => expired += 1,
                Err(e) => tracing::info!(error = %e, "expiry not applied"),
            }
        }
        metrics::counter!("coffer_expired_objects_total").increment(expired as u64);
        Ok(expired)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::command::apply;
    use crate::command::tests::{make_bucket, stamp, store};

    fn expiring(key: &str, at_secs: Option<i64>) -> ObjectRecord {
        let user_metadata: HashMap<String, String> =
            at_secs.map(|s| (DELETE_AT.to_string(), s.to_string())).into_iter().collect();
        ObjectRecord { bucket: "b".into(), key: key.into(), size: 0, user_metadata, ..Default::default() }
    }

    fn put(store: &Store, record: ObjectRecord, now: i64) {
        apply(store, Command::PutObject { record, intents: vec![], condition: Default::default(), stamp: stamp(now) })
            .unwrap();
    }

    #[test]
    fn index_keys_round_trip_in_time_order() {
        let a = index_key(1_000, "b", "k\u{e9}");
        assert_eq!(parse_index_key(&a), Some((1_000, "b".into(), "k\u{e9}".into())));
        assert!(index_key(999, "z", "z") < index_key(1_000, "a", "a"));
    }

    #[test]
    fn the_index_follows_puts_overwrites_and_deletes() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        put(&store, expiring("k", Some(10)), 1);
        put(&store, expiring("other", None), 1);
        assert_eq!(due(&store, i64::MAX, 10).unwrap(), vec![(10_000, "b".into(), "k".into())]);
        assert!(due(&store, 9_999, 10).unwrap().is_empty());
        // An overwrite with another time moves the entry; one without removes it.
        put(&store, expiring("k", Some(20)), 2);
        assert_eq!(due(&store, i64::MAX, 10).unwrap(), vec![(20_000, "b".into(), "k".into())]);
        put(&store, expiring("k", None), 3);
        assert!(due(&store, i64::MAX, 10).unwrap().is_empty());
    }

    #[test]
    fn expire_deletes_only_the_indexed_object_once_due() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        put(&store, expiring("k", Some(10)), 1);
        let expire = |at_ms, now| {
            apply(&store, Command::Expire { bucket: "b".into(), key: "k".into(), at_ms, stamp: stamp(now) }).unwrap()
        };
        // Not yet due: nothing changes.
        expire(10_000, 5_000);
        assert!(store.find_object("b", "k").unwrap().is_some());
        assert_eq!(due(&store, i64::MAX, 10).unwrap().len(), 1);
        // A stale entry (another time) leaves the object alone.
        expire(9_000, 20_000);
        assert!(store.find_object("b", "k").unwrap().is_some());
        expire(10_000, 20_000);
        assert!(store.find_object("b", "k").unwrap().is_none());
        assert!(due(&store, i64::MAX, 10).unwrap().is_empty());
        assert_eq!(crate::usage::get(&store, "b").unwrap().objects, 0);
    }
}
