//! Named bucket configurations (`BucketRecord.configs`): the storage under CORS, ACLs,
//! PublicAccessBlock, default encryption, lifecycle, object lock and notifications. Each feature
//! owns its name and value format; this file only reads and writes the slots.

use coffer_proto::pb::metadata::{GetBucketRequest, SetBucketConfigRequest};
use s3s::S3Result;

use super::CofferS3;
use super::convert::remote;

/// The names in use, so that two features never share a slot by accident.
pub mod names {
    pub const CORS: &str = "cors";
    pub const ACL: &str = "acl";
    pub const PUBLIC_ACCESS_BLOCK: &str = "public-access-block";
    pub const ENCRYPTION: &str = "encryption";
    pub const LIFECYCLE: &str = "lifecycle";
    pub const OBJECT_LOCK: &str = "object-lock";
    pub const NOTIFICATION: &str = "notification";
    pub const COMPRESSION: &str = "compression";
    pub const OWNERSHIP: &str = "ownership";
}

impl CofferS3 {
    /// The current value of one configuration of `bucket` (read from the metadata service, not
    /// the per-request cache, so a Get after a Put sees the Put). `None` when not configured;
    /// NoSuchBucket when there is no bucket.
    pub(crate) async fn bucket_config(&self, bucket: &str, name: &str) -> S3Result<Option<Vec<u8>>> {
        let request = GetBucketRequest { name: bucket.to_string() };
        let mut record = remote(self.plane.metadata.rpc().get_bucket(request).await)?.bucket.unwrap_or_default();
        Ok(record.configs.remove(name).filter(|v| !v.is_empty()))
    }

    /// Stores (or with `None` removes) one configuration of `bucket`, and drops this gateway's
    /// cached view of the bucket so the change applies to the very next request here.
    pub(crate) async fn set_bucket_config(&self, bucket: &str, name: &str, value: Option<Vec<u8>>) -> S3Result<()> {
        let request = SetBucketConfigRequest {
            name: bucket.to_string(),
            key: name.to_string(),
            value: value.unwrap_or_default(),
        };
        remote(self.plane.metadata.rpc().set_bucket_config(request).await)?;
        self.authorizer.owners.forget(bucket);
        Ok(())
    }
}
