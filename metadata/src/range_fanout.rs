//! Group 0 asking the range groups of a bucket (issue 11): whether they hold any of its keys
//! before it is deleted, and their part of its usage. Each call goes to one range group's leader,
//! addressed by `GROUP_HEADER`, through one client of the process (built on first use over the
//! groups' voters; the header-addressed router finds each group's replicas in the range table).

use std::sync::OnceLock;

use coffer_proto::metadata_client::{ClientConfig, GROUP_HEADER, MetadataClient};
use coffer_proto::pb::metadata::{GetBucketUsageRequest, ListObjectVersionsRequest, ListUploadsRequest};
use coffer_proto::{ErrorCode, RemoteError};
use tonic::{Request, Status};

use crate::error::MetadataError;
use crate::range::GroupRecord;
use crate::usage::Usage;

pub struct RangeGroups {
    config: ClientConfig,
    client: OnceLock<MetadataClient>,
}

fn addressed<T>(message: T, group: u64) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(GROUP_HEADER, group.into());
    request
}

/// A group that never received the bucket holds none of its keys (its state may still be on the
/// way): nothing there.
fn absent_bucket(status: Status) -> Result<(), Status> {
    match RemoteError::from(status) {
        e if e.code == ErrorCode::NoSuchBucket => Ok(()),
        e => Err(e.into_status()),
    }
}

impl RangeGroups {
    pub fn new(config: ClientConfig) -> RangeGroups {
        RangeGroups { config, client: OnceLock::new() }
    }

    fn client(&self, records: &[GroupRecord]) -> Result<MetadataClient, Status> {
        if let Some(client) = self.client.get() {
            return Ok(client.clone());
        }
        let mut urls: Vec<String> = records.iter().flat_map(|r| r.voters.iter().map(|(_, url)| url.clone())).collect();
        urls.sort();
        urls.dedup();
        let client = MetadataClient::connect(&urls, &self.config)?;
        Ok(self.client.get_or_init(|| client).clone())
    }

    /// Refuses (BucketNotEmpty) while a range group whose range touches `bucket` holds a version
    /// (objects included) or an upload of it. A PUT landing in a range group between this check and
    /// the delete's apply is not caught (see the sharding design note: a fence command would close it).
    pub async fn check_empty(&self, records: &[GroupRecord], bucket: &str) -> Result<(), Status> {
        for record in records.iter().filter(|r| r.descriptor.range.touches_bucket(bucket)) {
            let client = self.client(records)?;
            let range = &record.descriptor.range;
            let start_at = if range.start_bucket == bucket { range.start_key.clone() } else { String::new() };
            let versions = ListObjectVersionsRequest {
                bucket: bucket.to_string(),
                max_keys: 1,
                start_at: start_at.clone(),
                ..Default::default()
            };
            let uploads =
                ListUploadsRequest { bucket: bucket.to_string(), max_uploads: 1, start_at, ..Default::default() };
            let has_versions = match client.rpc().list_object_versions(addressed(versions, record.group)).await {
                Ok(page) => !page.into_inner().versions.is_empty(),
                Err(status) => absent_bucket(status).map(|()| false)?,
            };
            let has_uploads = match client.rpc().list_uploads(addressed(uploads, record.group)).await {
                Ok(page) => !page.into_inner().uploads.is_empty(),
                Err(status) => absent_bucket(status).map(|()| false)?,
            };
            if has_versions || has_uploads {
                return Err(MetadataError::BucketNotEmpty(format!(
                    "{bucket} (range group {} holds keys)",
                    record.group
                ))
                .into());
            }
        }
        Ok(())
    }

    /// The objects and bytes of `bucket` that its range groups hold, summed.
    pub async fn usage(&self, records: &[GroupRecord], bucket: &str) -> Result<Usage, Status> {
        let mut total = Usage::default();
        for record in records.iter().filter(|r| r.descriptor.range.touches_bucket(bucket)) {
            let client = self.client(records)?;
            let request = GetBucketUsageRequest { name: bucket.to_string() };
            match client.rpc().get_bucket_usage(addressed(request, record.group)).await {
                Ok(usage) => {
                    let usage = usage.into_inner();
                    total.objects = total.objects.saturating_add(usage.objects);
                    total.bytes = total.bytes.saturating_add(usage.bytes);
                }
                Err(status) => absent_bucket(status)?,
            }
        }
        Ok(total)
    }
}
