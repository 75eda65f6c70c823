//! Transparent compression of a bucket's new objects (a Coffer extension, not S3):
//! `buckets/BUCKET/compression` GET, PUT `{"enabled": true, "content_types"?: ["text/*", ...]}`,
//! DELETE. Stored in the bucket's `compression` configuration slot; the S3 path reads it per
//! request (`s3::sse::CompressionConfig`). Existing objects stay as they are.

use coffer_proto::pb::metadata::{GetBucketRequest, SetBucketConfigRequest};
use hyper::Method;

use super::{Admin, AdminError, AdminResult, Call, ok};
use crate::s3::bucket_config::names;
use crate::s3::sse::CompressionConfig;

/// Content-type patterns one bucket may list.
const MAX_CONTENT_TYPES: usize = 100;

pub async fn handle(admin: &Admin, call: &Call<'_>) -> AdminResult {
    let (bucket, what) = match call.segments.as_slice() {
        [_, bucket, what] => (bucket.as_str(), what.as_str()),
        _ => return Err(AdminError::not_found("expected buckets/BUCKET/compression".into())),
    };
    if what != "compression" {
        return Err(AdminError::not_found(format!("no bucket admin endpoint {what:?}")));
    }
    match *call.method {
        Method::GET => {
            admin.require(call, "admin:GetBucketCompression")?;
            let request = GetBucketRequest { name: bucket.to_string() };
            let record = admin.plane.metadata.rpc().get_bucket(request).await?.into_inner().bucket.unwrap_or_default();
            let config = match record.configs.get(names::COMPRESSION).filter(|v| !v.is_empty()) {
                Some(raw) => serde_json::from_slice(raw)
                    .map_err(|e| AdminError::internal(format!("stored compression does not parse: {e}")))?,
                None => CompressionConfig::default(),
            };
            ok(config)
        }
        Method::PUT => {
            admin.require(call, "admin:SetBucketCompression")?;
            let config: CompressionConfig = call.json()?;
            if config.content_types.len() > MAX_CONTENT_TYPES
                || config.content_types.iter().any(|t| t.is_empty() || t.len() > 255 || !t.contains('/'))
            {
                return Err(AdminError::invalid(format!(
                    "content_types: at most {MAX_CONTENT_TYPES} patterns of the form type/subtype or type/*"
                )));
            }
            let value = serde_json::to_vec(&config).map_err(|e| AdminError::internal(e.to_string()))?;
            set(admin, bucket, value).await?;
            ok(config)
        }
        Method::DELETE => {
            admin.require(call, "admin:SetBucketCompression")?;
            set(admin, bucket, Vec::new()).await?;
            ok(CompressionConfig::default())
        }
        _ => Err(AdminError::method()),
    }
}

async fn set(admin: &Admin, bucket: &str, value: Vec<u8>) -> Result<(), AdminError> {
    let request = SetBucketConfigRequest { name: bucket.to_string(), key: names::COMPRESSION.to_string(), value };
    admin.plane.metadata.rpc().set_bucket_config(request).await?;
    // This gateway's next request sees the change; others within the bucket cache's lifetime.
    admin.authorizer.owners.forget(bucket);
    Ok(())
}
