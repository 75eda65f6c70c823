//! Bucket operations.

use coffer_proto::pb::metadata::{CreateBucketRequest, DeleteBucketRequest, GetBucketRequest, ListBucketsRequest};
use s3s::S3Result;
use s3s::dto::*;

use super::CofferS3;
use super::convert::{owner, remote, timestamp};

impl CofferS3 {
    pub(super) async fn do_list_buckets(&self, _input: ListBucketsInput) -> S3Result<ListBucketsOutput> {
        let response = remote(self.plane.metadata.rpc().list_buckets(ListBucketsRequest {}).await)?;
        let buckets = response
            .buckets
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_unix_ms)),
                bucket_region: Some(if b.region.is_empty() { self.region.clone() } else { b.region }),
            })
            .collect();
        Ok(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner(&self.root_access_key)),
            ..Default::default()
        })
    }

    pub(super) async fn do_create_bucket(&self, input: CreateBucketInput) -> S3Result<CreateBucketOutput> {
        let request = CreateBucketRequest {
            name: input.bucket.clone(),
            owner: self.root_access_key.clone(),
            region: self.region.clone(),
        };
        remote(self.plane.metadata.rpc().create_bucket(request).await)?;
        Ok(CreateBucketOutput { location: Some(format!("/{}", input.bucket)) })
    }

    pub(super) async fn do_head_bucket(&self, input: HeadBucketInput) -> S3Result<HeadBucketOutput> {
        remote(self.plane.metadata.rpc().get_bucket(GetBucketRequest { name: input.bucket }).await)?;
        Ok(HeadBucketOutput { bucket_region: Some(self.region.clone()), ..Default::default() })
    }

    pub(super) async fn do_delete_bucket(&self, input: DeleteBucketInput) -> S3Result<DeleteBucketOutput> {
        remote(self.plane.metadata.rpc().delete_bucket(DeleteBucketRequest { name: input.bucket }).await)?;
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
