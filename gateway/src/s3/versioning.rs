//! Bucket versioning (Put/GetBucketVersioning), ListObjectVersions, and the S3 answers that
//! versions and delete markers call for. The rules live in the metadata service (`versions.rs`).

use coffer_proto::pb::metadata::{
    GetBucketRequest, ListObjectVersionsRequest, ObjectRecord, SetBucketVersioningRequest, Versioning,
};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::convert::{etag, invalid_argument, owner, remote, timestamp};
use super::list::url_encode;

const MAX_KEYS: i32 = 1000;

/// The version id a response names: none for objects of buckets never versioned.
pub(super) fn shown_id(record: &ObjectRecord) -> Option<String> {
    (!record.version_id.is_empty()).then(|| record.version_id.clone())
}

pub(super) fn no_such_version() -> S3Error {
    S3Error::with_message(S3ErrorCode::NoSuchVersion, "The specified version does not exist.")
}

pub(super) fn mfa_not_implemented() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NotImplemented,
        "A header you provided implies functionality that is not implemented: MFA delete",
    )
}

/// A read that found a delete marker: 404 NoSuchKey for the current version, 405 when the marker
/// was named by version id; either way with `x-amz-delete-marker: true` and the marker's id.
pub(super) fn delete_marker_error(marker: &ObjectRecord, by_version: bool) -> S3Error {
    let mut error = if by_version {
        let mut e = S3Error::with_message(
            S3ErrorCode::MethodNotAllowed,
            "The specified method is not allowed against this resource.",
        );
        e.set_status_code(http::StatusCode::METHOD_NOT_ALLOWED);
        e
    } else {
        S3Error::with_message(S3ErrorCode::NoSuchKey, "The specified key does not exist.")
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
    if let Ok(id) = http::HeaderValue::from_str(&marker.version_id) {
        headers.insert("x-amz-version-id", id);
    }
    error.set_headers(headers);
    error
}

impl CofferS3 {
    pub(super) async fn do_get_bucket_versioning(
        &self,
        input: GetBucketVersioningInput,
    ) -> S3Result<GetBucketVersioningOutput> {
        let request = GetBucketRequest { name: input.bucket };
        let bucket = remote(self.plane.metadata.rpc().get_bucket(request).await)?.bucket.unwrap_or_default();
        // A bucket never versioned answers an empty configuration, as S3 does.
        let status = match bucket.versioning() {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
        };
        Ok(GetBucketVersioningOutput { status, mfa_delete: None })
    }

    pub(super) async fn do_put_bucket_versioning(
        &self,
        input: PutBucketVersioningInput,
    ) -> S3Result<PutBucketVersioningOutput> {
        let config = input.versioning_configuration;
        if input.mfa.is_some() || config.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
            return Err(mfa_not_implemented());
        }
        let versioning = match config.status.as_ref().map(BucketVersioningStatus::as_str) {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                // What S3 answers for a Status other than Enabled or Suspended.
                return Err(S3Error::with_message(
                    S3ErrorCode::MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema",
                ));
            }
        };
        let request = SetBucketVersioningRequest { name: input.bucket, versioning: versioning as i32 };
        remote(self.plane.metadata.rpc().set_bucket_versioning(request).await)?;
        Ok(PutBucketVersioningOutput::default())
    }

    pub(super) async fn do_list_object_versions(
        &self,
        input: ListObjectVersionsInput,
    ) -> S3Result<ListObjectVersionsOutput> {
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        if max_keys < 0 {
            return Err(invalid_argument("max-keys must be a non-negative integer"));
        }
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let version_id_marker = input.version_id_marker.clone().unwrap_or_default();
        if key_marker.is_empty() && !version_id_marker.is_empty() {
            return Err(invalid_argument("A version-id marker cannot be specified without a key marker."));
        }
        let url = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
        let request = ListObjectVersionsRequest {
            bucket: input.bucket.clone(),
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().unwrap_or_default(),
            key_marker,
            version_id_marker,
            max_keys: max_keys.min(MAX_KEYS) as u32,
            start_at: String::new(),
        };
        let response = remote(self.plane.listings.list_object_versions(request).await)?;
        let owner = owner(&self.root_access_key);
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for entry in response.versions {
            let Some(record) = entry.record else { continue };
            if record.delete_marker {
                markers.push(DeleteMarkerEntry {
                    is_latest: Some(entry.is_latest),
                    key: Some(enc(&record.key)),
                    last_modified: Some(timestamp(record.last_modified_unix_ms)),
                    owner: Some(owner.clone()),
                    version_id: Some(record.version_id),
                });
            } else {
                let class = if record.storage_class.is_empty() { "STANDARD".to_string() } else { record.storage_class };
                versions.push(ObjectVersion {
                    e_tag: Some(etag(&record.etag)),
                    is_latest: Some(entry.is_latest),
                    key: Some(enc(&record.key)),
                    last_modified: Some(timestamp(record.last_modified_unix_ms)),
                    owner: Some(owner.clone()),
                    size: Some(record.size as i64),
                    storage_class: Some(ObjectVersionStorageClass::from(class)),
                    version_id: Some(record.version_id),
                    ..Default::default()
                });
            }
        }
        let truncated = response.is_truncated;
        Ok(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(input.prefix.as_deref().unwrap_or_default())),
            delimiter: input.delimiter.as_deref().map(enc),
            key_marker: Some(enc(input.key_marker.as_deref().unwrap_or_default())),
            version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
            max_keys: Some(max_keys),
            is_truncated: Some(truncated),
            next_key_marker: truncated.then(|| enc(&response.next_key_marker)),
            next_version_id_marker: (truncated && !response.next_version_id_marker.is_empty())
                .then_some(response.next_version_id_marker),
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(
                response.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect(),
            ),
            encoding_type: input.encoding_type,
            ..Default::default()
        })
    }
}
