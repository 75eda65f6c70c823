//! The gRPC edge: turns requests into reads or commands, deciding everything nondeterministic
//! (clock, ids, placement) before a command is queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coffer_proto::pb::metadata::metadata_server::Metadata;
use coffer_proto::pb::metadata::*;
use tonic::{Request, Response, Status};

use crate::applier::Applier;
use crate::cluster::Cluster;
use crate::cluster_feed::ClusterFeed;
use crate::command::{Command, Stamp, validate_node};
use crate::config::MetadataConfig;
use crate::error::MetadataError;
use crate::leases::{self, Leases};
use crate::range_fanout::RangeGroups;
use crate::store::Store;
use crate::{accounts, data, iam, keys, listing, multipart, now_unix_ms, placement, repair, usage, versions};

/// A commit refuses an intent due within this margin: the collector may already be deleting it.
const INTENT_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub gc_grace: Duration,
    pub intent_ttl: Duration,
}

impl From<&MetadataConfig> for Timing {
    fn from(config: &MetadataConfig) -> Self {
        Timing { gc_grace: config.gc_grace, intent_ttl: config.intent_ttl }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Timing {
    fn stamp(&self, now_unix_ms: i64) -> Stamp {
        // With a short intent TTL (tests), the margin shrinks so commits stay possible.
        let margin = INTENT_MARGIN.min(self.intent_ttl / 2);
        Stamp {
            now_unix_ms,
            replaced_gc_unix_ms: now_unix_ms.saturating_add(ms(self.gc_grace)),
            intent_deadline_unix_ms: now_unix_ms.saturating_add(ms(margin)),
            version_order: 0,
        }
    }
}

pub struct MetadataService {
    store: Arc<Store>,
    applier: Applier,
    cluster: Arc<Cluster>,
    timing: Timing,
    leases: Arc<Leases>,
    /// The last version sequence handed out (microseconds since the epoch, made strictly increasing),
    /// so versions made later get smaller orders, hence ids that sort first.
    version_seq: AtomicU64,
    /// Webhook targets a bucket's notification configuration may name.
    notify_targets: crate::notify::Targets,
    /// Group 0 of a replicated process: how to ask the range groups of a bucket whether they hold
    /// its keys before deleting it, and for their part of its usage.
    range_groups: Option<RangeGroups>,
    /// The group this service answers for (0: the directory, or a lone service); named in the
    /// repair tasks it hands out.
    group: u64,
    /// A range group: its cluster map is a copy of group 0's, refreshed before it is used.
    cluster_feed: Option<Arc<ClusterFeed>>,
}

/// Repair tasks handed out per claim at most.
const MAX_CLAIM: usize = 256;
/// How long group 0 waits for the range groups' word that a draining node is empty (within a
/// repair claim or status call).
const RANGE_ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// Data ids with a column on a node that RemoveNode counts at most, per group.
const REFERENCE_COUNT_LIMIT: usize = 1000;

/// Whether a cluster-wide call (repair status, damaged shards) answers for every group: when it
/// names no group. A call addressed by `GROUP_HEADER` — to group 0 too — answers for the group
/// addressed alone, which is also how group 0 asks the range groups for their part.
fn unaddressed<T>(req: &Request<T>) -> bool {
    !req.metadata().contains_key(coffer_proto::metadata_client::GROUP_HEADER)
}

fn required<T>(field: Option<T>, name: &str) -> Result<T, Status> {
    field.ok_or_else(|| MetadataError::InvalidArgument(format!("{name} is required")).into())
}

impl MetadataService {
    pub fn new(store: Arc<Store>, applier: Applier, cluster: Arc<Cluster>, timing: Timing) -> MetadataService {
        MetadataService {
            store,
            applier,
            cluster,
            timing,
            leases: Arc::default(),
            version_seq: AtomicU64::new(0),
            notify_targets: Default::default(),
            range_groups: None,
            group: 0,
            cluster_feed: None,
        }
    }

    /// A range group's service: `feed` keeps `cluster` (the one given to [`MetadataService::new`])
    /// a copy of group 0's map.
    pub fn with_cluster_feed(mut self, feed: Arc<ClusterFeed>) -> MetadataService {
        self.cluster_feed = Some(feed);
        self
    }

    /// The cluster map as of at most `cluster_feed::MAX_AGE` ago (group 0's own, live, needs nothing).
    async fn fresh_cluster(&self) -> Result<(), Status> {
        if let Some(feed) = &self.cluster_feed {
            feed.refresh().await?;
        }
        Ok(())
    }

    pub fn with_range_client(mut self, config: coffer_proto::metadata_client::ClientConfig) -> MetadataService {
        self.range_groups = Some(RangeGroups::new(config));
        self
    }

    /// A range group's service.
    pub fn with_group(mut self, group: u64) -> MetadataService {
        self.group = group;
        self
    }

    pub fn with_notify_targets(mut self, targets: crate::notify::Targets) -> MetadataService {
        self.notify_targets = targets;
        self
    }

    fn stamp(&self) -> Stamp {
        let now = now_unix_ms();
        let micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let previous = self
            .version_seq
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(micros.max(last + 1)))
            .unwrap_or_else(|last| last);
        let mut stamp = self.timing.stamp(now);
        stamp.version_order = versions::order_of(micros.max(previous + 1));
        stamp
    }

    /// A point lookup (one key), run right here on the runtime thread: it is served from the memtable or block
    /// cache, or costs one block read, which is cheaper than the two thread hand-offs of the blocking pool (those
    /// showed up as the largest cost of a small GET). Scans go through [`Self::read`].
    fn read_point<T>(&self, read: impl FnOnce(&Store) -> Result<T, MetadataError>) -> Result<T, Status> {
        Ok(read(&self.store)?)
    }

    /// The range check of a point read's (bucket, key): the same `WrongRange` the apply gives a
    /// command — in a range group outside its range, in group 0 inside a range group's range
    /// (nothing to check while group 0 has no range groups, e.g. in a lone service).
    fn check_key(&self, bucket: &str, key: &str) -> Result<(), Status> {
        match self.store.range() {
            Some(descriptor) => Ok(descriptor.check_key(bucket, key)?),
            None => Ok(self.store.check_directory_key(bucket, key)?),
        }
    }

    /// Runs a read off the async runtime: scans read many blocks, and RocksDB reads block.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, MetadataError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || read(&store))
            .await
            .map_err(|e| MetadataError::Internal(format!("read task failed: {e}")))?;
        Ok(result?)
    }

    async fn submit(&self, command: Command) -> Result<crate::command::Applied, Status> {
        Ok(self.applier.submit(command).await?)
    }

    /// Plans repair work off the runtime (it scans), with `limit` tasks not leased now.
    async fn plan_repairs(&self, grace_ms: u64, limit: usize) -> Result<repair::Plan, Status> {
        self.fresh_cluster().await?;
        let now = Instant::now();
        let disks = self.cluster.disk_views(now, Duration::from_millis(grace_ms));
        let leased = self.leases.snapshot(now);
        let unowned_report_ttl_ms = ms(self.timing.intent_ttl.saturating_add(self.timing.gc_grace));
        let now_unix_ms = now_unix_ms();
        let plan = self
            .read(move |store| {
                let inputs = repair::Inputs { disks: &disks, now_unix_ms, unowned_report_ttl_ms, limit };
                repair::plan(store, &inputs, |id, index| leased.contains(&(id.to_vec(), index)), &mut rand::rng())
            })
            .await?;
        if !plan.stale_reports.is_empty() {
            self.submit(Command::DropDamaged { keys: plan.stale_reports.clone() }).await?;
        }
        // Node admin states are group 0's. A range group moves its data off a draining node all
        // the same (its planner reads the same admin state from its copy of the map), so group 0
        // calls the node drained only once every range group also says it uses the node no more.
        let drained = if self.store.range().is_none() { &plan.drained[..] } else { &[] };
        for node_id in drained {
            if self.cluster.admin(node_id) == NodeAdmin::Draining && self.range_groups_done_with(node_id).await {
                self.submit(Command::SetNodeAdmin { node_id: node_id.clone(), admin: NodeAdmin::Drained }).await?;
                self.cluster.set_admin(node_id, NodeAdmin::Drained);
                tracing::info!(node_id = %node_id, "node drained: no record references its shards any more");
            }
        }
        Ok(plan)
    }

    /// Whether no range group's data has a column on `node_id` any more (true without range
    /// groups). A group that does not answer within [`RANGE_ASK_TIMEOUT`] means "not yet": the
    /// drain is called done only on every group's word, and a repair claim on group 0 must not
    /// wait long on another group.
    async fn range_groups_done_with(&self, node_id: &str) -> bool {
        let Some(range_groups) = &self.range_groups else { return true };
        let records = self.store.directory_records();
        if records.is_empty() {
            return true;
        }
        match tokio::time::timeout(RANGE_ASK_TIMEOUT, range_groups.node_references(&records, node_id, 1)).await {
            Ok(Ok(None)) => true,
            Ok(Ok(Some((group, _)))) => {
                tracing::debug!(node_id, group, "a draining node still holds a range group's data");
                false
            }
            Ok(Err(status)) => {
                tracing::warn!(node_id, error = %status, "could not ask the range groups whether a node is drained");
                false
            }
            Err(_) => {
                tracing::warn!(node_id, "the range groups did not answer in time whether a node is drained");
                false
            }
        }
    }

    async fn observe_node(&self, node: Option<NodeInfo>, always_store: bool) -> Result<(), Status> {
        let node = required(node, "node")?;
        validate_node(&node)?;
        let now = Instant::now();
        if let Some(to_store) = self.cluster.observe(node, now, now_unix_ms(), always_store) {
            self.submit(Command::PutNode { node: to_store.clone() }).await?;
            self.cluster.stored(to_store, now);
        }
        Ok(())
    }
}

/// Bounds one report's write batch; a blobnode with more sends several.
const MAX_DAMAGED_PER_REPORT: usize = 1000;

#[tonic::async_trait]
impl Metadata for MetadataService {
    async fn create_bucket(&self, req: Request<CreateBucketRequest>) -> Result<Response<CreateBucketResponse>, Status> {
        let req = req.into_inner();
        let mut bucket = BucketRecord {
            name: req.name,
            created_unix_ms: now_unix_ms(),
            owner: req.owner,
            region: req.region,
            ..Default::default()
        };
        if req.object_lock_enabled {
            crate::object_lock::enable(&mut bucket);
        }
        let bucket = self.submit(Command::CreateBucket { bucket }).await?.into_bucket()?;
        Ok(Response::new(CreateBucketResponse { bucket: Some(bucket) }))
    }

    async fn get_bucket(&self, req: Request<GetBucketRequest>) -> Result<Response<GetBucketResponse>, Status> {
        let name = req.into_inner().name;
        if let Some(descriptor) = self.store.range() {
            descriptor.check_bucket(&name)?;
        }
        let bucket = self.read_point(move |store| store.bucket(&name))?;
        Ok(Response::new(GetBucketResponse { bucket: Some(bucket) }))
    }

    async fn delete_bucket(&self, req: Request<DeleteBucketRequest>) -> Result<Response<DeleteBucketResponse>, Status> {
        let name = req.into_inner().name;
        // Range groups of the bucket are fenced first (empty, and taking no new key), then group
        // 0 deletes it (checking its own keys in the apply); the deletion reaches them through the
        // outbox and ends their fences. A failed delete lifts them.
        if let Some(range_groups) = &self.range_groups {
            let records = self.store.directory_records();
            let fenced = range_groups.fence(&records, &name).await?;
            if let Err(e) = self.submit(Command::DeleteBucket { name: name.clone(), stamp: self.stamp() }).await {
                // Also every group of the bucket recorded since: a split meanwhile copied the
                // parent's fence into its child (lifting an unfenced group changes nothing).
                let now = self.store.directory_records();
                let mut lift = fenced;
                lift.extend(
                    now.iter()
                        .filter(|r| {
                            r.descriptor.range.touches_bucket(&name) && !records.iter().any(|o| o.group == r.group)
                        })
                        .map(|r| r.group),
                );
                range_groups.lift(&now, &name, &lift).await;
                return Err(e);
            }
            return Ok(Response::new(DeleteBucketResponse {}));
        }
        self.submit(Command::DeleteBucket { name, stamp: self.stamp() }).await?;
        Ok(Response::new(DeleteBucketResponse {}))
    }

    async fn list_buckets(&self, _: Request<ListBucketsRequest>) -> Result<Response<ListBucketsResponse>, Status> {
        let buckets = self.read(|store| store.list_buckets()).await?;
        Ok(Response::new(ListBucketsResponse { buckets }))
    }

    async fn put_bucket_tags(
        &self,
        req: Request<PutBucketTagsRequest>,
    ) -> Result<Response<PutBucketTagsResponse>, Status> {
        let req = req.into_inner();
        let bucket = self.submit(Command::SetBucketTags { name: req.name, tags: req.tags }).await?.into_bucket()?;
        Ok(Response::new(PutBucketTagsResponse { bucket: Some(bucket) }))
    }

    async fn set_bucket_policy(
        &self,
        req: Request<SetBucketPolicyRequest>,
    ) -> Result<Response<SetBucketPolicyResponse>, Status> {
        let req = req.into_inner();
        let bucket =
            self.submit(Command::SetBucketPolicy { name: req.name, policy: req.policy }).await?.into_bucket()?;
        Ok(Response::new(SetBucketPolicyResponse { bucket: Some(bucket) }))
    }

    async fn set_bucket_config(
        &self,
        req: Request<SetBucketConfigRequest>,
    ) -> Result<Response<SetBucketConfigResponse>, Status> {
        let req = req.into_inner();
        if req.key == crate::notify::CONFIG {
            self.notify_targets.validate(&req.value)?;
        }
        if req.key == crate::lifecycle::CONFIG {
            crate::lifecycle::validate(&req.value)?;
        }
        let command = Command::SetBucketConfig { name: req.name, key: req.key, value: req.value };
        let bucket = self.submit(command).await?.into_bucket()?;
        Ok(Response::new(SetBucketConfigResponse { bucket: Some(bucket) }))
    }

    async fn set_bucket_metadata(
        &self,
        req: Request<SetBucketMetadataRequest>,
    ) -> Result<Response<SetBucketMetadataResponse>, Status> {
        let req = req.into_inner();
        let command = Command::SetBucketMetadata { name: req.name, metadata: req.metadata };
        let bucket = self.submit(command).await?.into_bucket()?;
        Ok(Response::new(SetBucketMetadataResponse { bucket: Some(bucket) }))
    }

    async fn get_account(&self, req: Request<GetAccountRequest>) -> Result<Response<GetAccountResponse>, Status> {
        let name = req.into_inner().name;
        let account = self.read_point(move |store| accounts::get(store, &name))?;
        Ok(Response::new(GetAccountResponse { account: Some(account) }))
    }

    async fn set_account_metadata(
        &self,
        req: Request<SetAccountMetadataRequest>,
    ) -> Result<Response<SetAccountMetadataResponse>, Status> {
        let req = req.into_inner();
        let command = Command::SetAccountMetadata { name: req.name, metadata: req.metadata };
        let account = self.submit(command).await?.into_account()?;
        Ok(Response::new(SetAccountMetadataResponse { account: Some(account) }))
    }

    async fn get_bucket_usage(
        &self,
        req: Request<GetBucketUsageRequest>,
    ) -> Result<Response<GetBucketUsageResponse>, Status> {
        let name = req.into_inner().name;
        let bucket = name.clone();
        let mut usage = self.read_point(move |store| {
            store.bucket(&bucket)?;
            usage::get(store, &bucket)
        })?;
        // Group 0 adds what the bucket's range groups hold.
        if let Some(range_groups) = &self.range_groups {
            let theirs = range_groups.usage(&self.store.directory_records(), &name).await?;
            usage.objects = usage.objects.saturating_add(theirs.objects);
            usage.bytes = usage.bytes.saturating_add(theirs.bytes);
        }
        Ok(Response::new(GetBucketUsageResponse { objects: usage.objects, bytes: usage.bytes }))
    }

    async fn allocate_data(&self, req: Request<AllocateDataRequest>) -> Result<Response<AllocateDataResponse>, Status> {
        let req = req.into_inner();
        let count = placement::validate_shape(req.data_shards, req.parity_shards)?;
        // The intent lives with the record that will commit it: refused here (as its apply would)
        // when another group owns the key, before any placement.
        if !req.bucket.is_empty() {
            crate::command::validate_key(&req.key)?;
            self.check_key(&req.bucket, &req.key)?;
        }
        self.fresh_cluster().await?;
        let now = Instant::now();
        let nodes = self.cluster.placeable_nodes(now);
        let min_shards = (req.min_shards as usize).min(count);
        let down = if min_shards > 0 { self.cluster.down_disks(now) } else { Vec::new() };
        let shards = placement::place_with_fallback(&nodes, count, min_shards, &down, &mut rand::rng())?;
        let data_id = data::new_data_id();
        let due = now_unix_ms().saturating_add(ms(self.timing.intent_ttl));
        let intent = keys::gc(due, &data_id);
        let record = GcRecord { data_id: data_id.clone(), shards: shards.clone(), bucket: req.bucket, key: req.key };
        self.submit(Command::RecordIntent { intent: intent.clone(), record }).await?;
        Ok(Response::new(AllocateDataResponse { data_id, shards, intent }))
    }

    async fn abandon_data(&self, req: Request<AbandonDataRequest>) -> Result<Response<AbandonDataResponse>, Status> {
        let req = req.into_inner();
        // The intent is in the group owning the key it was allocated for (group 0 for a writer that
        // named none); elsewhere abandoning it would silently change nothing.
        if !req.bucket.is_empty() {
            self.check_key(&req.bucket, &req.key)?;
        }
        self.submit(Command::AbandonData { intent: req.intent, stamp: self.stamp() }).await?;
        Ok(Response::new(AbandonDataResponse {}))
    }

    async fn put_object(&self, req: Request<PutObjectRequest>) -> Result<Response<PutObjectResponse>, Status> {
        let created = crate::notify::created_by(req.metadata());
        let req = req.into_inner();
        let record = required(req.record, "record")?;
        let command = Command::PutObject {
            record,
            intents: req.intents,
            condition: req.condition.unwrap_or_default(),
            stamp: self.stamp(),
        };
        let command = crate::notify::hinted(created, command);
        let record = self.submit(command).await?.into_object()?;
        Ok(Response::new(PutObjectResponse { record: Some(record) }))
    }

    async fn get_object(&self, req: Request<GetObjectRequest>) -> Result<Response<GetObjectResponse>, Status> {
        let req = req.into_inner();
        self.check_key(&req.bucket, &req.key)?;
        let record = self.read_point(move |store| versions::get(store, &req.bucket, &req.key, &req.version_id))?;
        Ok(Response::new(GetObjectResponse { record: Some(record) }))
    }

    async fn delete_object(&self, req: Request<DeleteObjectRequest>) -> Result<Response<DeleteObjectResponse>, Status> {
        let req = req.into_inner();
        let command = if req.version_id.is_empty() {
            Command::DeleteObject { bucket: req.bucket, key: req.key, stamp: self.stamp() }
        } else {
            Command::DeleteVersion {
                bucket: req.bucket,
                key: req.key,
                version_id: req.version_id,
                bypass_governance: req.bypass_governance,
                stamp: self.stamp(),
            }
        };
        let (existed, version_id, delete_marker) = self.submit(command).await?.into_deleted()?;
        Ok(Response::new(DeleteObjectResponse { existed, version_id, delete_marker }))
    }

    async fn update_object_lock(
        &self,
        req: Request<ObjectLockUpdateRequest>,
    ) -> Result<Response<ObjectLockUpdateResponse>, Status> {
        let req = req.into_inner();
        let update = crate::object_lock::LockUpdate {
            retention: req.set_retention.then_some((req.mode, req.retain_until_unix_ms)),
            legal_hold: req.set_legal_hold.then_some(req.legal_hold),
            bypass_governance: req.bypass_governance,
        };
        let command = Command::UpdateObjectLock {
            bucket: req.bucket,
            key: req.key,
            version_id: req.version_id,
            update,
            stamp: self.stamp(),
        };
        let record = self.submit(command).await?.into_object()?;
        Ok(Response::new(ObjectLockUpdateResponse { record: Some(record) }))
    }

    async fn put_object_tags(
        &self,
        req: Request<PutObjectTagsRequest>,
    ) -> Result<Response<PutObjectTagsResponse>, Status> {
        let req = req.into_inner();
        let command = if req.version_id.is_empty() {
            Command::SetObjectTags { bucket: req.bucket, key: req.key, tags: req.tags }
        } else {
            Command::SetVersionTags { bucket: req.bucket, key: req.key, version_id: req.version_id, tags: req.tags }
        };
        let record = self.submit(command).await?.into_object()?;
        Ok(Response::new(PutObjectTagsResponse { record: Some(record) }))
    }

    async fn set_object_acl(
        &self,
        req: Request<AclSetObjectAclRequest>,
    ) -> Result<Response<AclSetObjectAclResponse>, Status> {
        let req = req.into_inner();
        let command =
            Command::SetObjectAcl { bucket: req.bucket, key: req.key, version_id: req.version_id, acl: req.acl };
        let record = self.submit(command).await?.into_object()?;
        Ok(Response::new(AclSetObjectAclResponse { record: Some(record) }))
    }

    async fn list_objects(&self, req: Request<ListObjectsRequest>) -> Result<Response<ListObjectsResponse>, Status> {
        let req = req.into_inner();
        Ok(Response::new(self.read(move |store| listing::list_objects(store, &req)).await?))
    }

    async fn set_bucket_versioning(
        &self,
        req: Request<SetBucketVersioningRequest>,
    ) -> Result<Response<SetBucketVersioningResponse>, Status> {
        let req = req.into_inner();
        let versioning = Versioning::try_from(req.versioning)
            .map_err(|_| MetadataError::InvalidArgument(format!("unknown versioning state {}", req.versioning)))?;
        let bucket = self.submit(Command::SetBucketVersioning { name: req.name, versioning }).await?.into_bucket()?;
        Ok(Response::new(SetBucketVersioningResponse { bucket: Some(bucket) }))
    }

    async fn list_object_versions(
        &self,
        req: Request<ListObjectVersionsRequest>,
    ) -> Result<Response<ListObjectVersionsResponse>, Status> {
        let req = req.into_inner();
        Ok(Response::new(self.read(move |store| versions::list(store, &req)).await?))
    }

    async fn create_upload(&self, req: Request<CreateUploadRequest>) -> Result<Response<CreateUploadResponse>, Status> {
        let template = required(req.into_inner().template, "template")?;
        let now = now_unix_ms();
        let upload = UploadRecord {
            upload_id: multipart::new_upload_id(now),
            bucket: template.bucket.clone(),
            key: template.key.clone(),
            initiated_unix_ms: now,
            template: Some(template),
        };
        let upload = self.submit(Command::CreateUpload { upload }).await?.into_upload()?;
        Ok(Response::new(CreateUploadResponse { upload: Some(upload) }))
    }

    async fn get_upload(&self, req: Request<GetUploadRequest>) -> Result<Response<GetUploadResponse>, Status> {
        let req = req.into_inner();
        self.check_key(&req.bucket, &req.key)?;
        let upload = self.read_point(move |store| store.upload(&req.bucket, &req.key, &req.upload_id))?;
        Ok(Response::new(GetUploadResponse { upload: Some(upload) }))
    }

    async fn put_part(&self, req: Request<PutPartRequest>) -> Result<Response<PutPartResponse>, Status> {
        let req = req.into_inner();
        let part = PartRecord {
            upload_id: req.upload_id,
            part_number: req.part_number,
            last_modified_unix_ms: 0,
            segment: Some(required(req.segment, "segment")?),
        };
        let command =
            Command::PutPart { bucket: req.bucket, key: req.key, part, intents: req.intents, stamp: self.stamp() };
        let part = self.submit(command).await?.into_part()?;
        Ok(Response::new(PutPartResponse { part: Some(part) }))
    }

    async fn list_parts(&self, req: Request<ListPartsRequest>) -> Result<Response<ListPartsResponse>, Status> {
        let req = req.into_inner();
        self.check_key(&req.bucket, &req.key)?;
        Ok(Response::new(self.read(move |store| listing::list_parts(store, &req)).await?))
    }

    async fn complete_upload(
        &self,
        req: Request<CompleteUploadRequest>,
    ) -> Result<Response<CompleteUploadResponse>, Status> {
        let req = req.into_inner();
        let command = Command::CompleteUpload {
            bucket: req.bucket,
            key: req.key,
            upload_id: req.upload_id,
            parts: req.parts,
            condition: req.condition.unwrap_or_default(),
            stamp: self.stamp(),
        };
        let record = self.submit(command).await?.into_object()?;
        Ok(Response::new(CompleteUploadResponse { record: Some(record) }))
    }

    async fn abort_upload(&self, req: Request<AbortUploadRequest>) -> Result<Response<AbortUploadResponse>, Status> {
        let req = req.into_inner();
        let command =
            Command::AbortUpload { bucket: req.bucket, key: req.key, upload_id: req.upload_id, stamp: self.stamp() };
        self.submit(command).await?;
        Ok(Response::new(AbortUploadResponse {}))
    }

    async fn list_uploads(&self, req: Request<ListUploadsRequest>) -> Result<Response<ListUploadsResponse>, Status> {
        let req = req.into_inner();
        Ok(Response::new(self.read(move |store| listing::list_uploads(store, &req)).await?))
    }

    async fn register_node(&self, req: Request<RegisterNodeRequest>) -> Result<Response<RegisterNodeResponse>, Status> {
        self.observe_node(req.into_inner().node, true).await?;
        Ok(Response::new(RegisterNodeResponse {}))
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        self.observe_node(req.into_inner().node, false).await?;
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn report_damaged_shards(
        &self,
        req: Request<ReportDamagedShardsRequest>,
    ) -> Result<Response<ReportDamagedShardsResponse>, Status> {
        let req = req.into_inner();
        // A report routed by the key its data was written for: a group that does not own the key
        // would keep none of it, so it answers WrongRange and the router resends it.
        if !req.bucket.is_empty() {
            self.check_key(&req.bucket, &req.key)?;
        }
        let mut shards = req.shards;
        if shards.len() > MAX_DAMAGED_PER_REPORT {
            return Err(MetadataError::InvalidArgument(format!(
                "{} damaged shards in one report; at most {MAX_DAMAGED_PER_REPORT}",
                shards.len()
            ))
            .into());
        }
        if shards.is_empty() {
            return Ok(Response::new(ReportDamagedShardsResponse {}));
        }
        let now = now_unix_ms();
        for shard in &mut shards {
            shard.reported_unix_ms = now;
            tracing::warn!(node = %shard.node_id, disk = %shard.disk_id, data_id = %hex::encode(&shard.data_id),
                stripe = shard.stripe, index = shard.index, reason = %shard.reason, detail = %shard.detail,
                "damaged shard reported");
        }
        self.submit(Command::ReportDamaged { shards }).await?;
        Ok(Response::new(ReportDamagedShardsResponse {}))
    }

    async fn list_damaged_shards(
        &self,
        req: Request<ListDamagedShardsRequest>,
    ) -> Result<Response<ListDamagedShardsResponse>, Status> {
        let everywhere = unaddressed(&req);
        let limit = match req.into_inner().limit {
            0 => 1000,
            n => (n as usize).min(10_000),
        };
        let mut shards = self.read(move |store| store.damaged_shards(limit)).await?;
        // Unaddressed, group 0 answers for every group: its own reports first, then each range group's.
        if let Some(range_groups) = self.range_groups.as_ref().filter(|_| everywhere) {
            range_groups.damaged_shards(&self.store.directory_records(), limit, &mut shards).await?;
        }
        Ok(Response::new(ListDamagedShardsResponse { shards }))
    }

    async fn get_node_references(
        &self,
        req: Request<GetNodeReferencesRequest>,
    ) -> Result<Response<GetNodeReferencesResponse>, Status> {
        let req = req.into_inner();
        let limit = (req.limit as usize).clamp(1, REFERENCE_COUNT_LIMIT);
        let referenced = self.read(move |store| store.referenced_columns(&req.node_id, limit)).await?;
        Ok(Response::new(GetNodeReferencesResponse { referenced: referenced as u64 }))
    }

    async fn set_node_admin(
        &self,
        req: Request<SetNodeAdminRequest>,
    ) -> Result<Response<SetNodeAdminResponse>, Status> {
        let req = req.into_inner();
        let admin = NodeAdmin::try_from(req.admin)
            .map_err(|_| MetadataError::InvalidArgument(format!("unknown node admin state {}", req.admin)))?;
        if !self.cluster.knows(&req.node_id) {
            return Err(
                MetadataError::InvalidArgument(format!("no blobnode {:?} in the cluster map", req.node_id)).into()
            );
        }
        self.submit(Command::SetNodeAdmin { node_id: req.node_id.clone(), admin }).await?;
        self.cluster.set_admin(&req.node_id, admin);
        tracing::info!(node_id = %req.node_id, admin = ?admin, "node admin state set");
        let node = self
            .cluster
            .status(Instant::now())
            .into_iter()
            .find(|n| n.info.as_ref().is_some_and(|i| i.node_id == req.node_id));
        Ok(Response::new(SetNodeAdminResponse { node }))
    }

    async fn remove_node(&self, req: Request<RemoveNodeRequest>) -> Result<Response<RemoveNodeResponse>, Status> {
        let node_id = req.into_inner().node_id;
        if !self.cluster.knows(&node_id) {
            return Err(MetadataError::InvalidArgument(format!("no blobnode {node_id:?} in the cluster map")).into());
        }
        if self.cluster.placeable_nodes(Instant::now()).iter().any(|n| n.node_id == node_id) {
            return Err(MetadataError::InvalidArgument(format!(
                "blobnode {node_id} is alive and takes new shards; drain it first"
            ))
            .into());
        }
        let id = node_id.clone();
        let mut referenced = self.read(move |store| store.referenced_columns(&id, REFERENCE_COUNT_LIMIT)).await?;
        let mut holder = String::new();
        // Range groups hold data on the node too: each is asked (through its leader) before the
        // node is forgotten, and one that does not answer refuses the removal.
        if referenced == 0
            && let Some(range_groups) = &self.range_groups
        {
            let records = self.store.directory_records();
            let limit = REFERENCE_COUNT_LIMIT as u32;
            if let Some((group, count)) =
                range_groups.node_references(&records, &node_id, limit).await.map_err(|status| {
                    MetadataError::Unavailable(format!("blobnode {node_id} not removed: {}", status.message()))
                })?
            {
                referenced = usize::try_from(count).unwrap_or(usize::MAX);
                holder = format!(" in range group {group}");
            }
        }
        if referenced > 0 {
            return Err(MetadataError::InvalidArgument(format!(
                "blobnode {node_id} still holds shards of {referenced}{} objects or parts{holder}; drain it, or let \
                 repair move them (see `coffer admin repair status`)",
                if referenced >= REFERENCE_COUNT_LIMIT { "+" } else { "" }
            ))
            .into());
        }
        self.submit(Command::RemoveNode { node_id: node_id.clone() }).await?;
        self.cluster.remove(&node_id);
        tracing::info!(node_id = %node_id, "node removed");
        Ok(Response::new(RemoveNodeResponse {}))
    }

    async fn claim_repairs(&self, req: Request<ClaimRepairsRequest>) -> Result<Response<ClaimRepairsResponse>, Status> {
        let req = req.into_inner();
        let limit = (req.limit as usize).clamp(1, MAX_CLAIM).min(self.leases.room());
        if limit == 0 {
            return Ok(Response::new(ClaimRepairsResponse { tasks: Vec::new() }));
        }
        let mut plan = self.plan_repairs(req.grace_ms, limit).await?;
        for task in &mut plan.tasks {
            task.group = self.group;
        }
        let until = Instant::now() + leases::lease_length(req.lease_ms);
        let columns = plan.tasks.iter().filter_map(|t| t.layout.as_ref().map(|l| (l.data_id.clone(), t.index)));
        self.leases.grant(&req.worker, columns, until);
        Ok(Response::new(ClaimRepairsResponse { tasks: plan.tasks }))
    }

    async fn complete_repair(
        &self,
        req: Request<CompleteRepairRequest>,
    ) -> Result<Response<CompleteRepairResponse>, Status> {
        let req = req.into_inner();
        let source = required(req.source, "source")?;
        let target = required(req.target, "target")?;
        let data_id = req.data_id;
        let command =
            Command::CompleteRepair { data_id: data_id.clone(), index: req.index, source, target, stamp: self.stamp() };
        let result = self.submit(command).await;
        self.leases.release(&data_id, req.index);
        let applied = result?.into_repaired()?;
        if applied {
            self.leases.record(req.bytes);
        }
        Ok(Response::new(CompleteRepairResponse { applied }))
    }

    async fn get_repair_status(
        &self,
        req: Request<GetRepairStatusRequest>,
    ) -> Result<Response<GetRepairStatusResponse>, Status> {
        let everywhere = unaddressed(&req);
        let grace_ms = req.into_inner().grace_ms;
        let plan = self.plan_repairs(grace_ms, 0).await?;
        let mut status = GetRepairStatusResponse {
            degraded_columns: plan.degraded_columns,
            degraded_stripes: plan.degraded_stripes,
            blocked_columns: plan.blocked_columns,
            damaged_reports: plan.damaged_reports,
            lost_disks: plan.lost_disks,
            leased_columns: self.leases.count(Instant::now()) as u64,
            columns_repaired: self.leases.columns_repaired.load(std::sync::atomic::Ordering::Relaxed),
            bytes_repaired: self.leases.bytes_repaired.load(std::sync::atomic::Ordering::Relaxed),
        };
        // Unaddressed, group 0 answers for every group (as GetBucketUsage does for a bucket).
        if let Some(range_groups) = self.range_groups.as_ref().filter(|_| everywhere) {
            range_groups.add_repair_status(&self.store.directory_records(), grace_ms, &mut status).await?;
        }
        Ok(Response::new(status))
    }

    async fn get_cluster_map(
        &self,
        _: Request<GetClusterMapRequest>,
    ) -> Result<Response<GetClusterMapResponse>, Status> {
        Ok(Response::new(GetClusterMapResponse { nodes: self.cluster.status(Instant::now()) }))
    }

    async fn put_iam_entity(
        &self,
        req: Request<PutIamEntityRequest>,
    ) -> Result<Response<PutIamEntityResponse>, Status> {
        let req = req.into_inner();
        let entity = req.entity.ok_or_else(|| MetadataError::InvalidArgument("an IAM entity is required".into()))?;
        let command = Command::PutIam { entity, create_only: req.create_only };
        let generation = self.submit(command).await?.into_iam_generation()?;
        Ok(Response::new(PutIamEntityResponse { generation }))
    }

    async fn delete_iam_entity(
        &self,
        req: Request<DeleteIamEntityRequest>,
    ) -> Result<Response<DeleteIamEntityResponse>, Status> {
        let req = req.into_inner();
        let kind = IamKind::try_from(req.kind).unwrap_or(IamKind::Unspecified);
        let generation = self.submit(Command::DeleteIam { kind, name: req.name }).await?.into_iam_generation()?;
        Ok(Response::new(DeleteIamEntityResponse { generation }))
    }

    async fn list_iam(&self, _: Request<ListIamRequest>) -> Result<Response<ListIamResponse>, Status> {
        let (entities, generation) = self.read(iam::list).await?;
        Ok(Response::new(ListIamResponse { entities, generation }))
    }

    async fn get_iam_generation(
        &self,
        _: Request<GetIamGenerationRequest>,
    ) -> Result<Response<GetIamGenerationResponse>, Status> {
        let generation = self.read_point(iam::generation)?;
        Ok(Response::new(GetIamGenerationResponse { generation }))
    }
}

#[cfg(test)]
mod tests {
    use coffer_proto::ErrorCode;
    use coffer_proto::RemoteError;
    use coffer_proto::metadata_client::{ClientConfig, GROUP_HEADER};

    use super::*;
    use crate::range::tests::range;

    /// A range group "replica" that accepts connections and never answers: a silent group.
    async fn silent_replica() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        (url, held)
    }

    fn draining_node() -> NodeInfo {
        let disk = DiskInfo { disk_id: "d0".into(), capacity_bytes: 100, healthy: true, ..Default::default() };
        NodeInfo { node_id: "n1".into(), address: "http://n1:9200".into(), disks: vec![disk] }
    }

    /// Group 0 (a local applier) with range group 1 recorded at a silent replica, and a node that
    /// is draining, not alive, and named by none of group 0's records.
    async fn group_0_with_a_silent_range_group(
        dir: &std::path::Path,
    ) -> (MetadataService, Arc<Cluster>, crate::applier::ApplierThread) {
        let store = Arc::new(Store::open(dir).unwrap());
        // The caller stops the thread before the test ends: one still exiting when the process does runs RocksDB's
        // thread-exit hooks against its destroyed statics ("pthread lock: Invalid argument", an abort).
        let (applier, thread) = Applier::start(store.clone()).unwrap();
        let (url, _held) = silent_replica().await;
        let create = Command::CreateRangeGroup { group: 1, range: range(("x", ""), ("y", "")), voters: vec![(1, url)] };
        applier.submit(create).await.unwrap();
        let cluster = Arc::new(Cluster::new(
            Duration::from_secs(10),
            vec![draining_node()],
            vec![("n1".into(), NodeAdmin::Draining)],
        ));
        let timing = Timing { gc_grace: Duration::from_secs(60), intent_ttl: Duration::from_secs(600) };
        let client = ClientConfig {
            timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let service = MetadataService::new(store, applier, cluster.clone(), timing).with_range_client(client);
        (service, cluster, thread)
    }

    #[tokio::test]
    async fn a_silent_range_group_keeps_a_node_from_being_removed_or_called_drained() {
        let dir = tempfile::tempdir().unwrap();
        let (service, cluster, thread) = group_0_with_a_silent_range_group(dir.path()).await;
        let refused = service.remove_node(Request::new(RemoveNodeRequest { node_id: "n1".into() })).await.unwrap_err();
        let refused = RemoteError::from(refused);
        assert_eq!(refused.code, ErrorCode::Unavailable, "{refused:?}");
        assert!(refused.message.contains("range group 1 did not answer"), "{refused:?}");
        assert!(cluster.knows("n1"), "not removed");

        // Group 0's records name the node no more, but group 1 does not say so: still draining.
        // Unaddressed, the status is group 1's too, so it fails; addressed to group 0 it answers.
        let status = GetRepairStatusRequest { grace_ms: 3_600_000 };
        let failed = RemoteError::from(service.get_repair_status(Request::new(status)).await.unwrap_err());
        assert_eq!(failed.code, ErrorCode::Unavailable);
        let mut addressed = Request::new(status);
        addressed.metadata_mut().insert(GROUP_HEADER, 0.into());
        service.get_repair_status(addressed).await.expect("group 0 alone");
        assert_eq!(cluster.admin("n1"), NodeAdmin::Draining);
        let listed = service.list_damaged_shards(Request::new(ListDamagedShardsRequest { limit: 0 })).await;
        assert_eq!(RemoteError::from(listed.unwrap_err()).code, ErrorCode::Unavailable, "group 1's part is missing");

        // Without range groups to ask, group 0's own word is enough (as before).
        let lone =
            MetadataService::new(service.store.clone(), service.applier.clone(), cluster.clone(), service.timing);
        lone.get_repair_status(Request::new(status)).await.expect("status");
        assert_eq!(cluster.admin("n1"), NodeAdmin::Drained);
        drop((lone, service));
        thread.stop().await;
    }
}
