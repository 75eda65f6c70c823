//! Who owns a bucket, cached briefly: Swift tempauth accounts are authorised by ownership, and
//! asking the metadata service on every request would double its load.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coffer_proto::ErrorCode;
use coffer_proto::metadata_client::MetadataClient;
use coffer_proto::pb::metadata::GetBucketRequest;

use crate::error::GatewayError;

/// A bucket's owner changes only when it is deleted and created again; this bounds how long a
/// gateway may act on the old owner afterwards.
const TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 10_000;

/// Bucket → its owner (`None`: no such bucket) and when that was learned.
type Cache = std::sync::Arc<Mutex<HashMap<String, (Option<String>, Instant)>>>;

#[derive(Clone)]
pub struct BucketOwners {
    metadata: MetadataClient,
    cache: Cache,
}

impl BucketOwners {
    pub fn new(metadata: MetadataClient) -> BucketOwners {
        BucketOwners { metadata, cache: Default::default() }
    }

    fn cached(&self, bucket: &str) -> Option<Option<String>> {
        let cache = self.cache.lock().ok()?;
        let (owner, at) = cache.get(bucket)?;
        (at.elapsed() < TTL).then(|| owner.clone())
    }

    /// The owner of `bucket`, or `None` when there is no such bucket.
    pub async fn owner(&self, bucket: &str) -> Result<Option<String>, GatewayError> {
        if let Some(owner) = self.cached(bucket) {
            return Ok(owner);
        }
        let request = GetBucketRequest { name: bucket.to_string() };
        let owner = match self.metadata.rpc().get_bucket(request).await {
            Ok(response) => response.into_inner().bucket.map(|b| b.owner),
            Err(status) => {
                let error = coffer_proto::RemoteError::from(status);
                if error.code != ErrorCode::NoSuchBucket {
                    return Err(GatewayError::Remote(error));
                }
                None
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(bucket.to_string(), (owner.clone(), Instant::now()));
        }
        Ok(owner)
    }

    /// Forgets what this gateway knows of `bucket` (it just created or deleted it).
    pub fn forget(&self, bucket: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(bucket);
        }
    }
}
