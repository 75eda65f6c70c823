//! Group 0 asking the range groups (issue 11): of a bucket, DeleteBucket's fence (whether they hold
//! any of its keys, and refusing new ones until it is gone) and their part of its usage; of every
//! range group, whether its data still uses a node (before RemoveNode, and before a draining node
//! is called drained), and its part of the repair status and of the damaged-shard reports. Each
//! call goes to one range group's leader, addressed by `GROUP_HEADER`, through one client of the
//! process (built on first use over the groups' voters; the header-addressed router finds each
//! group's replicas in the range table).

use std::sync::OnceLock;
use std::time::Duration;

use coffer_proto::metadata_client::{ClientConfig, GROUP_HEADER, MetadataClient};
use coffer_proto::pb::metadata::{
    DamagedShard, FenceBucketRequest, GetBucketUsageRequest, GetNodeReferencesRequest, GetRepairStatusRequest,
    GetRepairStatusResponse, ListDamagedShardsRequest,
};
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

/// What group 0 answers when a range group failed: Unavailable (retryable) naming the group,
/// whatever the group's own error was — a "not leader" hint there is not about group 0.
fn unanswered(group: u64, status: Status) -> Status {
    MetadataError::Unavailable(format!("range group {group} did not answer: {}", status.message())).into()
}

/// Adds one group's repair status to `total`. Lost disks are not added: every group counts the
/// same disks of the one cluster map, so `total` keeps its own (group 0's) count.
pub fn add_repair_status(total: &mut GetRepairStatusResponse, group: &GetRepairStatusResponse) {
    total.degraded_columns = total.degraded_columns.saturating_add(group.degraded_columns);
    total.degraded_stripes = total.degraded_stripes.saturating_add(group.degraded_stripes);
    total.blocked_columns = total.blocked_columns.saturating_add(group.blocked_columns);
    total.damaged_reports = total.damaged_reports.saturating_add(group.damaged_reports);
    total.leased_columns = total.leased_columns.saturating_add(group.leased_columns);
    total.columns_repaired = total.columns_repaired.saturating_add(group.columns_repaired);
    total.bytes_repaired = total.bytes_repaired.saturating_add(group.bytes_repaired);
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
    /// The first range group whose data still has a column on `node_id`, with how many it counted
    /// (up to `limit`); `None` when no range group has any. A group that does not answer is an
    /// error: nothing may be concluded about a silent group.
    pub async fn node_references(
        &self,
        records: &[GroupRecord],
        node_id: &str,
        limit: u32,
    ) -> Result<Option<(u64, u64)>, Status> {
        for record in records {
            let client = self.client(records)?;
            let request = GetNodeReferencesRequest { node_id: node_id.to_string(), limit };
            let referenced = match client.rpc().get_node_references(addressed(request, record.group)).await {
                Ok(answer) => answer.into_inner().referenced,
                Err(status) => return Err(unanswered(record.group, status)),
            };
            if referenced > 0 {
                return Ok(Some((record.group, referenced)));
            }
        }
        Ok(None)
    }

    /// Every range group's repair status (planned with the same grace), added to `total`.
    pub async fn add_repair_status(
        &self,
        records: &[GroupRecord],
        grace_ms: u64,
        total: &mut GetRepairStatusResponse,
    ) -> Result<(), Status> {
        for record in records {
            let client = self.client(records)?;
            let request = GetRepairStatusRequest { grace_ms };
            match client.rpc().get_repair_status(addressed(request, record.group)).await {
                Ok(status) => add_repair_status(total, &status.into_inner()),
                Err(status) => return Err(unanswered(record.group, status)),
            }
        }
        Ok(())
    }

    /// Appends the range groups' damaged-shard reports to `shards`, in group order, until it holds
    /// `limit` (each group is asked only for what is still missing).
    pub async fn damaged_shards(
        &self,
        records: &[GroupRecord],
        limit: usize,
        shards: &mut Vec<DamagedShard>,
    ) -> Result<(), Status> {
        for record in records {
            let missing = limit.saturating_sub(shards.len());
            if missing == 0 {
                break;
            }
            let client = self.client(records)?;
            // `limit` 0 asks for the server's default page: never sent, since missing > 0.
            let request = ListDamagedShardsRequest { limit: u32::try_from(missing).unwrap_or(u32::MAX) };
            match client.rpc().list_damaged_shards(addressed(request, record.group)).await {
                Ok(answer) => shards.extend(answer.into_inner().shards.into_iter().take(missing)),
                Err(status) => return Err(unanswered(record.group, status)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_status_adds_every_count_but_the_lost_disks() {
        let mut total = GetRepairStatusResponse {
            degraded_columns: 1,
            degraded_stripes: 2,
            blocked_columns: 3,
            damaged_reports: 4,
            lost_disks: 1,
            leased_columns: 5,
            columns_repaired: 6,
            bytes_repaired: 7,
        };
        let group = GetRepairStatusResponse {
            degraded_columns: 10,
            degraded_stripes: 20,
            blocked_columns: 30,
            damaged_reports: 40,
            lost_disks: 1,
            leased_columns: 50,
            columns_repaired: 60,
            bytes_repaired: u64::MAX,
        };
        add_repair_status(&mut total, &group);
        assert_eq!(
            total,
            GetRepairStatusResponse {
                degraded_columns: 11,
                degraded_stripes: 22,
                blocked_columns: 33,
                damaged_reports: 44,
                lost_disks: 1,
                leased_columns: 55,
                columns_repaired: 66,
                bytes_repaired: u64::MAX,
            }
        );
    }

    #[test]
    fn a_range_group_failure_is_group_0s_unavailable_naming_the_group() {
        let status = unanswered(3, MetadataError::NotLeader { leader: Some("http://x".into()) }.into());
        let error = RemoteError::from(status);
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert!(error.message.contains("range group 3 did not answer"), "{}", error.message);
    }
}
