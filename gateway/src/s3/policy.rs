//! Bucket policies: Put/Get/DeleteBucketPolicy. Documents are validated as AWS resource policies
//! (every statement names a principal) and stored as given; `authz` evaluates them on every
//! request together with the signer's identity policies, anonymous requests included.

use coffer_iam::policy::{Policy, PolicyKind};
use coffer_proto::pb::metadata::{GetBucketRequest, SetBucketPolicyRequest};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::convert::remote;

/// AWS's limit on a bucket policy document.
const MAX_POLICY_BYTES: usize = 20 * 1024;

fn malformed(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::MalformedPolicy, message.into())
}

/// Checks a bucket policy: it parses as a resource policy and names only `bucket` and its objects.
pub fn validate(bucket: &str, text: &str) -> S3Result<()> {
    if text.len() > MAX_POLICY_BYTES {
        let mut e =
            S3Error::with_message(S3ErrorCode::Custom("PolicyTooLarge".into()), "Policy exceeds the maximum size");
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        return Err(e);
    }
    Policy::parse_as(text, PolicyKind::Resource).map_err(|e| malformed(e.to_string()))?;
    let own = format!("arn:aws:s3:::{bucket}");
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    let statements = match &json["Statement"] {
        serde_json::Value::Array(list) => list.clone(),
        single => vec![single.clone()],
    };
    for statement in &statements {
        let resources = match statement.get("Resource").or_else(|| statement.get("NotResource")) {
            Some(serde_json::Value::String(r)) => vec![r.clone()],
            Some(serde_json::Value::Array(list)) => list.iter().filter_map(|r| r.as_str().map(String::from)).collect(),
            _ => vec![],
        };
        for resource in resources {
            if resource != own && !resource.starts_with(&format!("{own}/")) {
                return Err(malformed(format!("Policy has invalid resource {resource}")));
            }
        }
    }
    Ok(())
}

impl CofferS3 {
    pub(super) async fn do_put_bucket_policy(&self, input: PutBucketPolicyInput) -> S3Result<PutBucketPolicyOutput> {
        validate(&input.bucket, &input.policy)?;
        let request = SetBucketPolicyRequest { name: input.bucket.clone(), policy: input.policy };
        remote(self.plane.metadata.rpc().set_bucket_policy(request).await)?;
        self.authorizer.owners.forget(&input.bucket);
        Ok(PutBucketPolicyOutput {})
    }

    pub(super) async fn do_get_bucket_policy(&self, input: GetBucketPolicyInput) -> S3Result<GetBucketPolicyOutput> {
        let request = GetBucketRequest { name: input.bucket };
        let bucket = remote(self.plane.metadata.rpc().get_bucket(request).await)?.bucket.unwrap_or_default();
        if bucket.policy.is_empty() {
            return Err(S3Error::with_message(S3ErrorCode::NoSuchBucketPolicy, "The bucket policy does not exist"));
        }
        Ok(GetBucketPolicyOutput { policy: Some(bucket.policy) })
    }

    pub(super) async fn do_delete_bucket_policy(
        &self,
        input: DeleteBucketPolicyInput,
    ) -> S3Result<DeleteBucketPolicyOutput> {
        let request = SetBucketPolicyRequest { name: input.bucket.clone(), policy: String::new() };
        remote(self.plane.metadata.rpc().set_bucket_policy(request).await)?;
        self.authorizer.owners.forget(&input.bucket);
        Ok(DeleteBucketPolicyOutput {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_must_name_principals_and_only_their_bucket() {
        let ok = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        assert!(validate("b", ok).is_ok());
        let other = ok.replace("arn:aws:s3:::b/*", "arn:aws:s3:::other/*");
        assert_eq!(*validate("b", &other).unwrap_err().code(), S3ErrorCode::MalformedPolicy);
        let no_principal = ok.replace(r#""Principal":"*","#, "");
        assert_eq!(*validate("b", &no_principal).unwrap_err().code(), S3ErrorCode::MalformedPolicy);
        assert_eq!(*validate("b", "{not json").unwrap_err().code(), S3ErrorCode::MalformedPolicy);
    }
}
