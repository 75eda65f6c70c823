//! What the authoriser needs to know of a bucket (its owner and its policy), cached briefly:
//! Swift accounts are authorised by owning the bucket and every request may meet a bucket
//! policy, and asking the metadata service on every request would double its load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_iam::policy::{Policy, PolicyKind};
use coffer_proto::ErrorCode;
use coffer_proto::metadata_client::MetadataClient;
use coffer_proto::pb::metadata::GetBucketRequest;

use crate::error::GatewayError;

/// A bucket's owner or policy changes rarely; this bounds how long a gateway may act on the old
/// one after another gateway changed it (changes made through this gateway apply at once).
const TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone)]
pub struct BucketFacts {
    pub owner: String,
    pub policy: Option<Arc<Policy>>,
    /// The bucket's named configurations (CORS, ACL, ...), for checks made on every request.
    pub configs: Arc<HashMap<String, Vec<u8>>>,
    /// Swift container metadata (quotas are checked on every Swift write).
    pub metadata: Arc<HashMap<String, String>>,
}

impl BucketFacts {
    /// One named configuration (`BucketRecord.configs`), if set.
    pub fn config(&self, name: &str) -> Option<&[u8]> {
        self.configs.get(name).map(Vec::as_slice)
    }
}

/// Bucket → its facts (`None`: no such bucket) and when they were learned.
type Cache = Arc<Mutex<HashMap<String, (Option<BucketFacts>, Instant)>>>;

#[derive(Clone)]
pub struct BucketOwners {
    metadata: MetadataClient,
    cache: Cache,
}

impl BucketOwners {
    pub fn new(metadata: MetadataClient) -> BucketOwners {
        BucketOwners { metadata, cache: Default::default() }
    }

    fn cached(&self, bucket: &str) -> Option<Option<BucketFacts>> {
        let cache = self.cache.lock().ok()?;
        let (facts, at) = cache.get(bucket)?;
        (at.elapsed() < TTL).then(|| facts.clone())
    }

    /// The owner and policy of `bucket`, or `None` when there is no such bucket.
    pub async fn facts(&self, bucket: &str) -> Result<Option<BucketFacts>, GatewayError> {
        if let Some(facts) = self.cached(bucket) {
            return Ok(facts);
        }
        let request = GetBucketRequest { name: bucket.to_string() };
        let facts = match self.metadata.rpc().get_bucket(request).await {
            Ok(response) => response.into_inner().bucket.map(|b| BucketFacts {
                owner: b.owner,
                configs: Arc::new(b.configs),
                metadata: Arc::new(b.metadata),
                policy: (!b.policy.is_empty())
                    .then(|| match Policy::parse_as(&b.policy, PolicyKind::Resource) {
                        Ok(policy) => Some(Arc::new(policy)),
                        // Stored policies were validated on the way in; one that no longer parses
                        // (a newer gateway's syntax) grants nothing rather than everything.
                        Err(e) => {
                            tracing::error!(%bucket, error = %e, "stored bucket policy does not parse; ignored");
                            None
                        }
                    })
                    .flatten(),
            }),
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
            cache.insert(bucket.to_string(), (facts.clone(), Instant::now()));
        }
        Ok(facts)
    }

    /// The owner of `bucket`, or `None` when there is no such bucket.
    pub async fn owner(&self, bucket: &str) -> Result<Option<String>, GatewayError> {
        Ok(self.facts(bucket).await?.map(|f| f.owner))
    }

    /// The metadata client the facts come from (for the ACL check of an object's record).
    pub fn metadata(&self) -> &MetadataClient {
        &self.metadata
    }

    /// Forgets what this gateway knows of `bucket` (it just created, deleted or changed it).
    pub fn forget(&self, bucket: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(bucket);
        }
    }
}
