//! The S3 API: s3s parses and authenticates, these handlers do the work. The trait impl below
//! only dispatches; each operation family lives in its own file.

pub(crate) mod acl;
mod attributes;
mod bucket;
pub(crate) mod bucket_config;
mod checksums;
mod conditions;
pub(crate) mod convert;
pub(crate) mod cors;
pub(crate) mod edge;
mod lifecycle;
mod list;
mod multipart;
mod notification;
mod object;
mod object_checksum;
mod object_lock;
mod policy;
pub(crate) mod post_form;
pub(crate) mod public_access;
pub(crate) mod sse;
mod tagging;
mod versioning;
pub(crate) mod xml_order;

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::authz::Authorizer;
use crate::dataplane::DataPlane;

/// The S3 backend. Cheap to clone.
#[derive(Clone)]
pub struct CofferS3 {
    pub(crate) plane: DataPlane,
    pub(crate) region: String,
    pub(crate) root_access_key: String,
    pub(crate) authorizer: Authorizer,
    /// Server-side encryption keys (SSE-S3 master keys, the SSE-KMS provider).
    pub(crate) sse: std::sync::Arc<crate::sse::keys::SseKeys>,
}

impl CofferS3 {
    pub fn new(plane: DataPlane, region: String, root_access_key: String, authorizer: Authorizer) -> Self {
        let sse = std::sync::Arc::new(crate::sse::keys::SseKeys { master: Default::default(), kms: None });
        CofferS3 { plane, region, root_access_key, authorizer, sse }
    }

    /// Sets the server-side encryption keys (none at all until then: SSE requests fail).
    pub fn with_sse(mut self, keys: crate::sse::keys::SseKeys) -> Self {
        self.sse = std::sync::Arc::new(keys);
        self
    }
}

type Res<T> = S3Result<S3Response<T>>;

/// In a PutObject's extensions: the body's length is not known in advance and that is fine (a
/// Swift PUT with `Transfer-Encoding: chunked`). S3 clients must send a length (MissingContentLength).
#[derive(Debug, Clone, Copy)]
pub struct LengthUnknown;

/// The checksum part of a PutObject or UploadPart request (their inputs share the field names).
macro_rules! checksum_request {
    ($req:expr) => {{
        let i = &$req.input;
        checksums::ChecksumRequest::from_request(
            i.checksum_algorithm.as_ref(),
            [
                i.checksum_crc32.as_ref(),
                i.checksum_crc32c.as_ref(),
                i.checksum_crc64nvme.as_ref(),
                i.checksum_sha1.as_ref(),
                i.checksum_sha256.as_ref(),
            ],
            &$req.headers,
            $req.trailing_headers.clone(),
        )
    }};
}

#[async_trait::async_trait]
impl S3 for CofferS3 {
    async fn put_bucket_encryption(&self, req: S3Request<PutBucketEncryptionInput>) -> Res<PutBucketEncryptionOutput> {
        self.do_put_bucket_encryption(req.input).await.map(S3Response::new)
    }
    async fn get_bucket_encryption(&self, req: S3Request<GetBucketEncryptionInput>) -> Res<GetBucketEncryptionOutput> {
        self.do_get_bucket_encryption(req.input).await.map(S3Response::new)
    }
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> Res<DeleteBucketEncryptionOutput> {
        self.do_delete_bucket_encryption(req.input).await.map(S3Response::new)
    }
    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> Res<PutBucketLifecycleConfigurationOutput> {
        self.do_put_bucket_lifecycle_configuration(req.input).await.map(S3Response::new)
    }
    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> Res<GetBucketLifecycleConfigurationOutput> {
        self.do_get_bucket_lifecycle_configuration(req.input).await.map(S3Response::new)
    }
    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> Res<DeleteBucketLifecycleOutput> {
        self.do_delete_bucket_lifecycle(req.input).await.map(S3Response::new)
    }
    async fn put_bucket_notification_configuration(
        &self,
        req: S3Request<PutBucketNotificationConfigurationInput>,
    ) -> Res<PutBucketNotificationConfigurationOutput> {
        self.do_put_bucket_notification_configuration(req.input).await.map(S3Response::new)
    }
    async fn get_bucket_notification_configuration(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> Res<GetBucketNotificationConfigurationOutput> {
        self.do_get_bucket_notification_configuration(req.input).await.map(S3Response::new)
    }
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> Res<PutObjectLockConfigurationOutput> {
        self.do_put_object_lock_configuration(req.input).await.map(S3Response::new)
    }
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> Res<GetObjectLockConfigurationOutput> {
        self.do_get_object_lock_configuration(req.input).await.map(S3Response::new)
    }
    async fn put_object_retention(&self, req: S3Request<PutObjectRetentionInput>) -> Res<PutObjectRetentionOutput> {
        let (requested, bucket, key) = (req.input.bypass_governance_retention, &req.input.bucket, &req.input.key);
        let bypass = self.may_bypass_governance(&req, requested, bucket, &[key]).await?;
        self.do_put_object_retention(req.input, bypass).await.map(S3Response::new)
    }
    async fn get_object_retention(&self, req: S3Request<GetObjectRetentionInput>) -> Res<GetObjectRetentionOutput> {
        self.do_get_object_retention(req.input).await.map(S3Response::new)
    }
    async fn put_object_legal_hold(&self, req: S3Request<PutObjectLegalHoldInput>) -> Res<PutObjectLegalHoldOutput> {
        self.do_put_object_legal_hold(req.input).await.map(S3Response::new)
    }
    async fn get_object_legal_hold(&self, req: S3Request<GetObjectLegalHoldInput>) -> Res<GetObjectLegalHoldOutput> {
        self.do_get_object_legal_hold(req.input).await.map(S3Response::new)
    }
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> Res<ListBucketsOutput> {
        let signer = self.authorizer.signer_of(&req)?;
        self.do_list_buckets(&signer).await.map(S3Response::new)
    }
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> Res<CreateBucketOutput> {
        let signer = self.authorizer.signer_of(&req)?;
        let settings = self.new_bucket_settings(&req.input, signer.owner_name())?;
        let bucket = req.input.bucket.clone();
        let output = self.do_create_bucket(&signer, req.input).await?;
        self.apply_new_bucket_settings(&bucket, settings).await?;
        Ok(S3Response::new(output))
    }
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> Res<HeadBucketOutput> {
        self.do_head_bucket(req.input).await.map(S3Response::new)
    }
    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> Res<DeleteBucketOutput> {
        self.do_delete_bucket(req.input).await.map(S3Response::new)
    }
    async fn get_bucket_location(&self, req: S3Request<GetBucketLocationInput>) -> Res<GetBucketLocationOutput> {
        self.do_get_bucket_location(req.input).await.map(S3Response::new)
    }
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> Res<PutObjectOutput> {
        let i = &req.input;
        let (retention, hold) = (i.object_lock_mode.is_some(), i.object_lock_legal_hold_status.is_some());
        self.require_lock_permissions(&req, &i.bucket, &i.key, retention, hold).await?;
        let decoded_length = decoded_content_length(&req.headers).or_else(|| post_form::file_length(&req));
        let length_known = decoded_length.is_some() || req.input.content_length.is_some();
        if !length_known && req.extensions.get::<LengthUnknown>().is_none() {
            return Err(s3s::S3Error::new(s3s::S3ErrorCode::MissingContentLength));
        }
        let checks = checksum_request!(req);
        let raw_expires = raw_expires(&req.extensions);
        let form = post_form::target(&req);
        // A browser form upload (POST) reaches here too; its event is ObjectCreated:Post.
        let how = if req.method == http::Method::POST { "Post" } else { "Put" };
        let write = self.do_put_object(req.input, decoded_length, checks, raw_expires);
        let output = notification::created_by(how, write).await?;
        Ok(post_form::with_headers(S3Response::new(output), form))
    }
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> Res<GetObjectOutput> {
        self.do_get_object(req.input).await.map(with_raw_expires)
    }
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> Res<HeadObjectOutput> {
        self.do_head_object(req.input).await.map(with_raw_expires)
    }
    async fn delete_object(&self, mut req: S3Request<DeleteObjectInput>) -> Res<DeleteObjectOutput> {
        let (requested, bucket, key) = (req.input.bypass_governance_retention, &req.input.bucket, &req.input.key);
        let bypass = self.may_bypass_governance(&req, requested, bucket, &[key]).await?;
        req.input.bypass_governance_retention = Some(bypass);
        self.do_delete_object(req.input).await.map(S3Response::new)
    }
    async fn delete_objects(&self, mut req: S3Request<DeleteObjectsInput>) -> Res<DeleteObjectsOutput> {
        let keys: Vec<&str> = req.input.delete.objects.iter().map(|o| o.key.as_str()).collect();
        let requested = req.input.bypass_governance_retention;
        let bypass = self.may_bypass_governance(&req, requested, &req.input.bucket, &keys).await?;
        req.input.bypass_governance_retention = Some(bypass);
        let body_md5 = req.extensions.get::<edge::BodyMd5>().and_then(edge::BodyMd5::digest);
        let content_md5 = req.headers.get("content-md5").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        self.do_delete_objects(req.input, content_md5.as_deref(), body_md5).await.map(S3Response::new)
    }
    async fn put_bucket_policy(&self, req: S3Request<PutBucketPolicyInput>) -> Res<PutBucketPolicyOutput> {
        self.check_policy_allowed(&req.input.bucket, &req.input.policy).await?;
        Ok(S3Response::new(self.do_put_bucket_policy(req.input).await?))
    }
    async fn get_bucket_policy(&self, req: S3Request<GetBucketPolicyInput>) -> Res<GetBucketPolicyOutput> {
        Ok(S3Response::new(self.do_get_bucket_policy(req.input).await?))
    }
    async fn delete_bucket_policy(&self, req: S3Request<DeleteBucketPolicyInput>) -> Res<DeleteBucketPolicyOutput> {
        Ok(S3Response::new(self.do_delete_bucket_policy(req.input).await?))
    }
    async fn put_bucket_cors(&self, req: S3Request<PutBucketCorsInput>) -> Res<PutBucketCorsOutput> {
        Ok(S3Response::new(self.do_put_bucket_cors(req.input).await?))
    }
    async fn get_bucket_cors(&self, req: S3Request<GetBucketCorsInput>) -> Res<GetBucketCorsOutput> {
        Ok(S3Response::new(self.do_get_bucket_cors(req.input).await?))
    }
    async fn delete_bucket_cors(&self, req: S3Request<DeleteBucketCorsInput>) -> Res<DeleteBucketCorsOutput> {
        Ok(S3Response::new(self.do_delete_bucket_cors(req.input).await?))
    }
    async fn get_bucket_acl(&self, req: S3Request<GetBucketAclInput>) -> Res<GetBucketAclOutput> {
        Ok(S3Response::new(self.do_get_bucket_acl(req.input).await?))
    }
    async fn put_bucket_acl(&self, req: S3Request<PutBucketAclInput>) -> Res<PutBucketAclOutput> {
        Ok(S3Response::new(self.do_put_bucket_acl(req.input).await?))
    }
    async fn get_object_acl(&self, req: S3Request<GetObjectAclInput>) -> Res<GetObjectAclOutput> {
        Ok(S3Response::new(self.do_get_object_acl(req.input).await?))
    }
    async fn put_object_acl(&self, req: S3Request<PutObjectAclInput>) -> Res<PutObjectAclOutput> {
        Ok(S3Response::new(self.do_put_object_acl(req.input).await?))
    }
    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> Res<PutPublicAccessBlockOutput> {
        Ok(S3Response::new(self.do_put_public_access_block(req.input).await?))
    }
    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> Res<GetPublicAccessBlockOutput> {
        Ok(S3Response::new(self.do_get_public_access_block(req.input).await?))
    }
    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> Res<DeletePublicAccessBlockOutput> {
        Ok(S3Response::new(self.do_delete_public_access_block(req.input).await?))
    }
    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> Res<PutBucketOwnershipControlsOutput> {
        Ok(S3Response::new(self.do_put_bucket_ownership_controls(req.input).await?))
    }
    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> Res<GetBucketOwnershipControlsOutput> {
        Ok(S3Response::new(self.do_get_bucket_ownership_controls(req.input).await?))
    }
    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> Res<DeleteBucketOwnershipControlsOutput> {
        Ok(S3Response::new(self.do_delete_bucket_ownership_controls(req.input).await?))
    }
    async fn put_bucket_tagging(&self, req: S3Request<PutBucketTaggingInput>) -> Res<PutBucketTaggingOutput> {
        Ok(S3Response::new(self.do_put_bucket_tagging(req.input).await?))
    }

    async fn get_bucket_tagging(&self, req: S3Request<GetBucketTaggingInput>) -> Res<GetBucketTaggingOutput> {
        Ok(S3Response::new(self.do_get_bucket_tagging(req.input).await?))
    }

    async fn delete_bucket_tagging(&self, req: S3Request<DeleteBucketTaggingInput>) -> Res<DeleteBucketTaggingOutput> {
        Ok(S3Response::new(self.do_delete_bucket_tagging(req.input).await?))
    }

    async fn put_object_tagging(&self, req: S3Request<PutObjectTaggingInput>) -> Res<PutObjectTaggingOutput> {
        Ok(S3Response::new(self.do_put_object_tagging(req.input).await?))
    }

    async fn get_object_tagging(&self, req: S3Request<GetObjectTaggingInput>) -> Res<GetObjectTaggingOutput> {
        Ok(S3Response::new(self.do_get_object_tagging(req.input).await?))
    }

    async fn delete_object_tagging(&self, req: S3Request<DeleteObjectTaggingInput>) -> Res<DeleteObjectTaggingOutput> {
        Ok(S3Response::new(self.do_delete_object_tagging(req.input).await?))
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> Res<CopyObjectOutput> {
        let i = &req.input;
        let (retention, hold) = (i.object_lock_mode.is_some(), i.object_lock_legal_hold_status.is_some());
        self.require_lock_permissions(&req, &i.bucket, &i.key, retention, hold).await?;
        object::check_copy_source_query(&req.headers)?;
        let raw_expires = raw_expires(&req.extensions);
        self.do_copy_object(req.input, raw_expires).await.map(S3Response::new)
    }
    async fn get_bucket_versioning(&self, req: S3Request<GetBucketVersioningInput>) -> Res<GetBucketVersioningOutput> {
        self.do_get_bucket_versioning(req.input).await.map(S3Response::new)
    }
    async fn put_bucket_versioning(&self, req: S3Request<PutBucketVersioningInput>) -> Res<PutBucketVersioningOutput> {
        self.do_put_bucket_versioning(req.input).await.map(S3Response::new)
    }
    async fn list_object_versions(&self, req: S3Request<ListObjectVersionsInput>) -> Res<ListObjectVersionsOutput> {
        self.do_list_object_versions(req.input).await.map(S3Response::new)
    }
    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> Res<ListObjectsOutput> {
        self.do_list_objects(req.input).await.map(S3Response::new)
    }
    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> Res<ListObjectsV2Output> {
        self.do_list_objects_v2(req.input).await.map(S3Response::new)
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> Res<CreateMultipartUploadOutput> {
        let i = &req.input;
        let (retention, hold) = (i.object_lock_mode.is_some(), i.object_lock_legal_hold_status.is_some());
        self.require_lock_permissions(&req, &i.bucket, &i.key, retention, hold).await?;
        let raw_expires = raw_expires(&req.extensions);
        self.do_create_multipart_upload(req.input, raw_expires).await.map(S3Response::new)
    }
    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> Res<UploadPartOutput> {
        let decoded_length = decoded_content_length(&req.headers);
        let checks = checksum_request!(req);
        self.do_upload_part(req.input, decoded_length, checks).await.map(S3Response::new)
    }
    async fn upload_part_copy(&self, req: S3Request<UploadPartCopyInput>) -> Res<UploadPartCopyOutput> {
        object::check_copy_source_query(&req.headers)?;
        self.do_upload_part_copy(req.input).await.map(S3Response::new)
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> Res<CompleteMultipartUploadOutput> {
        self.do_complete_multipart_upload(req.input).await.map(S3Response::new)
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> Res<AbortMultipartUploadOutput> {
        self.do_abort_multipart_upload(req.input).await.map(S3Response::new)
    }
    async fn get_object_attributes(&self, req: S3Request<GetObjectAttributesInput>) -> Res<GetObjectAttributesOutput> {
        self.do_get_object_attributes(req.input).await.map(S3Response::new)
    }
    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> Res<ListPartsOutput> {
        self.do_list_parts(req.input).await.map(S3Response::new)
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> Res<ListMultipartUploadsOutput> {
        self.do_list_multipart_uploads(req.input).await.map(S3Response::new)
    }
}

/// An `Expires` header that is no date, as the edge set it aside (see `edge::RawExpires`).
fn raw_expires(extensions: &http::Extensions) -> Option<String> {
    extensions.get::<edge::RawExpires>().map(|r| r.0.clone())
}

/// A GET or HEAD response, with a stored `Expires` that is no date (s3s's typed field cannot
/// carry it) as a plain header.
fn with_raw_expires<T>((output, raw): (T, Option<String>)) -> S3Response<T> {
    let mut response = S3Response::new(output);
    if let Some(value) = raw.and_then(|r| http::HeaderValue::from_str(&r).ok()) {
        response.headers.insert(http::header::EXPIRES, value);
    }
    response
}

/// s3s leaves `content_length` empty for aws-chunked uploads; the real length is here.
fn decoded_content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get("x-amz-decoded-content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}
