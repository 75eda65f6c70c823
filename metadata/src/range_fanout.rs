//! Group 0 asking the range groups of a bucket (issue 11): DeleteBucket's fence (whether they hold
//! any of its keys, and refusing new ones until it is gone), and their part of its usage. Each call goes to one range group's leader,
//! addressed by `GROUP_HEADER`, through one client of the process (built on first use over the
//! groups' voters; the header-addressed router finds each group's replicas in the range table).

use std::sync::OnceLock;
use std::time::Duration;

use coffer_proto::metadata_client::{ClientConfig, GROUP_HEADER, MetadataClient};
use coffer_proto::pb::metadata::{FenceBucketRequest, GetBucketUsageRequest};
use coffer_proto::{ErrorCode, RemoteError};
use tonic::{Request, Status};

use crate::error::MetadataError;
use crate::range::GroupRecord;
use crate::usage::Usage;

/// Tries at lifting one group's fence.
const LIFT_ATTEMPTS: u32 = 3;

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

    /// DeleteBucket's fence: asks every range group whose range touches `bucket`, through its
    /// leader, to fence the bucket (`FenceBucket`: "empty?", then later keyed writes of it are
    /// refused). Answers the groups fenced, for [`RangeGroups::lift`] should group 0's own delete
    /// fail; BucketNotEmpty when one holds a key of the bucket (the fences already placed are
    /// lifted first), or the error of a group that did not answer (likewise).
    pub async fn fence(&self, records: &[GroupRecord], bucket: &str) -> Result<Vec<u64>, Status> {
        let mut fenced = Vec::new();
        for record in records.iter().filter(|r| r.descriptor.range.touches_bucket(bucket)) {
            let answer = match self.client(records) {
                Ok(client) => {
                    let request = FenceBucketRequest { bucket: bucket.to_string(), lift: false };
                    client.raft().fence_bucket(addressed(request, record.group)).await.map(|r| r.into_inner().empty)
                }
                Err(status) => Err(status),
            };
            match answer {
                Ok(true) => fenced.push(record.group),
                Ok(false) => {
                    self.lift(records, bucket, &fenced).await;
                    return Err(MetadataError::BucketNotEmpty(format!(
                        "{bucket} (range group {} holds keys)",
                        record.group
                    ))
                    .into());
                }
                Err(status) => {
                    self.lift(records, bucket, &fenced).await;
                    return Err(status);
                }
            }
        }
        Ok(fenced)
    }

    /// Lifts the fences of `bucket` in `groups` (best effort, each tried up to [`LIFT_ATTEMPTS`]
    /// times; a fence left standing ends with the bucket's deletion or a later DeleteBucket).
    pub async fn lift(&self, records: &[GroupRecord], bucket: &str, groups: &[u64]) {
        for &group in groups {
            let mut wait = Duration::from_millis(100);
            for attempt in 1..=LIFT_ATTEMPTS {
                let outcome = match self.client(records) {
                    Ok(client) => {
                        let request = FenceBucketRequest { bucket: bucket.to_string(), lift: true };
                        client.raft().fence_bucket(addressed(request, group)).await.map(|_| ())
                    }
                    Err(status) => Err(status),
                };
                match outcome {
                    Ok(()) => break,
                    Err(status) if attempt == LIFT_ATTEMPTS => {
                        tracing::warn!(group, %bucket, error = %status, "a fence of a bucket was not lifted");
                    }
                    Err(_) => {
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
        }
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
