//! Bucket operations.

use coffer_iam::authorize::Signer;
use coffer_proto::ErrorCode;
use coffer_proto::pb::metadata::{CreateBucketRequest, DeleteBucketRequest, GetBucketRequest, ListBucketsRequest};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::convert::{owner, remote, timestamp};
use crate::error::GatewayError;

impl CofferS3 {
    /// Only the buckets the signer owns or may list: other tenants' buckets stay invisible.
    pub(super) async fn do_list_buckets(&self, signer: &Signer) -> S3Result<ListBucketsOutput> {
        let response = remote(self.plane.metadata.rpc().list_buckets(ListBucketsRequest {}).await)?;
        let buckets = response
            .buckets
            .into_iter()
            .filter(|b| self.authorizer.may_see_bucket(signer, &b.name, &b.owner))
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_unix_ms)),
                bucket_region: Some(if b.region.is_empty() { self.region.clone() } else { b.region }),
            })
            .collect();
        Ok(ListBucketsOutput { buckets: Some(buckets), owner: Some(owner(signer.owner_name())), ..Default::default() })
    }

    /// The bucket records its creator as owner; a name another owner holds is BucketAlreadyExists.
    pub(super) async fn do_create_bucket(
        &self,
        signer: &Signer,
        input: CreateBucketInput,
    ) -> S3Result<CreateBucketOutput> {
        let request = CreateBucketRequest {
            name: input.bucket.clone(),
            owner: signer.owner_name().to_string(),
            region: self.region.clone(),
            object_lock_enabled: input.object_lock_enabled_for_bucket.unwrap_or(false),
        };
        let created = remote(self.plane.metadata.rpc().create_bucket(request).await);
        // Authorising this request may have cached "no such bucket".
        self.authorizer.owners.forget(&input.bucket);
        match created {
            Ok(_) => Ok(CreateBucketOutput { location: Some(format!("/{}", input.bucket)) }),
            Err(GatewayError::Remote(e)) if e.code == ErrorCode::BucketAlreadyOwnedByYou => {
                let existing =
                    remote(self.plane.metadata.rpc().get_bucket(GetBucketRequest { name: input.bucket }).await)?;
                let owner = existing.bucket.map(|b| b.owner).unwrap_or_default();
                if owner == signer.owner_name() {
                    Err(S3Error::with_message(S3ErrorCode::BucketAlreadyOwnedByYou, "You already own this bucket."))
                } else {
                    Err(S3Error::with_message(
                        S3ErrorCode::BucketAlreadyExists,
                        "The requested bucket name is not available.",
                    ))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn do_head_bucket(&self, input: HeadBucketInput) -> S3Result<HeadBucketOutput> {
        remote(self.plane.metadata.rpc().get_bucket(GetBucketRequest { name: input.bucket }).await)?;
        Ok(HeadBucketOutput { bucket_region: Some(self.region.clone()), ..Default::default() })
    }

    pub(super) async fn do_delete_bucket(&self, input: DeleteBucketInput) -> S3Result<DeleteBucketOutput> {
        let deleted =
            remote(self.plane.metadata.rpc().delete_bucket(DeleteBucketRequest { name: input.bucket.clone() }).await);
        self.authorizer.owners.forget(&input.bucket);
        deleted?;
        Ok(DeleteBucketOutput {})
    }

    pub(super) async fn do_get_bucket_location(
        &self,
        input: GetBucketLocationInput,
    ) -> S3Result<GetBucketLocationOutput> {
        remote(self.plane.metadata.rpc().get_bucket(GetBucketRequest { name: input.bucket }).await)?;
        // AWS reports us-east-1 as an empty LocationConstraint.
        let location_constraint =
            (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(GetBucketLocationOutput { location_constraint })
    }
}
