//! A range group's leader asking for its own split once the group holds more than
//! `--range-split-keys` objects (issue 11: "a range splits when it grows past a size threshold").
//! Every `--range-split-check` it reads RocksDB's estimate of the `objects` keys (no scan); past
//! the threshold it finds the middle key of its range (two scans of the keys, in a blocking task)
//! and asks group 0 to split there (`MetadataRaft.SplitGroup`, which group 0's leader carries out,
//! see `split_driver`). A refusal or a failure is logged and tried again at the next check.

use std::sync::Arc;
use std::time::Duration;

use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::{KeyBound, SplitGroupRequest};
use tokio::sync::oneshot;

use crate::error::MetadataError;
use crate::store::{Cf, Store};

pub struct SplitWatch {
    pub store: Arc<Store>,
    pub group: u64,
    /// Objects past which the group asks for a split; 0: never.
    pub threshold: u64,
    pub interval: Duration,
    /// Routed to group 0 (its voters' URLs).
    pub directory: MetadataClient,
}

impl SplitWatch {
    pub fn new(
        store: Arc<Store>,
        group: u64,
        threshold: u64,
        interval: Duration,
        zero_urls: &[String],
        config: &ClientConfig,
    ) -> Result<SplitWatch, MetadataError> {
        let directory = MetadataClient::connect(zero_urls, config)
            .map_err(|e| MetadataError::Internal(format!("a client of group 0 to ask for splits: {e}")))?;
        Ok(SplitWatch { store, group, threshold, interval, directory })
    }

    pub async fn run(self, mut stop: oneshot::Receiver<()>) {
        if self.threshold == 0 {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = &mut stop => return,
            }
            if let Err(e) = self.check().await {
                tracing::warn!(group = self.group, error = %e, "a split of the range group did not happen; retrying later");
            }
        }
    }

    async fn check(&self) -> Result<(), MetadataError> {
        let estimate = self
            .store
            .db()
            .property_int_value_cf(self.store.cf(Cf::Objects)?, "rocksdb.estimate-num-keys")
            .map_err(MetadataError::db("estimating the objects of a range group"))?
            .unwrap_or(0);
        if estimate <= self.threshold {
            return Ok(());
        }
        let store = self.store.clone();
        let middle = tokio::task::spawn_blocking(move || middle_key(&store))
            .await
            .map_err(|e| MetadataError::Internal(format!("the middle-key task failed: {e}")))??;
        let Some((count, bucket, key)) = middle else { return Ok(()) };
        if count <= self.threshold {
            // The estimate ran ahead of the keys (deletes not compacted yet).
            return Ok(());
        }
        tracing::info!(group = self.group, objects = count, %bucket, %key, "the range group is large: asking for a split");
        let request = SplitGroupRequest { group: self.group, at: Some(KeyBound { bucket, key }) };
        let split = self.directory.raft().split_group(request).await.map_err(|status| {
            MetadataError::Unavailable(format!("group 0 did not split the range: {}", status.message()))
        })?;
        tracing::info!(group = self.group, child = split.into_inner().child, "split the range group");
        Ok(())
    }
}

/// The number of objects in `store` and the (bucket, key) of the middle one, unless it is the
/// first (a range of fewer than two objects, or one whose middle is its start, does not split).
/// Objects are keyed `bucket 0x00 key`. Blocking.
fn middle_key(store: &Store) -> Result<Option<(u64, String, String)>, MetadataError> {
    let mut count: u64 = 0;
    store.scan_prefix(Cf::Objects, b"", |_, _| {
        count += 1;
        Ok(true)
    })?;
    let mut seen: u64 = 0;
    let mut middle: Option<Vec<u8>> = None;
    store.scan_prefix(Cf::Objects, b"", |key, _| {
        seen += 1;
        if seen > count / 2 {
            middle = Some(key.to_vec());
            return Ok(false);
        }
        Ok(true)
    })?;
    let Some(raw) = middle.filter(|_| count >= 2) else { return Ok(None) };
    let at = raw
        .iter()
        .position(|&b| b == crate::keys::SEP)
        .ok_or_else(|| MetadataError::corrupt("objects", "a key without a bucket"))?;
    let bucket = String::from_utf8(raw[..at].to_vec()).map_err(|e| MetadataError::corrupt("objects", e))?;
    let key = String::from_utf8(raw[at + 1..].to_vec()).map_err(|e| MetadataError::corrupt("objects", e))?;
    if let Some(descriptor) = store.range()
        && descriptor.range.starts_at(&bucket, &key)
    {
        return Ok(None);
    }
    Ok(Some((count, bucket, key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_middle_key_halves_the_objects() {
        let (_dir, store) = crate::command::tests::store();
        assert_eq!(middle_key(&store).unwrap(), None);
        crate::command::tests::make_bucket(&store, "b");
        for i in 0..9 {
            crate::bucket_state::tests::put_inline(&store, &format!("k{i}")).unwrap();
        }
        assert_eq!(middle_key(&store).unwrap(), Some((9, "b".into(), "k4".into())));
    }
}
