//! Put/Get/DeleteBucketLifecycleConfiguration. The rules are validated as S3 validates them and
//! stored as a `LifecycleConfiguration` message in the bucket's `lifecycle` configuration slot,
//! where the metadata service's lifecycle worker reads and executes them.

use coffer_proto::Message;
use coffer_proto::pb::metadata::{
    LifecycleConfiguration, LifecycleFilter as PbFilter, LifecycleFilterForm as Form, LifecycleRule as PbRule,
    LifecycleTag,
};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::bucket_config::names;

/// S3's limits on one configuration.
const MAX_RULES: usize = 1000;
const MAX_ID_CHARS: usize = 255;
const MAX_NEWER_NONCURRENT_VERSIONS: i32 = 100;

fn malformed() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message.into())
}

fn tag_of(tag: &Tag) -> S3Result<LifecycleTag> {
    let key = tag.key.clone().ok_or_else(malformed)?;
    let value = tag.value.clone().unwrap_or_default();
    if key.is_empty() || key.chars().count() > 128 {
        return Err(S3Error::with_message(S3ErrorCode::InvalidTag, "The TagKey you have provided is invalid"));
    }
    if value.chars().count() > 256 {
        return Err(S3Error::with_message(S3ErrorCode::InvalidTag, "The TagValue you have provided is invalid"));
    }
    Ok(LifecycleTag { key, value })
}

fn check_sizes(greater: Option<i64>, less: Option<i64>) -> S3Result<()> {
    if greater.is_some_and(|g| g < 0) {
        return Err(invalid("'ObjectSizeGreaterThan' must not be negative"));
    }
    if less.is_some_and(|l| l <= 0) {
        return Err(invalid("'ObjectSizeLessThan' must be a positive integer"));
    }
    if let (Some(g), Some(l)) = (greater, less)
        && g >= l
    {
        return Err(invalid("ObjectSizeGreaterThan must be less than ObjectSizeLessThan"));
    }
    Ok(())
}

fn filter_of(filter: &LifecycleRuleFilter) -> S3Result<PbFilter> {
    let given = [
        filter.prefix.is_some(),
        filter.tag.is_some(),
        filter.and.is_some(),
        filter.object_size_greater_than.is_some(),
        filter.object_size_less_than.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(malformed());
    }
    let mut out = PbFilter::default();
    if let Some(prefix) = &filter.prefix {
        out.form = Form::Prefix as i32;
        out.prefix.clone_from(prefix);
    } else if let Some(tag) = &filter.tag {
        out.form = Form::Tag as i32;
        out.tags.push(tag_of(tag)?);
    } else if let Some(and) = &filter.and {
        out.form = Form::And as i32;
        out.prefix = and.prefix.clone().unwrap_or_default();
        for tag in and.tags.iter().flatten() {
            let tag = tag_of(tag)?;
            if out.tags.iter().any(|t| t.key == tag.key) {
                return Err(invalid("Duplicate Tag Keys are not allowed."));
            }
            out.tags.push(tag);
        }
        let empty = and.prefix.is_none()
            && out.tags.is_empty()
            && and.object_size_greater_than.is_none()
            && and.object_size_less_than.is_none();
        if empty {
            return Err(malformed());
        }
        check_sizes(and.object_size_greater_than, and.object_size_less_than)?;
        out.object_size_greater_than = and.object_size_greater_than;
        out.object_size_less_than = and.object_size_less_than;
    } else if let Some(greater) = filter.object_size_greater_than {
        check_sizes(Some(greater), None)?;
        out.form = Form::SizeGreaterThan as i32;
        out.object_size_greater_than = Some(greater);
    } else if let Some(less) = filter.object_size_less_than {
        check_sizes(None, Some(less))?;
        out.form = Form::SizeLessThan as i32;
        out.object_size_less_than = Some(less);
    } else {
        out.form = Form::Empty as i32;
    }
    Ok(out)
}

fn positive(value: Option<i32>, message: &str) -> S3Result<Option<i32>> {
    match value {
        Some(v) if v <= 0 => Err(invalid(message)),
        other => Ok(other),
    }
}

/// One rule as S3 validates it.
pub fn rule_of(rule: &LifecycleRule) -> S3Result<PbRule> {
    let id = match rule.id.as_deref() {
        Some(id) if !id.is_empty() => id.to_string(),
        // S3 names a rule given without an id.
        _ => uuid::Uuid::new_v4().simple().to_string(),
    };
    if id.chars().count() > MAX_ID_CHARS {
        return Err(invalid("ID length should not exceed allowed limit of 255"));
    }
    let enabled = match rule.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(malformed()),
    };
    let filter = match (&rule.filter, &rule.prefix) {
        (Some(filter), None) => filter_of(filter)?,
        (None, Some(prefix)) => {
            PbFilter { form: Form::RulePrefix as i32, prefix: prefix.clone(), ..Default::default() }
        }
        _ => return Err(malformed()),
    };
    if rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || rule.noncurrent_version_transitions.as_ref().is_some_and(|t| !t.is_empty())
    {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "Transitions are not supported: Coffer has one storage class",
        ));
    }
    let mut out = PbRule { id, enabled, ..Default::default() };
    if let Some(expiration) = &rule.expiration {
        let given =
            [expiration.days.is_some(), expiration.date.is_some(), expiration.expired_object_delete_marker.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(malformed());
        }
        out.expiration_days = positive(expiration.days, "'Days' for Expiration action must be a positive integer")?;
        if let Some(date) = &expiration.date {
            let date = time::OffsetDateTime::from(date.clone());
            if date.time() != time::Time::MIDNIGHT || date.offset() != time::UtcOffset::UTC {
                return Err(invalid("'Date' must be at midnight GMT"));
            }
            let ms = date.unix_timestamp_nanos() / 1_000_000;
            out.expiration_date_unix_ms = Some(i64::try_from(ms).map_err(|_| invalid("'Date' is out of range"))?);
        }
        out.expired_object_delete_marker = expiration.expired_object_delete_marker;
    }
    if let Some(noncurrent) = &rule.noncurrent_version_expiration {
        let days = noncurrent.noncurrent_days.ok_or_else(malformed)?;
        out.noncurrent_days =
            positive(Some(days), "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer")?;
        if let Some(newer) = noncurrent.newer_noncurrent_versions
            && !(1..=MAX_NEWER_NONCURRENT_VERSIONS).contains(&newer)
        {
            return Err(invalid("'NewerNoncurrentVersions' must be between 1 and 100"));
        }
        out.newer_noncurrent_versions = noncurrent.newer_noncurrent_versions;
    }
    if let Some(abort) = &rule.abort_incomplete_multipart_upload {
        let days = abort.days_after_initiation.ok_or_else(malformed)?;
        out.abort_days_after_initiation = positive(
            Some(days),
            "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
        )?;
    }
    let has_tags = !filter.tags.is_empty();
    if has_tags && out.expired_object_delete_marker == Some(true) {
        return Err(invalid("ExpiredObjectDeleteMarker cannot be specified with Tag-based filter"));
    }
    if has_tags && out.abort_days_after_initiation.is_some() {
        return Err(invalid("AbortIncompleteMultipartUpload cannot be specified with Tags"));
    }
    let any_action = out.expiration_days.is_some()
        || out.expiration_date_unix_ms.is_some()
        || out.expired_object_delete_marker.is_some()
        || out.noncurrent_days.is_some()
        || out.abort_days_after_initiation.is_some();
    if !any_action {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "At least one action needs to be specified in a rule",
        ));
    }
    out.filter = Some(filter);
    Ok(out)
}

/// A whole configuration as S3 validates it.
pub fn configuration_of(config: &BucketLifecycleConfiguration) -> S3Result<LifecycleConfiguration> {
    if config.rules.is_empty() || config.rules.len() > MAX_RULES {
        return Err(malformed());
    }
    let rules = config.rules.iter().map(rule_of).collect::<S3Result<Vec<_>>>()?;
    let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("Rule ID must be unique. Found same ID for more than one rule"));
    }
    Ok(LifecycleConfiguration { rules })
}

fn tag_dto(tag: &LifecycleTag) -> Tag {
    Tag { key: Some(tag.key.clone()), value: Some(tag.value.clone()) }
}

/// A stored rule in the shape it was given.
pub fn rule_dto(rule: &PbRule) -> LifecycleRule {
    let filter = rule.filter.clone().unwrap_or_default();
    let mut dto_filter = LifecycleRuleFilter::default();
    let mut rule_prefix = None;
    match filter.form() {
        Form::Empty => {}
        Form::RulePrefix => rule_prefix = Some(filter.prefix.clone()),
        Form::Prefix => dto_filter.prefix = Some(filter.prefix.clone()),
        Form::Tag => dto_filter.tag = filter.tags.first().map(tag_dto),
        Form::SizeGreaterThan => dto_filter.object_size_greater_than = filter.object_size_greater_than,
        Form::SizeLessThan => dto_filter.object_size_less_than = filter.object_size_less_than,
        Form::And => {
            dto_filter.and = Some(LifecycleRuleAndOperator {
                prefix: (!filter.prefix.is_empty()).then(|| filter.prefix.clone()),
                tags: (!filter.tags.is_empty()).then(|| filter.tags.iter().map(tag_dto).collect()),
                object_size_greater_than: filter.object_size_greater_than,
                object_size_less_than: filter.object_size_less_than,
            })
        }
    }
    let expiration = (rule.expiration_days.is_some()
        || rule.expiration_date_unix_ms.is_some()
        || rule.expired_object_delete_marker.is_some())
    .then(|| LifecycleExpiration {
        days: rule.expiration_days,
        date: rule.expiration_date_unix_ms.map(|ms| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
                .into()
        }),
        expired_object_delete_marker: rule.expired_object_delete_marker,
    });
    LifecycleRule {
        id: Some(rule.id.clone()),
        status: ExpirationStatus::from(
            if rule.enabled { ExpirationStatus::ENABLED } else { ExpirationStatus::DISABLED }.to_string(),
        ),
        filter: (filter.form() != Form::RulePrefix).then_some(dto_filter),
        prefix: rule_prefix,
        expiration,
        noncurrent_version_expiration: rule.noncurrent_days.map(|days| NoncurrentVersionExpiration {
            noncurrent_days: Some(days),
            newer_noncurrent_versions: rule.newer_noncurrent_versions,
        }),
        abort_incomplete_multipart_upload: rule
            .abort_days_after_initiation
            .map(|days| AbortIncompleteMultipartUpload { days_after_initiation: Some(days) }),
        transitions: None,
        noncurrent_version_transitions: None,
    }
}

impl CofferS3 {
    pub(super) async fn do_put_bucket_lifecycle_configuration(
        &self,
        input: PutBucketLifecycleConfigurationInput,
    ) -> S3Result<PutBucketLifecycleConfigurationOutput> {
        let config = input.lifecycle_configuration.as_ref().ok_or_else(malformed)?;
        let stored = configuration_of(config)?;
        self.set_bucket_config(&input.bucket, names::LIFECYCLE, Some(stored.encode_to_vec())).await?;
        Ok(PutBucketLifecycleConfigurationOutput::default())
    }

    pub(super) async fn do_get_bucket_lifecycle_configuration(
        &self,
        input: GetBucketLifecycleConfigurationInput,
    ) -> S3Result<GetBucketLifecycleConfigurationOutput> {
        let none = || {
            S3Error::with_message(
                S3ErrorCode::NoSuchLifecycleConfiguration,
                "The lifecycle configuration does not exist",
            )
        };
        let bytes = self.bucket_config(&input.bucket, names::LIFECYCLE).await?.ok_or_else(none)?;
        let stored = LifecycleConfiguration::decode(bytes.as_slice())
            .map_err(|e| S3Error::with_message(S3ErrorCode::InternalError, format!("stored lifecycle rules: {e}")))?;
        Ok(GetBucketLifecycleConfigurationOutput {
            rules: Some(stored.rules.iter().map(rule_dto).collect()),
            ..Default::default()
        })
    }

    pub(super) async fn do_delete_bucket_lifecycle(
        &self,
        input: DeleteBucketLifecycleInput,
    ) -> S3Result<DeleteBucketLifecycleOutput> {
        self.set_bucket_config(&input.bucket, names::LIFECYCLE, None).await?;
        Ok(DeleteBucketLifecycleOutput::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str) -> LifecycleRule {
        LifecycleRule {
            id: Some(id.into()),
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            filter: Some(LifecycleRuleFilter { prefix: Some("logs/".into()), ..Default::default() }),
            expiration: Some(LifecycleExpiration { days: Some(3), ..Default::default() }),
            abort_incomplete_multipart_upload: None,
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            transitions: None,
        }
    }

    fn code(result: S3Result<impl std::fmt::Debug>) -> S3ErrorCode {
        result.expect_err("expected an error").code().clone()
    }

    #[test]
    fn rules_round_trip_in_their_shape() {
        let mut and = rule("and");
        and.filter = Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some("p/".into()),
                tags: Some(vec![Tag { key: Some("k".into()), value: Some("v".into()) }]),
                object_size_greater_than: Some(1),
                object_size_less_than: Some(9),
            }),
            ..Default::default()
        });
        let mut legacy = rule("legacy");
        legacy.filter = None;
        legacy.prefix = Some("old/".into());
        legacy.expiration = None;
        legacy.noncurrent_version_expiration =
            Some(NoncurrentVersionExpiration { noncurrent_days: Some(2), newer_noncurrent_versions: Some(3) });
        legacy.abort_incomplete_multipart_upload =
            Some(AbortIncompleteMultipartUpload { days_after_initiation: Some(1) });
        for original in [rule("plain"), and, legacy] {
            assert_eq!(rule_dto(&rule_of(&original).unwrap()), original);
        }
    }

    #[test]
    fn invalid_rules_get_s3_errors() {
        let config = |rules: Vec<LifecycleRule>| configuration_of(&BucketLifecycleConfiguration { rules });
        assert_eq!(code(config(vec![])), S3ErrorCode::MalformedXML);
        assert_eq!(code(config(vec![rule("a"), rule("a")])), S3ErrorCode::InvalidArgument);
        assert_eq!(code(config(vec![rule(&"x".repeat(256))])), S3ErrorCode::InvalidArgument);
        assert!(config(vec![rule(&"x".repeat(255))]).is_ok());
        assert_eq!(code(config((0..1001).map(|i| rule(&i.to_string())).collect())), S3ErrorCode::MalformedXML);

        let mut both = rule("b");
        both.prefix = Some("x".into());
        assert_eq!(code(rule_of(&both)), S3ErrorCode::MalformedXML);
        let mut neither = rule("n");
        neither.filter = None;
        assert_eq!(code(rule_of(&neither)), S3ErrorCode::MalformedXML);
        let mut status = rule("s");
        status.status = ExpirationStatus::from("On".to_string());
        assert_eq!(code(rule_of(&status)), S3ErrorCode::MalformedXML);
        let mut days = rule("d");
        days.expiration = Some(LifecycleExpiration { days: Some(0), ..Default::default() });
        assert_eq!(code(rule_of(&days)), S3ErrorCode::InvalidArgument);
        let mut two = rule("t");
        two.expiration =
            Some(LifecycleExpiration { days: Some(1), expired_object_delete_marker: Some(true), ..Default::default() });
        assert_eq!(code(rule_of(&two)), S3ErrorCode::MalformedXML);
        let mut noon = rule("noon");
        let date = time::macros::datetime!(2030-01-01 12:00 UTC);
        noon.expiration = Some(LifecycleExpiration { date: Some(date.into()), ..Default::default() });
        assert_eq!(code(rule_of(&noon)), S3ErrorCode::InvalidArgument);
        let mut none = rule("none");
        none.expiration = None;
        assert_eq!(code(rule_of(&none)), S3ErrorCode::InvalidRequest);
        let mut tagged_abort = rule("ta");
        tagged_abort.filter = Some(LifecycleRuleFilter {
            tag: Some(Tag { key: Some("k".into()), value: Some("v".into()) }),
            ..Default::default()
        });
        tagged_abort.abort_incomplete_multipart_upload =
            Some(AbortIncompleteMultipartUpload { days_after_initiation: Some(1) });
        assert_eq!(code(rule_of(&tagged_abort)), S3ErrorCode::InvalidArgument);
        let mut two_filters = rule("tf");
        two_filters.filter = Some(LifecycleRuleFilter {
            prefix: Some("a".into()),
            object_size_greater_than: Some(5),
            ..Default::default()
        });
        assert_eq!(code(rule_of(&two_filters)), S3ErrorCode::MalformedXML);
    }
}
