//! Object operations: PUT, GET, HEAD, DELETE, DeleteObjects and CopyObject.

use std::ops::Range;

use coffer_proto::ErrorCode;
use coffer_proto::pb::metadata::{
    AbandonDataRequest, DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, ObjectRecord, PutObjectRequest,
    WriteCondition,
};
use futures::{StreamExt, TryStreamExt};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::checksums::{self, ChecksumRequest};
use super::conditions::Conditions;
use super::convert::{
    MAX_PUT_BYTES, ObjectHeaders, StoredHeaders, content_md5, etag, invalid_argument, now_unix_ms, remote, timestamp,
};
use super::{object_lock, sse, tagging, versioning};
use crate::error::GatewayError;
use crate::write_path::{WriteKey, Written};

/// DeleteObjects requests handled at once.
const DELETE_CONCURRENCY: usize = 16;
/// AWS's limit on keys in one DeleteObjects request.
const MAX_DELETE_KEYS: usize = 1000;

type StdError = Box<dyn std::error::Error + Send + Sync>;

impl CofferS3 {
    /// The object (or one version of it) a read names. A delete marker is no object: 404
    /// NoSuchKey when it is the current version, 405 MethodNotAllowed when named by version id,
    /// both with `x-amz-delete-marker: true`, as S3 answers.
    pub(super) async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<ObjectRecord> {
        let record = self.get_any_version(bucket, key, version_id).await?;
        if record.delete_marker {
            return Err(versioning::delete_marker_error(&record, version_id.is_some()));
        }
        Ok(record)
    }

    /// Like `get_version`, delete markers included.
    pub(super) async fn get_any_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<ObjectRecord> {
        let version_id = version_id.unwrap_or_default().to_string();
        let by_version = !version_id.is_empty();
        let request = GetObjectRequest { bucket: bucket.to_string(), key: key.to_string(), version_id };
        let response = match remote(self.plane.metadata.rpc().get_object(request).await) {
            Ok(response) => response,
            Err(GatewayError::Remote(e)) if by_version && e.code == ErrorCode::NoSuchKey => {
                return Err(versioning::no_such_version());
            }
            Err(GatewayError::Remote(e)) if by_version && e.code == ErrorCode::InvalidArgument => {
                return Err(invalid_argument("Invalid version id specified"));
            }
            Err(e) => return Err(e.into()),
        };
        response.record.ok_or_else(|| S3Error::with_message(S3ErrorCode::InternalError, "metadata returned no record"))
    }

    /// The current record of a key, or `None` when there is no object under it.
    pub(super) async fn find_record(&self, bucket: &str, key: &str) -> S3Result<Option<ObjectRecord>> {
        let request = GetObjectRequest { bucket: bucket.to_string(), key: key.to_string(), ..Default::default() };
        match self.plane.metadata.rpc().get_object(request).await {
            // A delete marker hides the key: for a conditional write there is no object.
            Ok(response) => Ok(response.into_inner().record.filter(|r| !r.delete_marker)),
            Err(status) => {
                let e = coffer_proto::RemoteError::from(status);
                if e.code == ErrorCode::NoSuchKey { Ok(None) } else { Err(GatewayError::Remote(e).into()) }
            }
        }
    }

    /// Refuses a conditional write that would be refused at commit anyway, before its body is
    /// stored. Only an early answer: the metadata service checks again atomically with the commit.
    pub(super) async fn precheck_write(&self, bucket: &str, key: &str, condition: &WriteCondition) -> S3Result<()> {
        if condition.if_match.is_empty() && !condition.if_none_match {
            return Ok(());
        }
        let current = self.find_record(bucket, key).await?;
        write_condition_holds(condition, current.as_ref())
    }

    /// Hands allocated but uncommitted data to the collector now rather than when its intent expires.
    /// Safe after any failure, even an ambiguous one: an intent that was committed is gone, and
    /// abandoning it is then a no-op.
    /// `key` is what the data was written for: its group holds the intents.
    pub(super) async fn abandon(&self, key: &WriteKey, intents: Vec<Vec<u8>>) {
        for intent in intents {
            let request = AbandonDataRequest { intent, bucket: key.bucket.clone(), key: key.key.clone() };
            if let Err(e) = self.plane.metadata.rpc().abandon_data(request).await {
                tracing::warn!(error = %e, "abandoning data failed; its intent will expire");
            }
        }
    }

    /// Stores a request body as data of `key`, compressed and encrypted as `transform` says (see
    /// `crate::sse`): checks the declared length and Content-MD5 against what arrived.
    pub(super) async fn store_body_sealed(
        &self,
        key: &WriteKey,
        body: Option<StreamingBlob>,
        declared_length: Option<u64>,
        content_md5_header: Option<&str>,
        checks: &ChecksumRequest,
        transform: crate::sse::Transform,
    ) -> S3Result<Written> {
        let expected_md5 = content_md5(content_md5_header)?;
        if let Some(len) = declared_length
            && len > MAX_PUT_BYTES
        {
            return Err(GatewayError::EntityTooLarge.into());
        }
        let hasher = checks.hasher();
        let stream: futures::stream::BoxStream<'static, Result<bytes::Bytes, StdError>> = match body {
            Some(blob) => {
                let hasher = hasher.clone();
                blob.inspect_ok(move |chunk| {
                    if let Ok(mut h) = hasher.lock() {
                        h.update(chunk);
                    }
                })
                .boxed()
            }
            None => futures::stream::empty().boxed(),
        };
        let mut written =
            self.plane.write_transformed(key, stream, declared_length.unwrap_or(MAX_PUT_BYTES), transform).await?;
        let abandon = |w: Written| async move { self.abandon(&w.key, w.intents).await };
        if let Some(len) = declared_length
            && written.segment.size != len
        {
            abandon(written).await;
            return Err(GatewayError::IncompleteBody.into());
        }
        if let Some(expected) = expected_md5
            && expected != written.md5
        {
            abandon(written).await;
            return Err(GatewayError::BadDigest.into());
        }
        match checks.verify(hasher) {
            Ok(computed) => written.segment.checksums = computed,
            Err(e) => {
                abandon(written).await;
                return Err(e);
            }
        }
        Ok(written)
    }

    pub(super) async fn do_put_object(
        &self,
        input: PutObjectInput,
        decoded_length: Option<u64>,
        checks: ChecksumRequest,
        raw_expires: Option<String>,
    ) -> S3Result<PutObjectOutput> {
        // `None` only for a body of unknown length that the caller allowed (`LengthUnknown`): it
        // is then bounded by MAX_PUT_BYTES and its size is what arrives.
        let declared = decoded_length.or(input.content_length.and_then(|l| u64::try_from(l).ok()));
        let tags = tagging::from_header(input.tagging.as_deref())?;
        let acl = self.acl_for_write(&input).await?;
        let lock = self
            .lock_of_write(
                &input.bucket,
                input.object_lock_mode.as_ref(),
                input.object_lock_retain_until_date.as_ref(),
                input.object_lock_legal_hold_status.as_ref(),
            )
            .await?;
        object_lock::require_integrity(&lock, input.content_md5.as_deref(), !checks.wanted.is_empty())?;
        let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        self.precheck_write(&input.bucket, &input.key, &condition).await?;
        let plan = self.write_plan(&input.bucket, sse::write_headers!(input)).await?;
        let transform = self.plan_transform(&input.bucket, input.content_type.as_deref(), plan.as_ref()).await?;
        let target = WriteKey::new(&input.bucket, &input.key);
        let written = self
            .store_body_sealed(&target, input.body, declared, input.content_md5.as_deref(), &checks, transform)
            .await?;
        let headers = ObjectHeaders {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            metadata: input.metadata,
            storage_class: input.storage_class.map(|s| s.as_str().to_string()),
            raw_expires,
            tags,
        };
        let mut record = ObjectRecord { acl, ..headers.into_record(&input.bucket, &input.key) };
        lock.apply(&mut record);
        record.sse = plan.map(|p| p.object);
        let record = self.commit(record, written, condition).await?;
        let sums = checksums::from_map(&record.checksums);
        let shown = sse::shown(record.sse.as_ref());
        Ok(PutObjectOutput {
            server_side_encryption: shown.server_side_encryption,
            ssekms_key_id: shown.ssekms_key_id,
            sse_customer_algorithm: shown.sse_customer_algorithm,
            sse_customer_key_md5: shown.sse_customer_key_md5,
            e_tag: Some(etag(&record.etag)),
            size: Some(record.size as i64),
            version_id: versioning::shown_id(&record),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_type: (!record.checksums.is_empty())
                .then(|| ChecksumType::from_static(super::object_checksum::FULL_OBJECT)),
            ..Default::default()
        })
    }

    /// Commits `written` as the object described by `record` (headers filled in), if `condition`
    /// holds. A refused commit hands the data to the collector at once.
    pub(super) async fn commit(
        &self,
        mut record: ObjectRecord,
        written: Written,
        condition: WriteCondition,
    ) -> S3Result<ObjectRecord> {
        record.size = written.segment.size;
        // The plaintext MD5, except for SSE-C and SSE-KMS objects (see `crate::sse::Sealer`).
        record.etag = written.segment.etag.clone();
        record.last_modified_unix_ms = now_unix_ms();
        record.checksums = written.segment.checksums.clone();
        // One segment: a copy of a multipart object is no multipart object (see `object_checksum`).
        record.checksum_algorithm.clear();
        record.checksum_type.clear();
        record.segments = vec![written.segment];
        let intents = written.intents.clone();
        let request = PutObjectRequest { record: Some(record), intents: written.intents, condition: Some(condition) };
        let response = match remote(self.plane.metadata.rpc().put_object(super::notification::hinted(request)).await) {
            Ok(response) => response,
            Err(e) => {
                self.abandon(&written.key, intents).await;
                return Err(e.into());
            }
        };
        response.record.ok_or_else(|| S3Error::with_message(S3ErrorCode::InternalError, "metadata returned no record"))
    }

    /// The output, and a stored Expires that is no date (see `StoredHeaders::raw_expires`).
    pub(super) async fn do_get_object(&self, input: GetObjectInput) -> S3Result<(GetObjectOutput, Option<String>)> {
        let record = self.get_version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let customer = sse::request_key!(input)?;
        self.check_read_key(&record, customer.as_ref())?;
        let shown = sse::shown(record.sse.as_ref());
        let conditions = Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        };
        conditions.check_read(&record.etag, record.last_modified_unix_ms)?;
        let (range, content_range) = select_range(&record, input.range.as_ref(), input.part_number)?;
        let length = range.end - range.start;
        let (sums, checksum_type) =
            full_object_checksums(&record, input.checksum_mode.as_ref(), input.range.is_none(), input.part_number);
        let body = self.object_body(&record, range, customer);
        let stored = StoredHeaders::of(&record);
        let lock = object_lock::response_headers(&record);
        let raw_expires = if input.response_expires.is_some() { None } else { stored.raw_expires };
        let output = GetObjectOutput {
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_type,
            body: Some(StreamingBlob::wrap(body)),
            server_side_encryption: shown.server_side_encryption,
            ssekms_key_id: shown.ssekms_key_id,
            sse_customer_algorithm: shown.sse_customer_algorithm,
            sse_customer_key_md5: shown.sse_customer_key_md5,
            object_lock_mode: lock.0,
            object_lock_retain_until_date: lock.1,
            object_lock_legal_hold_status: lock.2,
            tag_count: tagging::tag_count(&record.tags),
            content_length: Some(length as i64),
            content_range,
            accept_ranges: Some("bytes".to_string()),
            e_tag: Some(etag(&record.etag)),
            last_modified: Some(timestamp(record.last_modified_unix_ms)),
            content_type: input.response_content_type.or(stored.content_type),
            content_encoding: input.response_content_encoding.or(stored.content_encoding),
            content_disposition: input.response_content_disposition.or(stored.content_disposition),
            content_language: input.response_content_language.or(stored.content_language),
            cache_control: input.response_cache_control.or(stored.cache_control),
            expires: input.response_expires.or(stored.expires),
            metadata: stored.metadata,
            parts_count: parts_count(&record),
            storage_class: storage_class(&record),
            version_id: versioning::shown_id(&record),
            ..Default::default()
        };
        Ok((output, raw_expires))
    }

    pub(super) async fn do_head_object(&self, input: HeadObjectInput) -> S3Result<(HeadObjectOutput, Option<String>)> {
        let record = self.get_version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let customer = sse::request_key!(input)?;
        self.check_read_key(&record, customer.as_ref())?;
        let shown = sse::shown(record.sse.as_ref());
        let conditions = Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        };
        conditions.check_read(&record.etag, record.last_modified_unix_ms)?;
        let (range, content_range) = select_range(&record, input.range.as_ref(), input.part_number)?;
        let (sums, checksum_type) =
            full_object_checksums(&record, input.checksum_mode.as_ref(), input.range.is_none(), input.part_number);
        let stored = StoredHeaders::of(&record);
        let lock = object_lock::response_headers(&record);
        let raw_expires = if input.response_expires.is_some() { None } else { stored.raw_expires };
        let output = HeadObjectOutput {
            server_side_encryption: shown.server_side_encryption,
            ssekms_key_id: shown.ssekms_key_id,
            sse_customer_algorithm: shown.sse_customer_algorithm,
            sse_customer_key_md5: shown.sse_customer_key_md5,
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_type,
            content_length: Some((range.end - range.start) as i64),
            object_lock_mode: lock.0,
            object_lock_retain_until_date: lock.1,
            object_lock_legal_hold_status: lock.2,
            content_range,
            accept_ranges: Some("bytes".to_string()),
            e_tag: Some(etag(&record.etag)),
            last_modified: Some(timestamp(record.last_modified_unix_ms)),
            content_type: input.response_content_type.or(stored.content_type),
            content_encoding: input.response_content_encoding.or(stored.content_encoding),
            content_disposition: input.response_content_disposition.or(stored.content_disposition),
            content_language: input.response_content_language.or(stored.content_language),
            cache_control: input.response_cache_control.or(stored.cache_control),
            expires: input.response_expires.or(stored.expires),
            metadata: stored.metadata,
            parts_count: parts_count(&record),
            storage_class: storage_class(&record),
            version_id: versioning::shown_id(&record),
            ..Default::default()
        };
        Ok((output, raw_expires))
    }

    pub(super) async fn do_delete_object(&self, input: DeleteObjectInput) -> S3Result<DeleteObjectOutput> {
        if input.mfa.is_some() {
            return Err(versioning::mfa_not_implemented());
        }
        let version_id = input.version_id.unwrap_or_default();
        // Already the gateway's decision (header and permission, see `may_bypass_governance`).
        let bypass_governance = input.bypass_governance_retention.unwrap_or(false);
        let request = DeleteObjectRequest { bucket: input.bucket, key: input.key, version_id, bypass_governance };
        let response = remote(self.plane.metadata.rpc().delete_object(request).await)?;
        Ok(DeleteObjectOutput {
            delete_marker: response.delete_marker.then_some(true),
            version_id: (!response.version_id.is_empty()).then_some(response.version_id),
            ..Default::default()
        })
    }

    /// `body_md5` is the MD5 of the request body when the edge could compute it (see `edge`).
    pub(super) async fn do_delete_objects(
        &self,
        input: DeleteObjectsInput,
        content_md5_header: Option<&str>,
        body_md5: Option<[u8; 16]>,
    ) -> S3Result<DeleteObjectsOutput> {
        if let (Some(expected), Some(actual)) = (content_md5(content_md5_header)?, body_md5)
            && expected != actual
        {
            return Err(GatewayError::BadDigest.into());
        }
        // A missing bucket fails the request, not each key.
        let request = coffer_proto::pb::metadata::GetBucketRequest { name: input.bucket.clone() };
        remote(self.plane.metadata.rpc().get_bucket(request).await)?;
        if input.delete.objects.len() > MAX_DELETE_KEYS {
            return Err(S3Error::with_message(S3ErrorCode::MalformedXML, "at most 1000 keys per request"));
        }
        if input.delete.objects.is_empty() {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        }
        if input.delete.objects.iter().any(|o| o.key.is_empty()) {
            return Err(S3Error::with_message(
                S3ErrorCode::UserKeyMustBeSpecified,
                "The bucket POST must contain the specified field name. If it is specified, please check the order of the fields.",
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        // Already the gateway's decision (header and permission, see `may_bypass_governance`).
        let bypass_governance = input.bypass_governance_retention.unwrap_or(false);
        let bucket = input.bucket;
        let results: Vec<(ObjectIdentifier, Result<DeleteObjectResponse, S3Error>)> =
            futures::stream::iter(input.delete.objects.into_iter().map(|object| {
                let request = DeleteObjectRequest {
                    bucket: bucket.clone(),
                    key: object.key.clone(),
                    version_id: object.version_id.clone().unwrap_or_default(),
                    bypass_governance,
                };
                let mut client = self.plane.metadata.rpc();
                async move {
                    let result = remote(client.delete_object(request).await).map_err(S3Error::from);
                    (object, result)
                }
            }))
            .buffered(DELETE_CONCURRENCY)
            .collect()
            .await;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (object, result) in results {
            match result {
                Ok(_) if quiet => {}
                // A new delete marker is named as one; deleting a version by id echoes that id (and
                // says whether it was a marker).
                Ok(r) if object.version_id.is_none() && r.delete_marker => deleted.push(DeletedObject {
                    key: Some(object.key),
                    delete_marker: Some(true),
                    delete_marker_version_id: Some(r.version_id),
                    ..Default::default()
                }),
                Ok(r) => deleted.push(DeletedObject {
                    key: Some(object.key),
                    delete_marker: r.delete_marker.then_some(true),
                    delete_marker_version_id: r.delete_marker.then(|| r.version_id.clone()),
                    version_id: object.version_id,
                }),
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(object.key),
                    message: e.message().map(str::to_string),
                    version_id: object.version_id,
                }),
            }
        }
        Ok(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() })
    }

    pub(super) async fn do_copy_object(
        &self,
        input: CopyObjectInput,
        raw_expires: Option<String>,
    ) -> S3Result<CopyObjectOutput> {
        let (src_bucket, src_key, src_version) = copy_source(&input.copy_source)?;
        let source = self.get_version(&src_bucket, &src_key, src_version.as_deref()).await?;
        let conditions = Conditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        };
        conditions.check_copy_source(&source.etag, source.last_modified_unix_ms)?;
        let source_key = sse::copy_source_key!(input)?;
        self.check_read_key(&source, source_key.as_ref())?;
        let plan = self.write_plan(&input.bucket, sse::write_headers!(input)).await?;
        // Changing only the encryption is a change: AWS allows such a copy onto itself.
        let new_encryption = input.server_side_encryption.is_some() || input.sse_customer_algorithm.is_some();
        if let Some(d) = &input.metadata_directive
            && ![MetadataDirective::COPY, MetadataDirective::REPLACE].contains(&d.as_str())
        {
            return Err(invalid_argument("Unknown metadata directive."));
        }
        if let Some(d) = &input.tagging_directive
            && ![TaggingDirective::COPY, TaggingDirective::REPLACE].contains(&d.as_str())
        {
            return Err(invalid_argument("Unknown tagging directive."));
        }
        let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let replace_tags = input.tagging_directive.as_ref().is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
        let tags = if replace_tags { tagging::from_header(input.tagging.as_deref())? } else { source.tags.clone() };
        // A copy never inherits the source's ACL (AWS): it gets `x-amz-acl`, else private.
        let acl = self.acl_for_write(&input).await?;
        // Nor the source's object lock: the copy gets the request's lock headers (or the default).
        let lock = self
            .lock_of_write(
                &input.bucket,
                input.object_lock_mode.as_ref(),
                input.object_lock_retain_until_date.as_ref(),
                input.object_lock_legal_hold_status.as_ref(),
            )
            .await?;
        if !replace
            && !replace_tags
            && src_bucket == input.bucket
            && src_key == input.key
            && input.storage_class.is_none()
            && !new_encryption
        {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing \
                 the object's metadata, storage class, website redirect location or encryption attributes.",
            ));
        }
        if source.size > MAX_PUT_BYTES {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
            ));
        }
        let content_type = if replace { input.content_type.clone() } else { Some(source.content_type.clone()) };
        let transform = self.plan_transform(&input.bucket, content_type.as_deref(), plan.as_ref()).await?;
        let target = WriteKey::new(&input.bucket, &input.key);
        let written = self.copy_bytes_sealed(&target, &source, 0..source.size, source_key, transform, "").await?;
        let mut record = if replace {
            ObjectHeaders {
                content_type: input.content_type,
                content_encoding: input.content_encoding,
                content_disposition: input.content_disposition,
                content_language: input.content_language,
                cache_control: input.cache_control,
                expires: input.expires,
                metadata: input.metadata,
                storage_class: None,
                raw_expires,
                tags: std::collections::HashMap::new(),
            }
            .into_record(&input.bucket, &input.key)
        } else {
            ObjectRecord {
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                version_id: String::new(),
                version_order: 0,
                ..source.clone()
            }
        };
        if let Some(class) = input.storage_class {
            record.storage_class = class.as_str().to_string();
        }
        record.tags = tags;
        record.acl = acl;
        lock.apply(&mut record);
        record.sse = plan.map(|p| p.object);
        let commit = self.commit(record, written, WriteCondition::default());
        let committed = super::notification::created_by("Copy", commit).await?;
        let shown = sse::shown(committed.sse.as_ref());
        Ok(CopyObjectOutput {
            server_side_encryption: shown.server_side_encryption,
            ssekms_key_id: shown.ssekms_key_id,
            sse_customer_algorithm: shown.sse_customer_algorithm,
            sse_customer_key_md5: shown.sse_customer_key_md5,
            version_id: versioning::shown_id(&committed),
            copy_source_version_id: src_version.and(versioning::shown_id(&source)),
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&committed.etag)),
                last_modified: Some(timestamp(committed.last_modified_unix_ms)),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// Reads `range` of an object and writes it as new data of `target`: decrypts (with its SSE-C
    /// key when it has one) and decompresses the source, and compresses and encrypts the copy as
    /// `transform` says.
    pub(super) async fn copy_bytes_sealed(
        &self,
        target: &WriteKey,
        source: &ObjectRecord,
        range: Range<u64>,
        source_key: Option<crate::sse::keys::CustomerKey>,
        transform: crate::sse::Transform,
        checksum_algorithm: &str,
    ) -> S3Result<Written> {
        let len = range.end - range.start;
        let checks = sse::copy_checksums(checksum_algorithm);
        let hasher = checks.hasher();
        let tap = hasher.clone();
        let hashing = !checks.wanted.is_empty();
        let stream = self
            .plain_body(source, range, source_key)
            .map_err(|e| -> StdError { Box::new(e) })
            .inspect_ok(move |chunk| {
                if hashing && let Ok(mut h) = tap.lock() {
                    h.update(chunk);
                }
            })
            .boxed();
        let mut written = self.plane.write_transformed(target, stream, len, transform).await?;
        if written.segment.size != len {
            self.abandon(&written.key, written.intents).await;
            return Err(S3Error::with_message(S3ErrorCode::InternalError, "copy source ended early"));
        }
        if hashing {
            match checks.verify(hasher) {
                Ok(computed) => written.segment.checksums = computed,
                Err(e) => {
                    self.abandon(&written.key, written.intents).await;
                    return Err(e);
                }
            }
        }
        Ok(written)
    }
}

/// The conditional-write headers of a PutObject or CompleteMultipartUpload. AWS accepts only `*`
/// for If-None-Match on writes, and answers anything else with 501.
pub(super) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    let if_none_match = match if_none_match {
        None => false,
        Some(ETagCondition::Any) => true,
        Some(ETagCondition::ETag(_)) => {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "A header you provided implies functionality that is not implemented: If-None-Match accepts only *",
            ));
        }
    };
    let if_match = match if_match {
        None => String::new(),
        Some(ETagCondition::Any) => "*".to_string(),
        Some(ETagCondition::ETag(e)) => e.value().to_string(),
    };
    Ok(WriteCondition { if_match, if_none_match })
}

/// The gateway's early view of the condition the metadata service enforces at commit
/// (`metadata::command::check_condition`): the same outcomes, as S3 errors.
fn write_condition_holds(condition: &WriteCondition, current: Option<&ObjectRecord>) -> S3Result<()> {
    let failed = || {
        S3Error::with_message(
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        )
    };
    if condition.if_none_match && current.is_some() {
        return Err(failed());
    }
    if condition.if_match.is_empty() {
        return Ok(());
    }
    let Some(current) = current else {
        return Err(S3Error::with_message(S3ErrorCode::NoSuchKey, "The specified key does not exist."));
    };
    let wanted = condition.if_match.trim_matches('"');
    if wanted != "*" && !wanted.eq_ignore_ascii_case(&current.etag) {
        return Err(failed());
    }
    Ok(())
}

/// `x-amz-copy-source` is `bucket/key` URL-encoded, so a literal `?` starts a query, and S3
/// knows only `versionId` there. s3s would take any other query as part of the key.
pub(super) fn check_copy_source_query(headers: &http::HeaderMap) -> S3Result<()> {
    let raw = headers.get("x-amz-copy-source").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some((_, query)) = raw.as_deref().and_then(|r| r.split_once('?')) else {
        return Ok(());
    };
    if query.starts_with("versionId=") && !query.contains('&') {
        return Ok(());
    }
    Err(invalid_argument("Unsupported copy source parameter."))
}

/// (bucket, key, version id) of a copy source.
pub(super) fn copy_source(source: &CopySource) -> S3Result<(String, String, Option<String>)> {
    match source {
        CopySource::Bucket { bucket, key, version_id } => {
            Ok((bucket.to_string(), key.to_string(), version_id.as_deref().map(str::to_string)))
        }
        _ => Err(S3Error::with_message(S3ErrorCode::NotImplemented, "access point copy sources are not supported")),
    }
}

/// The byte range a GET or HEAD selects, and its Content-Range header.
fn select_range(
    record: &ObjectRecord,
    range: Option<&s3s::dto::Range>,
    part_number: Option<i32>,
) -> S3Result<(Range<u64>, Option<String>)> {
    let size = record.size;
    if let Some(part) = part_number {
        if range.is_some() {
            return Err(S3Error::with_message(S3ErrorCode::InvalidRequest, "Range and partNumber cannot both be set"));
        }
        let index = usize::try_from(part).ok().filter(|&p| p >= 1).ok_or_else(|| {
            S3Error::with_message(S3ErrorCode::InvalidArgument, "Part number must be an integer between 1 and 10000")
        })?;
        let segment = record.segments.get(index - 1).ok_or_else(invalid_part_number)?;
        let start: u64 = record.segments[..index - 1].iter().map(|s| s.size).sum();
        let end = start + segment.size;
        let content_range = (end > start).then(|| format!("bytes {start}-{}/{size}", end - 1));
        return Ok((start..end, content_range));
    }
    match range {
        None => Ok((0..size, None)),
        Some(r) => {
            let selected = r.check(size)?;
            let content_range = format!("bytes {}-{}/{size}", selected.start, selected.end - 1);
            Ok((selected, Some(content_range)))
        }
    }
}

/// AWS's InvalidPartNumber (416), which s3s has no constant for.
fn invalid_part_number() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("InvalidPartNumber".into()),
        "The requested partnumber is not satisfiable",
    );
    e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
    e
}

/// Stored checksums, returned only when asked for and never for a byte range (as S3 does); a
/// `partNumber` read of a multipart object shows that part's.
fn full_object_checksums(
    record: &ObjectRecord,
    mode: Option<&ChecksumMode>,
    unranged: bool,
    part_number: Option<i32>,
) -> (Checksum, Option<ChecksumType>) {
    if !unranged || !mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED)) {
        return (Checksum::default(), None);
    }
    match part_number.and_then(|n| usize::try_from(n).ok()).and_then(|n| n.checked_sub(1)) {
        Some(index) => match record.segments.get(index) {
            Some(segment) => super::object_checksum::of_part(record, segment),
            None => (Checksum::default(), None),
        },
        None => super::object_checksum::of_object(record),
    }
}

fn parts_count(record: &ObjectRecord) -> Option<i32> {
    record.etag.contains('-').then_some(record.segments.len() as i32)
}

fn storage_class(record: &ObjectRecord) -> Option<StorageClass> {
    (!record.storage_class.is_empty() && record.storage_class != "STANDARD")
        .then(|| StorageClass::from(record.storage_class.clone()))
}
