//! Multipart uploads. Each part is stored as its own data (inline or striped); completing the
//! upload makes the parts the object's segments without moving a byte.

use coffer_proto::pb::metadata::{
    AbortUploadRequest, CompleteUploadRequest, CompletedPart as PbCompletedPart, CreateUploadRequest, GetUploadRequest,
    ListPartsRequest, ListUploadsRequest, PutPartRequest,
};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::checksums::ChecksumRequest;
use super::convert::{MAX_PUT_BYTES, ObjectHeaders, etag, invalid_argument, now_unix_ms, owner, remote, timestamp};
use super::list::url_encode;
use super::object_checksum;
use crate::write_path::{WriteKey, Written};

const MAX_PART_NUMBER: i32 = 10_000;
const MAX_LISTED: i32 = 1000;

fn part_number(n: i32) -> S3Result<u32> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(n as u32)
    } else {
        Err(invalid_argument("Part number must be an integer between 1 and 10000, inclusive"))
    }
}

/// Parses `bytes=first-last` (inclusive) against an object of `size` bytes.
fn copy_source_range(header: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let bad = || invalid_argument("The x-amz-copy-source-range value must be of the form bytes=first-last");
    let spec = header.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (first, last) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(S3Error::with_message(S3ErrorCode::InvalidRange, "The requested range is not satisfiable"));
    }
    Ok(first..last + 1)
}

impl CofferS3 {
    /// The upload's checksum algorithm (empty: none), or NoSuchUpload.
    pub(super) async fn check_upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<String> {
        let request =
            GetUploadRequest { bucket: bucket.to_string(), key: key.to_string(), upload_id: upload_id.to_string() };
        let response = remote(self.plane.metadata.rpc().get_upload(request).await)?;
        Ok(response.upload.and_then(|u| u.template).map(|t| t.checksum_algorithm).unwrap_or_default())
    }

    async fn put_part(
        &self,
        bucket: String,
        key: String,
        upload_id: String,
        number: u32,
        written: Written,
    ) -> S3Result<(String, i64)> {
        let mut segment = written.segment;
        segment.part_number = number;
        let etag_value = segment.etag.clone();
        let request = PutPartRequest {
            bucket,
            key,
            upload_id,
            part_number: number,
            segment: Some(segment),
            intents: written.intents.clone(),
        };
        match remote(self.plane.metadata.rpc().put_part(request).await) {
            // The stored time, so that UploadPartCopy and ListParts show the same LastModified.
            Ok(response) => {
                Ok((etag_value, response.part.map(|p| p.last_modified_unix_ms).unwrap_or_else(now_unix_ms)))
            }
            Err(e) => {
                // An upload aborted meanwhile: its data goes to the collector now.
                self.abandon(&written.key, written.intents).await;
                Err(e.into())
            }
        }
    }

    pub(super) async fn do_create_multipart_upload(
        &self,
        input: CreateMultipartUploadInput,
        raw_expires: Option<String>,
    ) -> S3Result<CreateMultipartUploadOutput> {
        let acl = self.acl_for_write(&input).await?;
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
            tags: super::tagging::from_header(input.tagging.as_deref())?,
        };
        let checksum =
            object_checksum::upload_checksum(input.checksum_algorithm.as_ref(), input.checksum_type.as_ref())?;
        let mut template = headers.into_record(&input.bucket, &input.key);
        template.sse = self.write_plan(&input.bucket, super::sse::write_headers!(input)).await?.map(|p| p.object);
        let shown = super::sse::shown(template.sse.as_ref());
        template.acl = acl;
        self.lock_of_write(
            &input.bucket,
            input.object_lock_mode.as_ref(),
            input.object_lock_retain_until_date.as_ref(),
            input.object_lock_legal_hold_status.as_ref(),
        )
        .await?
        .apply(&mut template);
        if let Some((algorithm, kind)) = checksum {
            template.checksum_algorithm = algorithm.to_string();
            template.checksum_type = kind.to_string();
        }
        let response =
            remote(self.plane.metadata.rpc().create_upload(CreateUploadRequest { template: Some(template) }).await)?;
        let upload = response.upload.ok_or_else(|| S3Error::with_message(S3ErrorCode::InternalError, "no upload"))?;
        Ok(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload.upload_id),
            server_side_encryption: shown.server_side_encryption,
            ssekms_key_id: shown.ssekms_key_id,
            sse_customer_algorithm: shown.sse_customer_algorithm,
            sse_customer_key_md5: shown.sse_customer_key_md5,
            checksum_algorithm: checksum.map(|(a, _)| ChecksumAlgorithm::from(a.to_string())),
            checksum_type: checksum.map(|(_, k)| ChecksumType::from(k.to_string())),
            ..Default::default()
        })
    }

    pub(super) async fn do_upload_part(
        &self,
        input: UploadPartInput,
        decoded_length: Option<u64>,
        mut checks: ChecksumRequest,
    ) -> S3Result<UploadPartOutput> {
        let number = part_number(input.part_number)?;
        let declared = decoded_length.or(input.content_length.and_then(|l| u64::try_from(l).ok()));
        if declared.is_none() {
            return Err(S3Error::new(S3ErrorCode::MissingContentLength));
        }
        // Refuse before consuming the body, so a bad upload id costs no writes.
        let algorithm = self.check_upload(&input.bucket, &input.key, &input.upload_id).await?;
        object_checksum::require_part_algorithm(&mut checks, &algorithm)?;
        let upload = self.upload_template(&input.bucket, &input.key, &input.upload_id).await?;
        let customer = super::sse::request_key!(input)?;
        let transform = self.part_transform(&upload, customer.as_ref()).await?;
        let shown = super::sse::shown(upload.sse.as_ref());
        let target = WriteKey::new(&input.bucket, &input.key);
        let written = self
            .store_body_sealed(&target, input.body, declared, input.content_md5.as_deref(), &checks, transform)
            .await?;
        let sums = super::checksums::from_map(&written.segment.checksums);
        let (etag_value, _) = self.put_part(input.bucket, input.key, input.upload_id, number, written).await?;
        Ok(UploadPartOutput {
            server_side_encryption: shown.server_side_encryption,
            ssekms_key_id: shown.ssekms_key_id,
            sse_customer_algorithm: shown.sse_customer_algorithm,
            sse_customer_key_md5: shown.sse_customer_key_md5,
            e_tag: Some(etag(&etag_value)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            ..Default::default()
        })
    }

    pub(super) async fn do_upload_part_copy(&self, input: UploadPartCopyInput) -> S3Result<UploadPartCopyOutput> {
        let number = part_number(input.part_number)?;
        let algorithm = self.check_upload(&input.bucket, &input.key, &input.upload_id).await?;
        let (src_bucket, src_key, src_version) = super::object::copy_source(&input.copy_source)?;
        let source = self.get_version(&src_bucket, &src_key, src_version.as_deref()).await?;
        let conditions = super::conditions::Conditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        };
        conditions.check_copy_source(&source.etag, source.last_modified_unix_ms)?;
        let source_key = super::sse::copy_source_key!(input)?;
        self.check_read_key(&source, source_key.as_ref())?;
        let upload = self.upload_template(&input.bucket, &input.key, &input.upload_id).await?;
        let customer = super::sse::request_key!(input)?;
        let transform = self.part_transform(&upload, customer.as_ref()).await?;
        let shown = super::sse::shown(upload.sse.as_ref());
        let range = match input.copy_source_range.as_deref() {
            Some(header) => copy_source_range(header, source.size)?,
            None => 0..source.size,
        };
        if range.end - range.start > MAX_PUT_BYTES {
            return Err(S3Error::new(S3ErrorCode::EntityTooLarge));
        }
        // A part of an upload with a checksum algorithm needs that checksum for the object's.
        // Encrypted or compressed bytes on either side take the transforming copy.
        let target = WriteKey::new(&input.bucket, &input.key);
        let written = if algorithm.is_empty() || super::sse::transformed(&source) || !transform.is_identity() {
            self.copy_bytes_sealed(&target, &source, range, source_key, transform, &algorithm).await?
        } else {
            self.copy_bytes_with_checksum(&target, &source, range, &algorithm).await?
        };
        let sums = super::checksums::from_map(&written.segment.checksums);
        let (etag_value, stored_at) = self.put_part(input.bucket, input.key, input.upload_id, number, written).await?;
        Ok(UploadPartCopyOutput {
            server_side_encryption: shown.server_side_encryption,
            ssekms_key_id: shown.ssekms_key_id,
            sse_customer_algorithm: shown.sse_customer_algorithm,
            sse_customer_key_md5: shown.sse_customer_key_md5,
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&etag_value)),
                last_modified: Some(timestamp(stored_at)),
                checksum_crc32: sums.checksum_crc32,
                checksum_crc32c: sums.checksum_crc32c,
                checksum_crc64nvme: sums.checksum_crc64nvme,
                checksum_sha1: sums.checksum_sha1,
                checksum_sha256: sums.checksum_sha256,
            }),
            ..Default::default()
        })
    }

    pub(super) async fn do_complete_multipart_upload(
        &self,
        input: CompleteMultipartUploadInput,
    ) -> S3Result<CompleteMultipartUploadOutput> {
        let condition = super::object::write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let parts = input.multipart_upload.as_ref().and_then(|u| u.parts.clone()).unwrap_or_default();
        if parts.is_empty() {
            // A missing bucket or upload is reported before a body that names no parts, as AWS does.
            self.check_upload(&input.bucket, &input.key, &input.upload_id).await?;
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        }
        self.check_completed_checksums(&input, &parts).await?;
        let mut completed = Vec::with_capacity(parts.len());
        for part in parts {
            let number = part.part_number.ok_or_else(|| invalid_argument("PartNumber is required"))?;
            let tag = part.e_tag.map(|e| e.value().to_string()).unwrap_or_default();
            completed.push(PbCompletedPart { part_number: part_number(number)?, etag: tag });
        }
        let request = CompleteUploadRequest {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: input.upload_id,
            parts: completed,
            condition: Some(condition),
        };
        let response = remote(self.plane.metadata.rpc().complete_upload(request).await)?;
        let record = response.record.ok_or_else(|| S3Error::with_message(S3ErrorCode::InternalError, "no record"))?;
        let (sums, checksum_type) = object_checksum::of_object(&record);
        let shown = super::sse::shown(record.sse.as_ref());
        Ok(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&record.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            server_side_encryption: shown.server_side_encryption,
            ssekms_key_id: shown.ssekms_key_id,
            version_id: super::versioning::shown_id(&record),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_type,
            ..Default::default()
        })
    }

    pub(super) async fn do_abort_multipart_upload(
        &self,
        input: AbortMultipartUploadInput,
    ) -> S3Result<AbortMultipartUploadOutput> {
        let request = AbortUploadRequest { bucket: input.bucket, key: input.key, upload_id: input.upload_id };
        remote(self.plane.metadata.rpc().abort_upload(request).await)?;
        Ok(AbortMultipartUploadOutput::default())
    }

    pub(super) async fn do_list_parts(&self, input: ListPartsInput) -> S3Result<ListPartsOutput> {
        let max_parts = input.max_parts.unwrap_or(MAX_LISTED);
        if max_parts < 0 {
            return Err(invalid_argument("max-parts must be a non-negative integer"));
        }
        let marker = input.part_number_marker.unwrap_or(0);
        if marker < 0 {
            return Err(invalid_argument("part-number-marker must be a non-negative integer"));
        }
        let request = ListPartsRequest {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: input.upload_id.clone(),
            part_number_marker: marker as u32,
            max_parts: max_parts.min(MAX_LISTED) as u32,
        };
        let response = remote(self.plane.metadata.rpc().list_parts(request).await)?;
        let (checksum_algorithm, checksum_type) = response
            .upload
            .as_ref()
            .and_then(|u| u.template.as_ref())
            .filter(|t| !t.checksum_algorithm.is_empty())
            .map(|t| {
                (
                    Some(ChecksumAlgorithm::from(t.checksum_algorithm.clone())),
                    Some(ChecksumType::from(t.checksum_type.clone())),
                )
            })
            .unwrap_or_default();
        let parts: Vec<Part> = response
            .parts
            .into_iter()
            .map(|p| {
                let segment = p.segment.unwrap_or_default();
                let sums = super::checksums::from_map(&segment.checksums);
                Part {
                    part_number: Some(p.part_number as i32),
                    e_tag: Some(etag(&segment.etag)),
                    size: Some(segment.size as i64),
                    last_modified: Some(timestamp(p.last_modified_unix_ms)),
                    checksum_crc32: sums.checksum_crc32,
                    checksum_crc32c: sums.checksum_crc32c,
                    checksum_crc64nvme: sums.checksum_crc64nvme,
                    checksum_sha1: sums.checksum_sha1,
                    checksum_sha256: sums.checksum_sha256,
                }
            })
            .collect();
        let owner = owner(&self.root_access_key);
        // AWS always sends both markers (0 and the last part listed); strict parsers need them.
        let next_marker = parts.last().and_then(|p| p.part_number).unwrap_or(input.part_number_marker.unwrap_or(0));
        Ok(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            parts: Some(parts),
            is_truncated: Some(response.is_truncated),
            max_parts: Some(max_parts),
            part_number_marker: Some(input.part_number_marker.unwrap_or(0)),
            next_part_number_marker: Some(if response.is_truncated {
                response.next_part_number_marker as i32
            } else {
                next_marker
            }),
            initiator: Some(Initiator { id: owner.id.clone(), display_name: owner.display_name.clone() }),
            owner: Some(owner),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm,
            checksum_type,
            ..Default::default()
        })
    }

    pub(super) async fn do_list_multipart_uploads(
        &self,
        input: ListMultipartUploadsInput,
    ) -> S3Result<ListMultipartUploadsOutput> {
        let max_uploads = input.max_uploads.unwrap_or(MAX_LISTED);
        if max_uploads < 0 {
            return Err(invalid_argument("max-uploads must be a non-negative integer"));
        }
        let url = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let request = ListUploadsRequest {
            bucket: input.bucket.clone(),
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().unwrap_or_default(),
            key_marker: input.key_marker.clone().unwrap_or_default(),
            upload_id_marker: input.upload_id_marker.clone().unwrap_or_default(),
            max_uploads: max_uploads.min(MAX_LISTED) as u32,
            start_at: String::new(),
        };
        let response = remote(self.plane.listings.list_uploads(request).await)?;
        let owner = owner(&self.root_access_key);
        let uploads = response
            .uploads
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(enc(u.key)),
                upload_id: Some(u.upload_id),
                initiated: Some(timestamp(u.initiated_unix_ms)),
                initiator: Some(Initiator { id: owner.id.clone(), display_name: owner.display_name.clone() }),
                owner: Some(owner.clone()),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        let common_prefixes =
            response.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect();
        Ok(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            uploads: Some(uploads),
            common_prefixes: Some(common_prefixes),
            is_truncated: Some(response.is_truncated),
            max_uploads: Some(max_uploads),
            prefix: input.prefix.map(enc),
            delimiter: input.delimiter.map(enc),
            // AWS sends every marker element, empty when there is none; some clients read them unconditionally.
            key_marker: Some(enc(input.key_marker.unwrap_or_default())),
            upload_id_marker: Some(input.upload_id_marker.unwrap_or_default()),
            next_key_marker: Some(if response.is_truncated { enc(response.next_key_marker) } else { String::new() }),
            next_upload_id_marker: Some(if response.is_truncated {
                response.next_upload_id_marker
            } else {
                String::new()
            }),
            encoding_type: input.encoding_type,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_ranges() {
        assert_eq!(copy_source_range("bytes=0-9", 100).ok(), Some(0..10));
        assert_eq!(copy_source_range("bytes=99-99", 100).ok(), Some(99..100));
        assert!(copy_source_range("bytes=50-100", 100).is_err());
        assert!(copy_source_range("bytes=9-0", 100).is_err());
        assert!(copy_source_range("0-9", 100).is_err());
    }

    #[test]
    fn part_numbers() {
        assert!(part_number(0).is_err());
        assert_eq!(part_number(1).ok(), Some(1));
        assert_eq!(part_number(10_000).ok(), Some(10_000));
        assert!(part_number(10_001).is_err());
    }
}
