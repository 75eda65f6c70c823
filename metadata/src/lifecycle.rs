//! Bucket lifecycle rules, executed here because the metadata service owns the index they act on.
//!
//! A bucket's rules are a `LifecycleConfiguration` in `BucketRecord.configs["lifecycle"]` (the
//! gateway validates and stores them). A background [`Worker`] walks the index incrementally: each
//! tick visits at most a budget of keys (object keys, then multipart uploads, of the buckets that
//! have rules, in name order) from a cursor persisted in the `meta` column family, so a restart
//! resumes where it stopped and no tick rescans everything. What is due becomes a
//! [`Command::Lifecycle`] on the applier, like a client's request; the command checks the state
//! again when it applies, so an object rewritten between the scan and the apply is never expired.
//! A version that object lock protects (retention or legal hold) is never removed by a rule.
//!
//! Days are lifecycle days of `--lifecycle-day-seconds` (86400 unless testing); as in S3, a due
//! time is rounded up to the next day boundary (midnight UTC with real days).

use std::sync::Arc;
use std::time::Duration;

use coffer_proto::Message;
use coffer_proto::pb::metadata::{
    BucketRecord, LifecycleConfiguration, LifecycleCursor, LifecycleFilter, LifecycleRule, ObjectRecord, UploadRecord,
};
use rocksdb::WriteBatch;
use tokio::sync::oneshot;

use crate::applier::Applier;
use crate::command::{Applied, Command, Stamp};
use crate::error::MetadataError;
use crate::keys;
use crate::store::{Cf, Store, bounded, decode};
use crate::versions;

/// The configuration slot the gateway stores the rules in.
pub const CONFIG: &str = "lifecycle";
/// The cursor's key in the `meta` column family.
const CURSOR_KEY: &[u8] = b"lifecycle-cursor";
/// Work one step does at most: keys (one per version read, at least one each) and uploads.
pub const KEYS_PER_TICK: usize = 1000;
/// Versions of one key decoded per visit at most: a key with more is handled over later passes
/// as its newest versions go, and never makes one tick unbounded.
const MAX_VERSIONS_PER_KEY: usize = 1000;
const PHASE_KEYS: u32 = 0;
const PHASE_UPLOADS: u32 = 1;

/// What a rule asks for one key, checked again against the state when it applies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Action {
    /// The current version expires: deleted in an unversioned bucket, hidden by a delete marker in
    /// a versioned one. Applies only while the current version is still the one scanned.
    ExpireCurrent {
        bucket: String,
        key: String,
        version_order: u64,
        last_modified_unix_ms: i64,
    },
    /// One version goes for good: a noncurrent version (only while it is still noncurrent), or a
    /// delete marker that is the key's only version (only while it still is).
    RemoveVersion {
        bucket: String,
        key: String,
        version_order: u64,
        sole_delete_marker: bool,
    },
    AbortUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
}

impl Action {
    /// The (bucket, key) the action changes: it belongs to the group owning that key.
    pub fn target(&self) -> (&str, &str) {
        match self {
            Action::ExpireCurrent { bucket, key, .. }
            | Action::RemoveVersion { bucket, key, .. }
            | Action::AbortUpload { bucket, key, .. } => (bucket, key),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Action::ExpireCurrent { .. } => "expire",
            Action::RemoveVersion { sole_delete_marker: true, .. } => "expired_delete_marker",
            Action::RemoveVersion { .. } => "noncurrent_expire",
            Action::AbortUpload { .. } => "abort_upload",
        }
    }
}

/// The bucket's rules, when it has a readable configuration.
pub fn configuration(bucket: &BucketRecord) -> Option<LifecycleConfiguration> {
    let bytes = bucket.configs.get(CONFIG).filter(|b| !b.is_empty())?;
    match LifecycleConfiguration::decode(bytes.as_slice()) {
        Ok(config) => Some(config),
        Err(e) => {
            tracing::warn!(bucket = %bucket.name, error = %e, "unreadable lifecycle configuration ignored");
            None
        }
    }
}

/// Checks a configuration the gateway is about to store: the worker must be able to read it.
pub fn validate(value: &[u8]) -> Result<(), MetadataError> {
    if value.is_empty() {
        return Ok(());
    }
    LifecycleConfiguration::decode(value)
        .map(|_| ())
        .map_err(|e| MetadataError::InvalidArgument(format!("unreadable lifecycle configuration: {e}")))
}

/// Whether `filter` selects an object of this key, size and tags.
pub fn filter_matches(filter: Option<&LifecycleFilter>, key: &str, size: u64, tags: &[(&str, &str)]) -> bool {
    let Some(filter) = filter else { return true };
    if !key.starts_with(&filter.prefix) {
        return false;
    }
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    if filter.object_size_greater_than.is_some_and(|bound| size <= bound) {
        return false;
    }
    if filter.object_size_less_than.is_some_and(|bound| size >= bound) {
        return false;
    }
    filter.tags.iter().all(|want| tags.iter().any(|(k, v)| *k == want.key && *v == want.value))
}

fn object_matches(rule: &LifecycleRule, record: &ObjectRecord) -> bool {
    let tags: Vec<(&str, &str)> = record.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    filter_matches(rule.filter.as_ref(), &record.key, record.size, &tags)
}

/// Delete markers and uploads have neither size nor tags: only the prefix selects them.
fn prefix_matches(rule: &LifecycleRule, key: &str) -> bool {
    rule.filter.as_ref().is_none_or(|f| key.starts_with(&f.prefix))
}

/// `start + days` lifecycle days, rounded up to the next day boundary as S3 does.
pub fn due_after(start_unix_ms: i64, days: i32, day_ms: i64) -> i64 {
    let day_ms = day_ms.max(1);
    let raw = start_unix_ms.saturating_add(i64::from(days.max(0)).saturating_mul(day_ms));
    let rounded = raw.div_euclid(day_ms).saturating_add(i64::from(raw.rem_euclid(day_ms) != 0));
    rounded.saturating_mul(day_ms)
}

fn expiration_due(rule: &LifecycleRule, record: &ObjectRecord, now: i64, day_ms: i64) -> bool {
    if let Some(days) = rule.expiration_days
        && now >= due_after(record.last_modified_unix_ms, days, day_ms)
    {
        return true;
    }
    rule.expiration_date_unix_ms.is_some_and(|date| now >= date)
}

/// The actions due for one key: `current` is its record in `objects`, `versions` its versions
/// (newest first) from `versions`.
pub fn evaluate(
    rules: &[LifecycleRule],
    key: &str,
    current: Option<&ObjectRecord>,
    versions: &[ObjectRecord],
    now: i64,
    day_ms: i64,
    out: &mut Vec<Action>,
) {
    let enabled: Vec<&LifecycleRule> = rules.iter().filter(|r| r.enabled).collect();
    if let Some(current) = current
        && enabled.iter().any(|r| expiration_due(r, current, now, day_ms) && object_matches(r, current))
    {
        out.push(Action::ExpireCurrent {
            bucket: current.bucket.clone(),
            key: key.to_string(),
            version_order: current.version_order,
            last_modified_unix_ms: current.last_modified_unix_ms,
        });
    }
    let Some(newest) = versions.first() else { return };
    if current.is_none() && versions.len() == 1 && newest.delete_marker {
        if enabled.iter().any(|r| r.expired_object_delete_marker == Some(true) && prefix_matches(r, key)) {
            out.push(Action::RemoveVersion {
                bucket: newest.bucket.clone(),
                key: key.to_string(),
                version_order: newest.version_order,
                sole_delete_marker: true,
            });
        }
        return;
    }
    for (rank, pair) in versions.windows(2).enumerate() {
        let (successor, version) = (&pair[0], &pair[1]);
        // Noncurrent since its successor was made; `rank` newer noncurrent versions exist.
        let since = successor.last_modified_unix_ms;
        let due = enabled.iter().any(|r| {
            let Some(days) = r.noncurrent_days else { return false };
            let kept = r.newer_noncurrent_versions.is_some_and(|n| rank < usize::try_from(n).unwrap_or(0));
            let selected = if version.delete_marker { prefix_matches(r, key) } else { object_matches(r, version) };
            !kept && now >= due_after(since, days, day_ms) && selected
        });
        // A version object lock protects is never expired (the apply checks again).
        let due = due && crate::object_lock::check_delete(version, now, false).is_ok();
        if due {
            out.push(Action::RemoveVersion {
                bucket: version.bucket.clone(),
                key: key.to_string(),
                version_order: version.version_order,
                sole_delete_marker: false,
            });
        }
    }
}

/// The outcome of one scan step.
#[derive(Debug, Default)]
pub struct Scan {
    pub actions: Vec<Action>,
    /// Where the next step continues.
    pub cursor: LifecycleCursor,
    /// Keys and uploads visited.
    pub visited: usize,
    /// The step reached the end of the last bucket: the next one starts a new pass.
    pub wrapped: bool,
}

/// Visits at most `budget` keys and uploads from `cursor` on, returning what is due at `now`.
pub fn scan(
    store: &Store,
    cursor: &LifecycleCursor,
    now: i64,
    day_ms: i64,
    budget: usize,
) -> Result<Scan, MetadataError> {
    let buckets: Vec<(BucketRecord, LifecycleConfiguration)> = store
        .list_buckets()?
        .into_iter()
        .filter_map(|b| {
            let config = configuration(&b)?;
            config.rules.iter().any(|r| r.enabled).then_some((b, config))
        })
        .collect();
    let mut out = Scan { cursor: cursor.clone(), ..Default::default() };
    let mut index = buckets.partition_point(|(b, _)| b.name < cursor.bucket);
    loop {
        let Some((bucket, config)) = buckets.get(index) else {
            out.cursor = LifecycleCursor::default();
            out.wrapped = true;
            return Ok(out);
        };
        if out.cursor.bucket != bucket.name {
            out.cursor = LifecycleCursor { bucket: bucket.name.clone(), phase: PHASE_KEYS, after: Vec::new() };
        }
        let remaining = budget.saturating_sub(out.visited);
        if remaining == 0 {
            return Ok(out);
        }
        let (visited, stopped_at) = match out.cursor.phase {
            PHASE_KEYS if config.rules.iter().any(acts_on_objects) => {
                scan_keys(store, bucket, &config.rules, &out.cursor.after, now, day_ms, remaining, &mut out.actions)?
            }
            PHASE_UPLOADS if config.rules.iter().any(|r| r.abort_days_after_initiation.is_some()) => {
                scan_uploads(store, bucket, &config.rules, &out.cursor.after, now, day_ms, remaining, &mut out.actions)?
            }
            _ => (0, None),
        };
        out.visited += visited;
        match stopped_at {
            Some(after) => out.cursor.after = after,
            None if out.cursor.phase == PHASE_KEYS => {
                out.cursor.phase = PHASE_UPLOADS;
                out.cursor.after.clear();
            }
            None => index += 1,
        }
    }
}

fn acts_on_objects(rule: &LifecycleRule) -> bool {
    rule.enabled
        && (rule.expiration_days.is_some()
            || rule.expiration_date_unix_ms.is_some()
            || rule.expired_object_delete_marker == Some(true)
            || rule.noncurrent_days.is_some())
}

/// The first key strictly after `after` in a range of keys that never hold NUL.
fn seek_after(base: &[u8], after: &[u8], past_versions: bool) -> Vec<u8> {
    if after.is_empty() {
        return base.to_vec();
    }
    // `after 0x00 ...` are the versions (or uploads) of `after` itself; 0x01 sorts past them.
    [base, after, &[if past_versions { keys::SEP + 1 } else { keys::SEP }]].concat()
}

/// Visits object keys of `bucket` after `after` (the union of the keys in `objects` and in
/// `versions`) until `limit` units of work are spent: a key costs one per version read, at least
/// one. Returns the units spent and, when it stopped early, the last key visited.
#[allow(clippy::too_many_arguments)]
fn scan_keys(
    store: &Store,
    bucket: &BucketRecord,
    rules: &[LifecycleRule],
    after: &[u8],
    now: i64,
    day_ms: i64,
    limit: usize,
    out: &mut Vec<Action>,
) -> Result<(usize, Option<Vec<u8>>), MetadataError> {
    let base = keys::bucket_prefix(&bucket.name);
    let mut objects = store.db().raw_iterator_cf_opt(store.cf(Cf::Objects)?, bounded(&base));
    let mut versions = store.db().raw_iterator_cf_opt(store.cf(Cf::Versions)?, bounded(&base));
    objects.seek(seek_after(&base, after, false));
    versions.seek(seek_after(&base, after, true));
    let mut visited = 0;
    loop {
        let object_key = objects.key().map(|k| k[base.len()..].to_vec());
        let version_key = match versions.key() {
            Some(k) => Some(
                keys::split_version(&k[base.len()..])
                    .ok_or_else(|| MetadataError::corrupt("version key", "malformed"))?
                    .0
                    .to_vec(),
            ),
            None => None,
        };
        let key = match (&object_key, &version_key) {
            (Some(o), Some(v)) => o.min(v).clone(),
            (Some(o), None) => o.clone(),
            (None, Some(v)) => v.clone(),
            (None, None) => break,
        };
        let mut current = None;
        if object_key.as_ref() == Some(&key) {
            if let Some((k, v)) = objects.item() {
                current = Some(decode::<ObjectRecord>(Cf::Objects, k, v)?);
            }
            objects.next();
        }
        let mut found = Vec::new();
        if version_key.as_ref() == Some(&key) {
            let prefix = [base.as_slice(), &key, &[keys::SEP]].concat();
            while let Some((k, v)) = versions.item() {
                if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 {
                    break;
                }
                if found.len() == MAX_VERSIONS_PER_KEY {
                    versions.seek(seek_after(&base, &key, true));
                    break;
                }
                found.push(decode::<ObjectRecord>(Cf::Versions, k, v)?);
                versions.next();
            }
        }
        // A key costs one unit per version read (at least one), so many versions bound a step too.
        visited += found.len().max(1);
        if let Ok(name) = std::str::from_utf8(&key) {
            evaluate(rules, name, current.as_ref(), &found, now, day_ms, out);
        }
        if visited >= limit {
            objects.status().map_err(MetadataError::db("scanning objects"))?;
            versions.status().map_err(MetadataError::db("scanning versions"))?;
            return Ok((visited, Some(key)));
        }
    }
    objects.status().map_err(MetadataError::db("scanning objects"))?;
    versions.status().map_err(MetadataError::db("scanning versions"))?;
    Ok((visited, None))
}

/// Visits up to `limit` multipart uploads of `bucket` after the upload key `after`.
#[allow(clippy::too_many_arguments)]
fn scan_uploads(
    store: &Store,
    bucket: &BucketRecord,
    rules: &[LifecycleRule],
    after: &[u8],
    now: i64,
    day_ms: i64,
    limit: usize,
    out: &mut Vec<Action>,
) -> Result<(usize, Option<Vec<u8>>), MetadataError> {
    let base = keys::bucket_prefix(&bucket.name);
    let mut iter = store.db().raw_iterator_cf_opt(store.cf(Cf::Uploads)?, bounded(&base));
    iter.seek(seek_after(&base, after, false));
    let mut visited = 0;
    while let Some((k, v)) = iter.item() {
        let rest = k[base.len()..].to_vec();
        let upload: UploadRecord = decode(Cf::Uploads, k, v)?;
        let due = rules.iter().any(|r| {
            r.enabled
                && r.abort_days_after_initiation
                    .is_some_and(|days| now >= due_after(upload.initiated_unix_ms, days, day_ms))
                && prefix_matches(r, &upload.key)
        });
        if due {
            out.push(Action::AbortUpload {
                bucket: upload.bucket.clone(),
                key: upload.key.clone(),
                upload_id: upload.upload_id.clone(),
            });
        }
        visited += 1;
        iter.next();
        if visited == limit {
            iter.status().map_err(MetadataError::db("scanning uploads"))?;
            return Ok((visited, Some(rest)));
        }
    }
    iter.status().map_err(MetadataError::db("scanning uploads"))?;
    Ok((visited, None))
}

pub fn load_cursor(store: &Store) -> Result<LifecycleCursor, MetadataError> {
    Ok(store.get(Cf::Meta, CURSOR_KEY)?.unwrap_or_default())
}

pub fn set_cursor(store: &Store, batch: &mut WriteBatch, cursor: &LifecycleCursor) -> Result<Applied, MetadataError> {
    batch.put_cf(store.cf(Cf::Meta)?, CURSOR_KEY, cursor.encode_to_vec());
    Ok(Applied::Done)
}

/// The first `limit` versions of `key`, newest first.
fn newest_versions(store: &Store, bucket: &str, key: &str, limit: usize) -> Result<Vec<ObjectRecord>, MetadataError> {
    let mut out = Vec::new();
    store.scan_prefix(Cf::Versions, &keys::version_prefix(bucket, key), |k, v| {
        out.push(decode(Cf::Versions, k, v)?);
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// Applies one action if the state still calls for it (a client may have changed the key, or the
/// rules, since the scan); otherwise does nothing.
pub fn apply(store: &Store, batch: &mut WriteBatch, action: Action, stamp: &Stamp) -> Result<Applied, MetadataError> {
    let bucket_name = match &action {
        Action::ExpireCurrent { bucket, .. }
        | Action::RemoveVersion { bucket, .. }
        | Action::AbortUpload { bucket, .. } => bucket.clone(),
    };
    let Some(bucket) = store.find_bucket(&bucket_name)? else { return Ok(Applied::Done) };
    if configuration(&bucket).is_none() {
        return Ok(Applied::Done);
    }
    match action {
        Action::ExpireCurrent { bucket, key, version_order, last_modified_unix_ms } => {
            let unchanged = store.find_object(&bucket, &key)?.is_some_and(|current| {
                current.version_order == version_order && current.last_modified_unix_ms == last_modified_unix_ms
            });
            if !unchanged {
                return Ok(Applied::Done);
            }
            crate::command::delete_object(store, batch, &bucket, &key, stamp)
        }
        Action::RemoveVersion { bucket, key, version_order, sole_delete_marker } => {
            let newest = newest_versions(store, &bucket, &key, 2)?;
            let still_due = if sole_delete_marker {
                newest.len() == 1
                    && newest[0].delete_marker
                    && newest[0].version_order == version_order
                    && store.find_object(&bucket, &key)?.is_none()
            } else {
                newest.first().is_some_and(|n| n.version_order != version_order)
                    && store
                        .find_version(&bucket, &key, version_order)?
                        .is_some_and(|v| crate::object_lock::check_delete(&v, stamp.now_unix_ms, false).is_ok())
            };
            if !still_due {
                return Ok(Applied::Done);
            }
            // Never a version object lock protects; no bypass: lifecycle is not the bucket owner's override.
            versions::delete_version(store, batch, &bucket, &key, &versions::version_id(version_order), false, stamp)
        }
        Action::AbortUpload { bucket, key, upload_id } => {
            if store.get::<UploadRecord>(Cf::Uploads, &keys::upload(&bucket, &key, &upload_id))?.is_none() {
                return Ok(Applied::Done);
            }
            crate::multipart::abort_upload(store, batch, &bucket, &key, &upload_id, stamp)
        }
    }
}

/// The background task: a scan step per tick, its actions through the applier, then the cursor.
pub struct Worker {
    store: Arc<Store>,
    applier: Applier,
    day_ms: i64,
    interval: Duration,
    gc_grace: Duration,
    budget: usize,
}

impl Worker {
    pub fn new(store: Arc<Store>, applier: Applier, day_seconds: u64, interval: Duration, gc_grace: Duration) -> Self {
        let day_ms = i64::try_from(day_seconds.saturating_mul(1000)).unwrap_or(i64::MAX).max(1);
        Worker { store, applier, day_ms, interval, gc_grace, budget: KEYS_PER_TICK }
    }

    /// Ticks every interval until `stop` fires. After a full pass it waits a lifecycle hour (at
    /// least the interval) before the next, so an idle store is not rescanned back to back.
    pub async fn run(self, mut stop: oneshot::Receiver<()>) {
        let pass_pause = Duration::from_millis(u64::try_from(self.day_ms / 24).unwrap_or(0)).max(self.interval);
        loop {
            // Stopping mid-step is safe: the cursor moves only after the step, and actions re-check.
            let tick = tokio::select! {
                tick = self.tick() => tick,
                _ = &mut stop => return,
            };
            let pause = match tick {
                Ok(scan) if scan.wrapped => pass_pause,
                Ok(_) => self.interval,
                Err(e) => {
                    tracing::warn!(error = %e, "lifecycle step failed");
                    self.interval
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = &mut stop => return,
            }
        }
    }

    fn stamp(&self) -> Stamp {
        Stamp::background(self.gc_grace)
    }

    /// One step: scans from the stored cursor, applies what is due, stores the new cursor.
    pub async fn tick(&self) -> Result<Scan, MetadataError> {
        let store = self.store.clone();
        let (day_ms, budget, now) = (self.day_ms, self.budget, crate::now_unix_ms());
        let scan = tokio::task::spawn_blocking(move || scan(&store, &load_cursor(&store)?, now, day_ms, budget))
            .await
            .map_err(|e| MetadataError::Internal(format!("lifecycle scan task failed: {e}")))??;
        metrics::counter!("coffer_lifecycle_keys_scanned_total").increment(scan.visited as u64);
        // Submitted together so they share WAL syncs; at most a step's worth (bounded by the budget).
        let submitted = scan.actions.iter().map(|action| async move {
            let outcome = self.applier.submit(Command::Lifecycle { action: action.clone(), stamp: self.stamp() }).await;
            (action, outcome)
        });
        for (action, outcome) in futures::future::join_all(submitted).await {
            match outcome {
                Ok(_) => metrics::counter!("coffer_lifecycle_actions_total", "action" => action.label()).increment(1),
                // Object lock refused it, or the bucket went: the next pass looks again.
                Err(e) => tracing::info!(action = ?action, error = %e, "lifecycle action not applied"),
            }
        }
        self.applier.submit(Command::SetLifecycleCursor { cursor: scan.cursor.clone() }).await?;
        Ok(scan)
    }
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::{LifecycleFilterForm, LifecycleTag, Segment, Versioning};

    use super::*;
    use crate::command::apply as run;
    use crate::command::tests::{make_bucket, object, stamp, store};

    const DAY: i64 = 1000;

    fn tag(key: &str, value: &str) -> LifecycleTag {
        LifecycleTag { key: key.into(), value: value.into() }
    }

    fn expire_after(days: i32, filter: Option<LifecycleFilter>) -> LifecycleRule {
        LifecycleRule { id: "r".into(), enabled: true, filter, expiration_days: Some(days), ..Default::default() }
    }

    fn configure(store: &Store, bucket: &str, rules: Vec<LifecycleRule>) {
        let value = LifecycleConfiguration { rules }.encode_to_vec();
        run(store, Command::SetBucketConfig { name: bucket.into(), key: CONFIG.into(), value }).unwrap();
    }

    fn put(store: &Store, bucket: &str, key: &str, now: i64) -> ObjectRecord {
        let inline = Segment { size: 3, inline_data: b"abc".to_vec(), ..Default::default() };
        let cmd = Command::PutObject {
            record: object(bucket, key, inline),
            intents: vec![],
            condition: Default::default(),
            // Time 0 would be the largest version order, which is reserved.
            stamp: stamp(now + 1),
        };
        run(store, cmd).unwrap().into_object().unwrap()
    }

    fn apply_all(store: &Store, actions: Vec<Action>, now: i64) {
        for action in actions {
            run(store, Command::Lifecycle { action, stamp: stamp(now) }).unwrap();
        }
    }

    #[test]
    fn filters_select_by_prefix_tags_and_exclusive_size_bounds() {
        let and = LifecycleFilter {
            form: LifecycleFilterForm::And as i32,
            prefix: "logs/".into(),
            tags: vec![tag("a", "1"), tag("b", "2")],
            object_size_greater_than: Some(10),
            object_size_less_than: Some(100),
        };
        let tags = [("a", "1"), ("b", "2"), ("c", "3")];
        assert!(filter_matches(Some(&and), "logs/x", 50, &tags));
        assert!(!filter_matches(Some(&and), "other/x", 50, &tags), "prefix");
        assert!(!filter_matches(Some(&and), "logs/x", 50, &[("a", "1")]), "every tag must be there");
        assert!(!filter_matches(Some(&and), "logs/x", 50, &[("a", "1"), ("b", "3")]), "with its value");
        assert!(!filter_matches(Some(&and), "logs/x", 10, &tags), "greater-than is exclusive");
        assert!(!filter_matches(Some(&and), "logs/x", 100, &tags), "less-than is exclusive");
        assert!(filter_matches(Some(&and), "logs/x", 11, &tags));
        assert!(filter_matches(None, "anything", 0, &[]));
        assert!(filter_matches(Some(&LifecycleFilter::default()), "anything", 0, &[]));
    }

    #[test]
    fn due_times_round_up_to_the_next_day_boundary() {
        assert_eq!(due_after(0, 1, DAY), DAY);
        assert_eq!(due_after(1, 1, DAY), 2 * DAY);
        assert_eq!(due_after(2 * DAY, 3, DAY), 5 * DAY);
        // Real days: an object made at 00:30 with one day expires at the second midnight after.
        let half_past = 30 * 60 * 1000;
        assert_eq!(due_after(half_past, 1, 86_400_000), 2 * 86_400_000);
    }

    #[test]
    fn expiration_by_days_or_past_date_and_filters() {
        let record = ObjectRecord {
            bucket: "b".into(),
            key: "logs/a".into(),
            size: 5,
            last_modified_unix_ms: 0,
            ..Default::default()
        };
        let mut out = Vec::new();
        let rules = [expire_after(2, None)];
        evaluate(&rules, "logs/a", Some(&record), &[], 2 * DAY - 1, DAY, &mut out);
        assert!(out.is_empty(), "not due yet");
        evaluate(&rules, "logs/a", Some(&record), &[], 2 * DAY, DAY, &mut out);
        assert_eq!(out.len(), 1);

        let mut out = Vec::new();
        let other_prefix = LifecycleFilter { prefix: "tmp/".into(), ..Default::default() };
        let disabled = LifecycleRule { enabled: false, ..expire_after(1, None) };
        evaluate(
            &[expire_after(1, Some(other_prefix)), disabled],
            "logs/a",
            Some(&record),
            &[],
            9 * DAY,
            DAY,
            &mut out,
        );
        assert!(out.is_empty(), "another prefix, or a disabled rule, does not apply");

        let dated =
            LifecycleRule { id: "d".into(), enabled: true, expiration_date_unix_ms: Some(5), ..Default::default() };
        evaluate(&[dated], "logs/a", Some(&record), &[], 5, DAY, &mut out);
        assert_eq!(out.len(), 1, "a date in the past expires at once");
    }

    fn version(order: u64, modified: i64, marker: bool) -> ObjectRecord {
        ObjectRecord {
            bucket: "b".into(),
            key: "k".into(),
            version_order: order,
            last_modified_unix_ms: modified,
            delete_marker: marker,
            ..Default::default()
        }
    }

    #[test]
    fn noncurrent_versions_count_from_their_successor_and_newer_ones_are_kept() {
        // Newest first: made at 30, 20, 10 days; noncurrent since 30 and 20.
        let versions = [version(1, 30 * DAY, false), version(2, 20 * DAY, false), version(3, 10 * DAY, false)];
        let rule = |newer: Option<i32>| LifecycleRule {
            id: "n".into(),
            enabled: true,
            noncurrent_days: Some(5),
            newer_noncurrent_versions: newer,
            ..Default::default()
        };
        let orders = |rules: &[LifecycleRule], now: i64| {
            let mut out = Vec::new();
            evaluate(rules, "k", Some(&versions[0]), &versions, now, DAY, &mut out);
            out.into_iter()
                .map(|a| match a {
                    Action::RemoveVersion { version_order, .. } => version_order,
                    other => panic!("unexpected {other:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(orders(&[rule(None)], 25 * DAY - 1), Vec::<u64>::new());
        assert_eq!(orders(&[rule(None)], 25 * DAY), [3], "noncurrent for 5 days since the version made at 20");
        assert_eq!(orders(&[rule(None)], 35 * DAY), [2, 3]);
        assert_eq!(orders(&[rule(Some(1))], 35 * DAY), [3], "the newest noncurrent version is kept");
    }

    #[test]
    fn a_sole_delete_marker_goes_only_with_expired_object_delete_marker() {
        let marker = [version(1, 0, true)];
        let mut out = Vec::new();
        evaluate(&[expire_after(1, None)], "k", None, &marker, 9 * DAY, DAY, &mut out);
        assert!(out.is_empty());
        let rule = LifecycleRule {
            id: "m".into(),
            enabled: true,
            expired_object_delete_marker: Some(true),
            ..Default::default()
        };
        evaluate(std::slice::from_ref(&rule), "k", None, &marker, 0, DAY, &mut out);
        assert!(matches!(out.as_slice(), [Action::RemoveVersion { sole_delete_marker: true, .. }]));
        let mut out = Vec::new();
        let with_older = [version(1, 5, true), version(2, 0, false)];
        evaluate(&[rule], "k", None, &with_older, 0, DAY, &mut out);
        assert!(out.is_empty(), "a marker with older versions is not expired");
    }

    #[test]
    fn each_step_visits_a_bounded_number_of_keys_and_the_cursor_resumes() {
        let (_dir, store) = store();
        for bucket in ["a", "b", "c"] {
            make_bucket(&store, bucket);
        }
        configure(&store, "a", vec![expire_after(1, None)]);
        configure(&store, "c", vec![expire_after(1, None)]);
        for i in 0..15 {
            put(&store, "a", &format!("k{i:02}"), 0);
            put(&store, "b", &format!("k{i:02}"), 0);
        }
        put(&store, "c", "only", 0);

        let first = scan(&store, &LifecycleCursor::default(), 10 * DAY, DAY, 10).unwrap();
        assert_eq!(first.visited, 10);
        assert_eq!(first.actions.len(), 10);
        assert_eq!((first.cursor.bucket.as_str(), first.cursor.after.as_slice()), ("a", &b"k09"[..]));
        assert!(!first.wrapped);
        let second = scan(&store, &first.cursor, 10 * DAY, DAY, 10).unwrap();
        // Bucket b has no rules and is skipped; c's only key comes after a's last five.
        assert_eq!(second.visited, 6);
        let keys: Vec<String> = second
            .actions
            .iter()
            .map(|a| match a {
                Action::ExpireCurrent { bucket, key, .. } => format!("{bucket}/{key}"),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(keys, ["a/k10", "a/k11", "a/k12", "a/k13", "a/k14", "c/only"]);
        assert!(second.wrapped, "the pass ended");
        assert_eq!(second.cursor, LifecycleCursor::default());

        // Persisted through the applier, and read back.
        run(&store, Command::SetLifecycleCursor { cursor: first.cursor.clone() }).unwrap();
        assert_eq!(load_cursor(&store).unwrap(), first.cursor);
    }

    #[test]
    fn expiring_deletes_unversioned_objects_and_marks_versioned_ones() {
        let (_dir, store) = store();
        make_bucket(&store, "u");
        make_bucket(&store, "v");
        run(&store, Command::SetBucketVersioning { name: "v".into(), versioning: Versioning::Enabled }).unwrap();
        for bucket in ["u", "v"] {
            configure(&store, bucket, vec![expire_after(1, None)]);
            put(&store, bucket, "k", 0);
        }
        let due = scan(&store, &LifecycleCursor::default(), 2 * DAY, DAY, 100).unwrap();
        assert_eq!(due.actions.len(), 2);
        apply_all(&store, due.actions, 2 * DAY);
        assert!(store.find_object("u", "k").unwrap().is_none());
        assert!(store.find_object("v", "k").unwrap().is_none());
        let versions = newest_versions(&store, "v", "k", 10).unwrap();
        assert_eq!(versions.len(), 2);
        assert!(versions[0].delete_marker, "a delete marker hides the expired version");
        // Nothing more is due for the key with a marker on top (no noncurrent rule).
        assert!(scan(&store, &LifecycleCursor::default(), 9 * DAY, DAY, 100).unwrap().actions.is_empty());
    }

    #[test]
    fn stale_actions_change_nothing() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        configure(&store, "b", vec![expire_after(1, None)]);
        put(&store, "b", "k", 0);
        let due = scan(&store, &LifecycleCursor::default(), 2 * DAY, DAY, 100).unwrap();
        // Rewritten after the scan: the new object is not the one that expired.
        put(&store, "b", "k", 2 * DAY);
        apply_all(&store, due.actions.clone(), 2 * DAY);
        assert!(store.find_object("b", "k").unwrap().is_some());
        // Rules removed after the scan: nothing happens either.
        let again = scan(&store, &LifecycleCursor::default(), 9 * DAY, DAY, 100).unwrap();
        run(&store, Command::SetBucketConfig { name: "b".into(), key: CONFIG.into(), value: vec![] }).unwrap();
        apply_all(&store, again.actions, 9 * DAY);
        assert!(store.find_object("b", "k").unwrap().is_some());
    }

    #[test]
    fn noncurrent_versions_and_sole_markers_go_for_good() {
        let (_dir, store) = store();
        make_bucket(&store, "v");
        run(&store, Command::SetBucketVersioning { name: "v".into(), versioning: Versioning::Enabled }).unwrap();
        let rule = LifecycleRule {
            id: "n".into(),
            enabled: true,
            noncurrent_days: Some(1),
            expired_object_delete_marker: Some(true),
            ..Default::default()
        };
        configure(&store, "v", vec![rule]);
        put(&store, "v", "k", 0);
        put(&store, "v", "k", DAY);
        run(&store, Command::DeleteObject { bucket: "v".into(), key: "k".into(), stamp: stamp(2 * DAY) }).unwrap();
        assert_eq!(newest_versions(&store, "v", "k", 10).unwrap().len(), 3);
        let due = scan(&store, &LifecycleCursor::default(), 4 * DAY, DAY, 100).unwrap();
        assert_eq!(due.actions.len(), 2, "both noncurrent versions");
        apply_all(&store, due.actions, 4 * DAY);
        let left = newest_versions(&store, "v", "k", 10).unwrap();
        assert_eq!(left.len(), 1);
        assert!(left[0].delete_marker);
        let due = scan(&store, &LifecycleCursor::default(), 4 * DAY, DAY, 100).unwrap();
        apply_all(&store, due.actions, 4 * DAY);
        assert!(newest_versions(&store, "v", "k", 10).unwrap().is_empty(), "the sole marker went");
    }

    #[test]
    fn old_incomplete_uploads_are_aborted() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let rule = LifecycleRule {
            id: "a".into(),
            enabled: true,
            filter: Some(LifecycleFilter { prefix: "up/".into(), ..Default::default() }),
            abort_days_after_initiation: Some(1),
            ..Default::default()
        };
        configure(&store, "b", vec![rule]);
        for (key, id) in [("up/x", "u1"), ("keep/y", "u2")] {
            let template = ObjectRecord { bucket: "b".into(), key: key.into(), ..Default::default() };
            let upload = UploadRecord {
                upload_id: id.into(),
                bucket: "b".into(),
                key: key.into(),
                initiated_unix_ms: 0,
                template: Some(template),
            };
            run(&store, Command::CreateUpload { upload }).unwrap();
        }
        assert!(scan(&store, &LifecycleCursor::default(), DAY - 1, DAY, 100).unwrap().actions.is_empty());
        let due = scan(&store, &LifecycleCursor::default(), DAY, DAY, 100).unwrap();
        assert_eq!(due.visited, 2);
        apply_all(&store, due.actions, DAY);
        let left: Vec<String> = store.all_uploads("b").unwrap().into_iter().map(|(_, u)| u.upload_id).collect();
        assert_eq!(left, ["u2"]);
    }
}
