//! Object lock (WORM): Put/GetObjectLockConfiguration, Put/GetObjectRetention,
//! Put/GetObjectLegalHold, and the lock headers of writes and reads.
//!
//! The rules themselves (no delete of a protected version, COMPLIANCE never shortened, GOVERNANCE
//! only with the bypass) are enforced by the metadata service inside its apply
//! (`metadata/src/object_lock.rs`), so no gateway can get around them. This file validates
//! requests as S3 does, gives the bypass flag only to signers allowed
//! `s3:BypassGovernanceRetention`, and shapes the answers.

use coffer_proto::Message;
use coffer_proto::pb::metadata::{ObjectLockBucketConfig, ObjectLockUpdateRequest, ObjectRecord};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::bucket_config::names;
use super::convert::{invalid_argument, now_unix_ms, remote};

const GOVERNANCE: &str = "GOVERNANCE";
const COMPLIANCE: &str = "COMPLIANCE";
const ON: &str = "ON";
const OFF: &str = "OFF";
/// AWS's ceilings on a default retention period.
const MAX_DAYS: i32 = 36_500;
const MAX_YEARS: i32 = 100;

fn malformed() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

fn missing_config() -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, "Bucket is missing Object Lock Configuration")
}

fn past_date() -> S3Error {
    invalid_argument("The retain until date must be in the future!")
}

fn no_object_config() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchObjectLockConfiguration,
        "The specified object does not have a ObjectLock configuration",
    )
}

fn unix_ms(ts: &Timestamp) -> i64 {
    let nanos = time::OffsetDateTime::from(ts.clone()).unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

fn date(unix_ms: i64) -> Timestamp {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .into()
}

fn valid_mode(mode: &str) -> bool {
    mode == GOVERNANCE || mode == COMPLIANCE
}

/// The lock a write asks for with `x-amz-object-lock-*` headers (all empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LockHeaders {
    mode: String,
    retain_until_unix_ms: i64,
    legal_hold: String,
}

impl LockHeaders {
    /// Validates the headers as S3 does: mode and date together, a known mode, a future date,
    /// legal hold ON or OFF.
    pub(super) fn parse(
        mode: Option<&ObjectLockMode>,
        until: Option<&ObjectLockRetainUntilDate>,
        legal_hold: Option<&ObjectLockLegalHoldStatus>,
    ) -> S3Result<LockHeaders> {
        let mut lock = LockHeaders::default();
        match (mode, until) {
            (None, None) => {}
            (Some(mode), Some(until)) => {
                if !valid_mode(mode.as_str()) {
                    return Err(invalid_argument("Unknown wormMode directive."));
                }
                lock.mode = mode.as_str().to_string();
                lock.retain_until_unix_ms = unix_ms(until);
                if lock.retain_until_unix_ms <= now_unix_ms() {
                    return Err(past_date());
                }
            }
            _ => {
                return Err(invalid_argument(
                    "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
                ));
            }
        }
        if let Some(hold) = legal_hold {
            if ![ON, OFF].contains(&hold.as_str()) {
                return Err(invalid_argument("Legal Hold must be either of 'ON' or 'OFF'"));
            }
            lock.legal_hold = hold.as_str().to_string();
        }
        Ok(lock)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.mode.is_empty() && self.legal_hold.is_empty()
    }

    /// Sets the record's lock to exactly what the request asked for (a copy does not inherit
    /// its source's lock; the bucket's default retention is applied by the metadata service).
    pub(super) fn apply(&self, record: &mut ObjectRecord) {
        record.lock_mode.clone_from(&self.mode);
        record.lock_retain_until_unix_ms = self.retain_until_unix_ms;
        record.legal_hold.clone_from(&self.legal_hold);
    }
}

/// The lock headers of a GET or HEAD answer: (mode, retain-until date, legal hold).
pub(super) fn response_headers(
    record: &ObjectRecord,
) -> (Option<ObjectLockMode>, Option<ObjectLockRetainUntilDate>, Option<ObjectLockLegalHoldStatus>) {
    let retained = !record.lock_mode.is_empty();
    (
        retained.then(|| ObjectLockMode::from(record.lock_mode.clone())),
        retained.then(|| date(record.lock_retain_until_unix_ms)),
        (!record.legal_hold.is_empty()).then(|| ObjectLockLegalHoldStatus::from(record.legal_hold.clone())),
    )
}

/// AWS accepts lock parameters on PutObject only with an integrity check of the body.
pub(super) fn require_integrity(lock: &LockHeaders, content_md5: Option<&str>, has_checksum: bool) -> S3Result<()> {
    if lock.is_empty() || content_md5.is_some() || has_checksum {
        return Ok(());
    }
    Err(S3Error::with_message(
        S3ErrorCode::InvalidRequest,
        "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters",
    ))
}

impl CofferS3 {
    /// The bucket's object lock configuration, when object lock is enabled on it. Read fresh:
    /// a bucket created a moment ago through another gateway must not look unlocked.
    async fn lock_config(&self, bucket: &str) -> S3Result<Option<ObjectLockBucketConfig>> {
        let Some(raw) = self.bucket_config(bucket, names::OBJECT_LOCK).await? else {
            return Ok(None);
        };
        let config = ObjectLockBucketConfig::decode(raw.as_slice())
            .map_err(|e| S3Error::with_message(S3ErrorCode::InternalError, format!("stored object lock: {e}")))?;
        Ok(config.enabled.then_some(config))
    }

    /// The lock of a write (PutObject, CopyObject, CreateMultipartUpload): validated, and refused
    /// on a bucket without object lock.
    pub(super) async fn lock_of_write(
        &self,
        bucket: &str,
        mode: Option<&ObjectLockMode>,
        until: Option<&ObjectLockRetainUntilDate>,
        legal_hold: Option<&ObjectLockLegalHoldStatus>,
    ) -> S3Result<LockHeaders> {
        let lock = LockHeaders::parse(mode, until, legal_hold)?;
        if !lock.is_empty() && self.lock_config(bucket).await?.is_none() {
            return Err(missing_config());
        }
        Ok(lock)
    }

    /// Whether a request that sent `x-amz-bypass-governance-retention: true` may bypass: its
    /// signer needs `s3:BypassGovernanceRetention` on every key it names. Without the permission
    /// the request goes on without the bypass, as in S3 (a protected version then stays).
    pub(crate) async fn may_bypass_governance<T>(
        &self,
        req: &s3s::S3Request<T>,
        requested: Option<bool>,
        bucket: &str,
        keys: &[&str],
    ) -> S3Result<bool> {
        if requested != Some(true) {
            return Ok(false);
        }
        // Anonymous requests have no signer and can never bypass.
        let Ok(signer) = self.authorizer.signer_of(req) else {
            return Ok(false);
        };
        for key in keys {
            if !self.authorizer.may(&signer, "s3:BypassGovernanceRetention", bucket, key).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A write that sets a retention or a legal hold also needs s3:PutObjectRetention or
    /// s3:PutObjectLegalHold, as in S3 (the write's own permission was checked by `authz`).
    pub(crate) async fn require_lock_permissions<T>(
        &self,
        req: &s3s::S3Request<T>,
        bucket: &str,
        key: &str,
        retention: bool,
        legal_hold: bool,
    ) -> S3Result<()> {
        if !retention && !legal_hold {
            return Ok(());
        }
        let signer = self.authorizer.signer_of(req)?;
        for (needed, action) in [(retention, "s3:PutObjectRetention"), (legal_hold, "s3:PutObjectLegalHold")] {
            if needed && !self.authorizer.may(&signer, action, bucket, key).await? {
                return Err(S3Error::with_message(S3ErrorCode::AccessDenied, "Access Denied"));
            }
        }
        Ok(())
    }

    pub(super) async fn do_put_object_lock_configuration(
        &self,
        input: PutObjectLockConfigurationInput,
    ) -> S3Result<PutObjectLockConfigurationOutput> {
        let config = input.object_lock_configuration.ok_or_else(malformed)?;
        if config.object_lock_enabled.as_ref().map(ObjectLockEnabled::as_str) != Some(ObjectLockEnabled::ENABLED) {
            return Err(malformed());
        }
        let mut stored = ObjectLockBucketConfig { enabled: true, ..Default::default() };
        if let Some(rule) = config.rule {
            let retention = rule.default_retention.ok_or_else(malformed)?;
            let mode = retention.mode.as_ref().map(|m| m.as_str().to_string()).ok_or_else(malformed)?;
            if !valid_mode(&mode) {
                return Err(malformed());
            }
            let (days, years) = match (retention.days, retention.years) {
                (Some(_), Some(_)) | (None, None) => return Err(malformed()),
                (Some(days), None) => (days, 0),
                (None, Some(years)) => (0, years),
            };
            if days < 0 || years < 0 || (days == 0 && years == 0) {
                return Err(invalid_argument("Default retention period must be a positive integer value"));
            }
            if days > MAX_DAYS || years > MAX_YEARS {
                return Err(invalid_argument("Default retention period is too large."));
            }
            stored.default_mode = mode;
            stored.default_days = days as u32;
            stored.default_years = years as u32;
        }
        if self.lock_config(&input.bucket).await?.is_none() {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidBucketState,
                "Object Lock configuration cannot be enabled on existing buckets",
            ));
        }
        self.set_bucket_config(&input.bucket, names::OBJECT_LOCK, Some(stored.encode_to_vec())).await?;
        Ok(PutObjectLockConfigurationOutput::default())
    }

    pub(super) async fn do_get_object_lock_configuration(
        &self,
        input: GetObjectLockConfigurationInput,
    ) -> S3Result<GetObjectLockConfigurationOutput> {
        let config = self.lock_config(&input.bucket).await?.ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::ObjectLockConfigurationNotFoundError,
                "Object Lock configuration does not exist for this bucket",
            )
        })?;
        let rule = (!config.default_mode.is_empty()).then(|| ObjectLockRule {
            default_retention: Some(DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from(config.default_mode.clone())),
                days: (config.default_days > 0).then_some(config.default_days as i32),
                years: (config.default_years > 0).then_some(config.default_years as i32),
            }),
        });
        Ok(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(ObjectLockConfiguration {
                object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
                rule,
            }),
        })
    }

    /// The version a retention or legal-hold request names, in a bucket with object lock.
    async fn locked_version(&self, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<ObjectRecord> {
        if self.lock_config(bucket).await?.is_none() {
            return Err(missing_config());
        }
        self.get_version(bucket, key, version_id).await
    }

    async fn update_lock(&self, request: ObjectLockUpdateRequest) -> S3Result<()> {
        remote(self.plane.metadata.rpc().update_object_lock(request).await)?;
        Ok(())
    }

    /// `bypass` is already the decision (see `may_bypass_governance`), not the header.
    pub(super) async fn do_put_object_retention(
        &self,
        input: PutObjectRetentionInput,
        bypass: bool,
    ) -> S3Result<PutObjectRetentionOutput> {
        let retention = input.retention.unwrap_or_default();
        let (mode, until) = match (retention.mode, retention.retain_until_date) {
            // An empty retention removes it (allowed only where the rules allow shortening).
            (None, None) => (String::new(), 0),
            (Some(mode), Some(until)) => {
                if !valid_mode(mode.as_str()) {
                    return Err(malformed());
                }
                let until = unix_ms(&until);
                if until <= now_unix_ms() {
                    return Err(past_date());
                }
                (mode.as_str().to_string(), until)
            }
            _ => return Err(malformed()),
        };
        let record = self.locked_version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        self.update_lock(ObjectLockUpdateRequest {
            bucket: input.bucket,
            key: input.key,
            version_id: record.version_id,
            set_retention: true,
            mode,
            retain_until_unix_ms: until,
            bypass_governance: bypass,
            ..Default::default()
        })
        .await?;
        Ok(PutObjectRetentionOutput::default())
    }

    pub(super) async fn do_get_object_retention(
        &self,
        input: GetObjectRetentionInput,
    ) -> S3Result<GetObjectRetentionOutput> {
        let record = self.locked_version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        if record.lock_mode.is_empty() {
            return Err(no_object_config());
        }
        Ok(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from(record.lock_mode.clone())),
                retain_until_date: Some(date(record.lock_retain_until_unix_ms)),
            }),
        })
    }

    pub(super) async fn do_put_object_legal_hold(
        &self,
        input: PutObjectLegalHoldInput,
    ) -> S3Result<PutObjectLegalHoldOutput> {
        let status = input.legal_hold.and_then(|h| h.status).ok_or_else(malformed)?;
        if ![ON, OFF].contains(&status.as_str()) {
            return Err(malformed());
        }
        let record = self.locked_version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        self.update_lock(ObjectLockUpdateRequest {
            bucket: input.bucket,
            key: input.key,
            version_id: record.version_id,
            set_legal_hold: true,
            legal_hold: status.as_str().to_string(),
            ..Default::default()
        })
        .await?;
        Ok(PutObjectLegalHoldOutput::default())
    }

    pub(super) async fn do_get_object_legal_hold(
        &self,
        input: GetObjectLegalHoldInput,
    ) -> S3Result<GetObjectLegalHoldOutput> {
        let record = self.locked_version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        if record.legal_hold.is_empty() {
            return Err(no_object_config());
        }
        Ok(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold {
                status: Some(ObjectLockLegalHoldStatus::from(record.legal_hold.clone())),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_headers_are_validated_as_s3_does() {
        let future = date(now_unix_ms() + 60_000);
        let past = date(now_unix_ms() - 60_000);
        let governance = ObjectLockMode::from_static(ObjectLockMode::GOVERNANCE);
        let on = ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON);
        assert!(LockHeaders::parse(None, None, None).unwrap().is_empty());
        let lock = LockHeaders::parse(Some(&governance), Some(&future), Some(&on)).unwrap();
        assert_eq!((lock.mode.as_str(), lock.legal_hold.as_str()), (GOVERNANCE, ON));
        let code = |r: S3Result<LockHeaders>| r.unwrap_err().code().as_str().to_string();
        assert_eq!(code(LockHeaders::parse(Some(&governance), None, None)), "InvalidArgument");
        assert_eq!(code(LockHeaders::parse(Some(&governance), Some(&past), None)), "InvalidArgument");
        let bogus = ObjectLockMode::from("FOREVER".to_string());
        assert_eq!(code(LockHeaders::parse(Some(&bogus), Some(&future), None)), "InvalidArgument");
        let maybe = ObjectLockLegalHoldStatus::from("MAYBE".to_string());
        assert_eq!(code(LockHeaders::parse(None, None, Some(&maybe))), "InvalidArgument");
        // Lock parameters need Content-MD5 or a checksum.
        assert!(require_integrity(&lock, None, false).is_err());
        assert!(require_integrity(&lock, Some("x"), false).is_ok() && require_integrity(&lock, None, true).is_ok());
        assert!(require_integrity(&LockHeaders::default(), None, false).is_ok());
    }

    #[test]
    fn retain_until_dates_keep_their_milliseconds() {
        let ms = 1_800_000_000_123;
        assert_eq!(unix_ms(&date(ms)), ms);
        let record = ObjectRecord { lock_mode: COMPLIANCE.into(), lock_retain_until_unix_ms: ms, ..Default::default() };
        let (mode, until, hold) = response_headers(&record);
        assert_eq!(mode.unwrap().as_str(), COMPLIANCE);
        assert_eq!(unix_ms(&until.unwrap()), ms);
        assert!(hold.is_none());
    }
}
