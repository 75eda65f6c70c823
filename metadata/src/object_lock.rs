//! Object lock (WORM): retention and legal holds of versions, enforced inside the apply.
//!
//! A bucket gets object lock at creation ([`enable`]), which also enables versioning; neither can
//! be undone ([`check_versioning`], [`check_config_change`]). Its state and default retention are
//! an [`ObjectLockBucketConfig`] in `BucketRecord.configs["object-lock"]`. Each version carries its
//! own retention (`lock_mode`, `lock_retain_until_unix_ms`) and legal hold.
//!
//! The rule every path that removes a version for good goes through ([`check_delete`]): a version
//! whose retention runs (or whose legal hold is ON) is not deleted, whoever asks — root, the
//! lifecycle worker, a Suspended overwrite. Only a GOVERNANCE retention gives way, and only to a
//! request whose gateway checked `s3:BypassGovernanceRetention`. Because the check runs in the
//! same apply as the delete, no concurrent retention change can slip between check and delete.

use coffer_proto::Message;
use coffer_proto::pb::metadata::{BucketRecord, ObjectLockBucketConfig, ObjectRecord, Versioning};
use rocksdb::WriteBatch;

use crate::command::{Applied, Stamp};
use crate::error::MetadataError;
use crate::store::Store;

/// The slot of `BucketRecord.configs` (the gateway's `names::OBJECT_LOCK`).
pub const CONFIG: &str = "object-lock";
pub const GOVERNANCE: &str = "GOVERNANCE";
pub const COMPLIANCE: &str = "COMPLIANCE";
pub const ON: &str = "ON";
pub const OFF: &str = "OFF";

const DAY_MS: i64 = 86_400_000;
/// AWS counts a default-retention year as 365 days.
const YEAR_MS: i64 = 365 * DAY_MS;

/// AWS's message for a refused delete or retention change of a protected version.
pub const PROTECTED: &str = "Access Denied because object protected by object lock.";
/// AWS's message for lock parameters on a bucket without object lock.
pub const MISSING_CONFIG: &str = "Bucket is missing Object Lock Configuration";

fn protected() -> MetadataError {
    MetadataError::AccessDenied(PROTECTED.into())
}

/// The bucket's object lock configuration, when object lock is enabled on it.
pub fn config(bucket: &BucketRecord) -> Result<Option<ObjectLockBucketConfig>, MetadataError> {
    let Some(raw) = bucket.configs.get(CONFIG).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let config = ObjectLockBucketConfig::decode(raw.as_slice())
        .map_err(|e| MetadataError::corrupt(format!("object lock configuration of bucket {}", bucket.name), e))?;
    Ok(config.enabled.then_some(config))
}

/// A new bucket with object lock: versioning Enabled, lock enabled, no default retention.
pub fn enable(bucket: &mut BucketRecord) {
    bucket.set_versioning(Versioning::Enabled);
    let config = ObjectLockBucketConfig { enabled: true, ..Default::default() };
    bucket.configs.insert(CONFIG.to_string(), config.encode_to_vec());
}

/// A lock bucket stays versioning-Enabled: Suspended would let writes replace the null version.
pub fn check_versioning(bucket: &BucketRecord, versioning: Versioning) -> Result<(), MetadataError> {
    if versioning != Versioning::Enabled && config(bucket)?.is_some() {
        return Err(MetadataError::InvalidBucketState(
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.".into(),
        ));
    }
    Ok(())
}

/// SetBucketConfig of the object lock slot: only a valid configuration of a bucket that already
/// has object lock (the default retention may change; object lock cannot be turned off or on).
pub fn check_config_change(bucket: &BucketRecord, key: &str, value: &[u8]) -> Result<(), MetadataError> {
    if key != CONFIG {
        return Ok(());
    }
    let enabled = config(bucket)?.is_some();
    if value.is_empty() {
        return if enabled {
            Err(MetadataError::InvalidBucketState("object lock cannot be removed from a bucket".into()))
        } else {
            Ok(())
        };
    }
    let new = ObjectLockBucketConfig::decode(value)
        .map_err(|e| MetadataError::InvalidArgument(format!("invalid object lock configuration: {e}")))?;
    if !enabled || !new.enabled {
        return Err(MetadataError::InvalidBucketState(
            "Object Lock configuration cannot be enabled on existing buckets".into(),
        ));
    }
    let period_ok = match new.default_mode.as_str() {
        "" => new.default_days == 0 && new.default_years == 0,
        GOVERNANCE | COMPLIANCE => (new.default_days > 0) != (new.default_years > 0),
        _ => false,
    };
    if !period_ok {
        return Err(MetadataError::InvalidArgument("invalid default retention".into()));
    }
    Ok(())
}

fn validate(record: &ObjectRecord) -> Result<(), MetadataError> {
    let mode_ok = match record.lock_mode.as_str() {
        "" => record.lock_retain_until_unix_ms == 0,
        GOVERNANCE | COMPLIANCE => record.lock_retain_until_unix_ms > 0,
        _ => false,
    };
    if !mode_ok {
        return Err(MetadataError::InvalidArgument("invalid object lock retention".into()));
    }
    if !["", ON, OFF].contains(&record.legal_hold.as_str()) {
        return Err(MetadataError::InvalidArgument("invalid object lock legal hold".into()));
    }
    Ok(())
}

/// Every new version (PutObject, CopyObject, CompleteMultipartUpload) passes here before it is
/// stored: lock fields only in lock buckets, and the bucket's default retention for a version
/// that names none, counted from the commit's time.
pub fn on_write(bucket: &BucketRecord, record: &mut ObjectRecord, stamp: &Stamp) -> Result<(), MetadataError> {
    validate(record)?;
    let Some(config) = config(bucket)? else {
        if !record.lock_mode.is_empty() || !record.legal_hold.is_empty() {
            return Err(MetadataError::InvalidArgument(MISSING_CONFIG.into()));
        }
        return Ok(());
    };
    if record.lock_mode.is_empty() && !config.default_mode.is_empty() {
        let period = i64::from(config.default_days) * DAY_MS + i64::from(config.default_years) * YEAR_MS;
        record.lock_mode.clone_from(&config.default_mode);
        record.lock_retain_until_unix_ms = stamp.now_unix_ms.saturating_add(period);
    }
    Ok(())
}

/// Whether the version's retention runs at `now`.
pub fn retained(record: &ObjectRecord, now_unix_ms: i64) -> bool {
    !record.lock_mode.is_empty() && record.lock_retain_until_unix_ms > now_unix_ms
}

/// The one check before a version is removed for good (by version id, DeleteObjects, lifecycle,
/// a replacing write): AccessDenied while it is protected, root included.
pub fn check_delete(record: &ObjectRecord, now_unix_ms: i64, bypass_governance: bool) -> Result<(), MetadataError> {
    if record.legal_hold == ON {
        return Err(protected());
    }
    if retained(record, now_unix_ms) && !(record.lock_mode == GOVERNANCE && bypass_governance) {
        return Err(protected());
    }
    Ok(())
}

/// A change of retention or legal hold, as the update command carries it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct LockUpdate {
    /// `Some((mode, until))`: the new retention (empty mode: none).
    pub retention: Option<(String, i64)>,
    /// `Some("ON" | "OFF")`: the new legal hold.
    pub legal_hold: Option<String>,
    pub bypass_governance: bool,
}

/// Whether replacing `current`'s retention with (`mode`, `until`) is allowed at `now`: a running
/// COMPLIANCE retention may only be extended; a running GOVERNANCE one may also become
/// COMPLIANCE, and may be shortened or removed only with the bypass.
fn check_retention_change(
    current: &ObjectRecord,
    mode: &str,
    until: i64,
    now_unix_ms: i64,
    bypass_governance: bool,
) -> Result<(), MetadataError> {
    if !retained(current, now_unix_ms) {
        return Ok(());
    }
    let weaker = mode.is_empty()
        || until < current.lock_retain_until_unix_ms
        || (current.lock_mode == COMPLIANCE && mode != COMPLIANCE);
    if !weaker || (current.lock_mode == GOVERNANCE && bypass_governance) {
        return Ok(());
    }
    Err(protected())
}

/// Sets the retention and/or legal hold of one version (`version_id` empty: the current one),
/// in both of its copies like `versions::set_tags`.
pub fn update(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    key: &str,
    version_id: &str,
    update: &LockUpdate,
    stamp: &Stamp,
) -> Result<Applied, MetadataError> {
    let bucket_record = store.bucket(bucket)?;
    if config(&bucket_record)?.is_none() {
        return Err(MetadataError::InvalidArgument(MISSING_CONFIG.into()));
    }
    let mut record = crate::versions::get(store, bucket, key, version_id)?;
    if record.delete_marker {
        return Err(MetadataError::InvalidArgument("a delete marker has no object lock".into()));
    }
    if let Some((mode, until)) = &update.retention {
        check_retention_change(&record, mode, *until, stamp.now_unix_ms, update.bypass_governance)?;
        record.lock_mode.clone_from(mode);
        record.lock_retain_until_unix_ms = if mode.is_empty() { 0 } else { *until };
    }
    if let Some(hold) = &update.legal_hold {
        record.legal_hold.clone_from(hold);
    }
    validate(&record)?;
    crate::versions::rewrite(store, batch, &record)?;
    Ok(Applied::Object(record))
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::Segment;

    use super::*;
    use crate::command::tests::{allocate, gc_entries, object, stamp, store};
    use crate::command::{Command, apply};

    const DAY: i64 = DAY_MS;

    fn lock_bucket(store: &Store, name: &str) {
        let mut bucket = BucketRecord { name: name.into(), ..Default::default() };
        enable(&mut bucket);
        apply(store, Command::CreateBucket { bucket }).unwrap();
    }

    fn put(
        store: &Store,
        key: &str,
        data: &str,
        now: i64,
        lock: (&str, i64, &str),
    ) -> Result<ObjectRecord, MetadataError> {
        let (segment, intent): (Segment, Vec<u8>) = allocate(store, data.as_bytes(), 10, now + 10_000_000);
        let mut record = object("b", key, segment);
        record.lock_mode = lock.0.into();
        record.lock_retain_until_unix_ms = lock.1;
        record.legal_hold = lock.2.into();
        let command =
            Command::PutObject { record, intents: vec![intent], condition: Default::default(), stamp: stamp(now) };
        apply(store, command)?.into_object()
    }

    fn delete(store: &Store, version: &str, now: i64, bypass: bool) -> Result<(bool, String, bool), MetadataError> {
        let command = Command::DeleteVersion {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version.into(),
            bypass_governance: bypass,
            stamp: stamp(now),
        };
        apply(store, command)?.into_deleted()
    }

    fn set_retention(
        store: &Store,
        version: &str,
        mode: &str,
        until: i64,
        now: i64,
        bypass: bool,
    ) -> Result<ObjectRecord, MetadataError> {
        let update = LockUpdate { retention: Some((mode.into(), until)), legal_hold: None, bypass_governance: bypass };
        let command = Command::UpdateObjectLock {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version.into(),
            update,
            stamp: stamp(now),
        };
        apply(store, command)?.into_object()
    }

    fn set_hold(store: &Store, version: &str, hold: &str) -> Result<ObjectRecord, MetadataError> {
        let update = LockUpdate { retention: None, legal_hold: Some(hold.into()), bypass_governance: false };
        let command = Command::UpdateObjectLock {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version.into(),
            update,
            stamp: stamp(1),
        };
        apply(store, command)?.into_object()
    }

    fn denied<T: std::fmt::Debug>(result: Result<T, MetadataError>) -> bool {
        matches!(result, Err(MetadataError::AccessDenied(_)))
    }

    #[test]
    fn a_lock_bucket_stays_versioned_and_locked() {
        let (_dir, store) = store();
        lock_bucket(&store, "b");
        let bucket = store.bucket("b").unwrap();
        assert_eq!(bucket.versioning(), Versioning::Enabled);
        let suspend = Command::SetBucketVersioning { name: "b".into(), versioning: Versioning::Suspended };
        assert!(matches!(apply(&store, suspend), Err(MetadataError::InvalidBucketState(_))));
        let set =
            |value: Vec<u8>| apply(&store, Command::SetBucketConfig { name: "b".into(), key: CONFIG.into(), value });
        assert!(matches!(set(vec![]), Err(MetadataError::InvalidBucketState(_))));
        assert!(matches!(
            set(ObjectLockBucketConfig::default().encode_to_vec()),
            Err(MetadataError::InvalidBucketState(_))
        ));
        let bad = ObjectLockBucketConfig { enabled: true, default_mode: GOVERNANCE.into(), ..Default::default() };
        assert!(matches!(set(bad.encode_to_vec()), Err(MetadataError::InvalidArgument(_))));
        let good = ObjectLockBucketConfig {
            enabled: true,
            default_mode: COMPLIANCE.into(),
            default_days: 2,
            default_years: 0,
        };
        set(good.encode_to_vec()).unwrap();
        // A bucket without object lock cannot get it later, nor take lock fields on its objects.
        crate::command::tests::make_bucket(&store, "plain");
        let enable_later = Command::SetBucketConfig {
            name: "plain".into(),
            key: CONFIG.into(),
            value: ObjectLockBucketConfig { enabled: true, ..Default::default() }.encode_to_vec(),
        };
        assert!(matches!(apply(&store, enable_later), Err(MetadataError::InvalidBucketState(_))));
        let mut record = object("plain", "k", Segment { size: 1, inline_data: b"x".to_vec(), ..Default::default() });
        record.legal_hold = ON.into();
        let command = Command::PutObject { record, intents: vec![], condition: Default::default(), stamp: stamp(1) };
        assert!(matches!(apply(&store, command), Err(MetadataError::InvalidArgument(_))));
    }

    #[test]
    fn default_retention_is_applied_at_write_time_unless_the_request_names_one() {
        let (_dir, store) = store();
        lock_bucket(&store, "b");
        let config = ObjectLockBucketConfig {
            enabled: true,
            default_mode: GOVERNANCE.into(),
            default_days: 3,
            default_years: 0,
        };
        apply(&store, Command::SetBucketConfig { name: "b".into(), key: CONFIG.into(), value: config.encode_to_vec() })
            .unwrap();
        let v1 = put(&store, "k", "d1", 1_000, ("", 0, "")).unwrap();
        assert_eq!((v1.lock_mode.as_str(), v1.lock_retain_until_unix_ms), (GOVERNANCE, 1_000 + 3 * DAY));
        let v2 = put(&store, "k", "d2", 2_000, (COMPLIANCE, 5_000, "")).unwrap();
        assert_eq!((v2.lock_mode.as_str(), v2.lock_retain_until_unix_ms), (COMPLIANCE, 5_000));
        // The current copy in `objects` carries it too.
        assert_eq!(store.object("b", "k").unwrap().lock_mode, COMPLIANCE);
    }

    #[test]
    fn compliance_blocks_every_delete_and_can_only_be_extended() {
        let (_dir, store) = store();
        lock_bucket(&store, "b");
        let v = put(&store, "k", "d1", 100, (COMPLIANCE, 10 * DAY, "")).unwrap();
        assert!(denied(delete(&store, &v.version_id, 200, false)));
        assert!(denied(delete(&store, &v.version_id, 200, true)), "no bypass for COMPLIANCE");
        assert!(denied(set_retention(&store, &v.version_id, COMPLIANCE, 5 * DAY, 200, true)));
        assert!(denied(set_retention(&store, &v.version_id, GOVERNANCE, 20 * DAY, 200, true)));
        assert!(denied(set_retention(&store, &v.version_id, "", 0, 200, true)));
        set_retention(&store, &v.version_id, COMPLIANCE, 20 * DAY, 200, false).unwrap();
        assert_eq!(crate::versions::get(&store, "b", "k", &v.version_id).unwrap().lock_retain_until_unix_ms, 20 * DAY);
        // A delete without version id only adds a delete marker: allowed.
        let (_, _, marker) =
            apply(&store, Command::DeleteObject { bucket: "b".into(), key: "k".into(), stamp: stamp(300) })
                .unwrap()
                .into_deleted()
                .unwrap();
        assert!(marker);
        assert!(gc_entries(&store).is_empty(), "nothing was collected");
    }

    #[test]
    fn governance_gives_way_only_to_the_bypass() {
        let (_dir, store) = store();
        lock_bucket(&store, "b");
        let v = put(&store, "k", "d1", 100, (GOVERNANCE, 10 * DAY, "")).unwrap();
        assert!(denied(delete(&store, &v.version_id, 200, false)));
        assert!(denied(set_retention(&store, &v.version_id, GOVERNANCE, 5 * DAY, 200, false)));
        assert!(denied(set_retention(&store, &v.version_id, "", 0, 200, false)));
        // Extending, or hardening into COMPLIANCE, needs no bypass.
        set_retention(&store, &v.version_id, GOVERNANCE, 11 * DAY, 200, false).unwrap();
        set_retention(&store, &v.version_id, GOVERNANCE, 5 * DAY, 200, true).unwrap();
        assert_eq!(delete(&store, &v.version_id, 300, true).unwrap(), (true, v.version_id.clone(), false));
        assert_eq!(gc_entries(&store).len(), 1);
    }

    #[test]
    fn a_legal_hold_blocks_deletes_until_it_is_released() {
        let (_dir, store) = store();
        lock_bucket(&store, "b");
        let v = put(&store, "k", "d1", 100, ("", 0, ON)).unwrap();
        assert!(denied(delete(&store, &v.version_id, 200, true)), "the bypass does not lift a legal hold");
        set_hold(&store, &v.version_id, OFF).unwrap();
        assert_eq!(crate::versions::get(&store, "b", "k", &v.version_id).unwrap().legal_hold, OFF);
        set_hold(&store, "", ON).unwrap();
        assert!(denied(delete(&store, &v.version_id, 200, false)));
        set_hold(&store, "", OFF).unwrap();
        assert!(delete(&store, &v.version_id, 300, false).unwrap().0);
    }

    #[test]
    fn an_expired_retention_allows_the_delete() {
        let (_dir, store) = store();
        lock_bucket(&store, "b");
        let v = put(&store, "k", "d1", 100, (COMPLIANCE, 1_000, "")).unwrap();
        assert!(denied(delete(&store, &v.version_id, 999, false)));
        // Once expired, even a COMPLIANCE retention may be removed or shortened.
        set_retention(&store, &v.version_id, "", 0, 1_000, false).unwrap();
        assert!(delete(&store, &v.version_id, 1_001, false).unwrap().0);
        let v2 = put(&store, "k", "d2", 2_000, (GOVERNANCE, 3_000, "")).unwrap();
        assert!(delete(&store, &v2.version_id, 3_000, false).unwrap().0);
    }
}
