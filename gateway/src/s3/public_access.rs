//! PublicAccessBlock (Put/Get/DeletePublicAccessBlock, `configs["public-access-block"]`) and
//! bucket ownership controls (Put/Get/DeleteBucketOwnershipControls, `configs["ownership"]`),
//! both stored as JSON, and what they mean for ACLs and bucket policies:
//! - BlockPublicAcls: a request that would set a public ACL fails with AccessDenied;
//! - IgnorePublicAcls: public ACLs grant nothing;
//! - BlockPublicPolicy: PutBucketPolicy of a public policy fails with AccessDenied;
//! - RestrictPublicBuckets: anonymous requests get nothing from the bucket policy (every signer
//!   of this cluster belongs to the bucket owner's account);
//! - ownership `BucketOwnerEnforced`: ACLs are disabled (they grant nothing, and setting any but
//!   a private one fails with AccessControlListNotSupported).

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};
use serde::{Deserialize, Serialize};

use super::CofferS3;
use super::bucket_config::names;
use crate::owners::BucketFacts;

/// A bucket's PublicAccessBlock settings (all false when none is set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    #[serde(default)]
    pub block_public_acls: bool,
    #[serde(default)]
    pub ignore_public_acls: bool,
    #[serde(default)]
    pub block_public_policy: bool,
    #[serde(default)]
    pub restrict_public_buckets: bool,
}

impl Block {
    pub fn parse(bytes: &[u8]) -> Block {
        serde_json::from_slice(bytes).unwrap_or_else(|e| {
            // Fails closed: a configuration this gateway cannot read blocks everything it could.
            tracing::error!(error = %e, "stored PublicAccessBlock does not parse; blocking all public access");
            Block {
                block_public_acls: true,
                ignore_public_acls: true,
                block_public_policy: true,
                restrict_public_buckets: true,
            }
        })
    }

    pub fn of(facts: &BucketFacts) -> Block {
        facts.config(names::PUBLIC_ACCESS_BLOCK).map(Block::parse).unwrap_or_default()
    }
}

/// Whether a bucket's ownership controls disable ACLs (`BucketOwnerEnforced`).
pub fn acls_disabled(facts: &BucketFacts) -> bool {
    facts.config(names::OWNERSHIP).is_some_and(|v| v == ObjectOwnership::BUCKET_OWNER_ENFORCED.as_bytes())
}

/// Whether an anonymous request may be allowed by the bucket policy: not when
/// RestrictPublicBuckets is set and the policy is public.
pub fn policy_serves_anonymous(facts: &BucketFacts) -> bool {
    !Block::of(facts).restrict_public_buckets || facts.policy.as_ref().is_none_or(|p| !policy_is_public(&p.to_json()))
}

/// Condition keys that pin a statement to known callers, which makes it non-public (AWS's list).
const RESTRICTING_KEYS: [&str; 13] = [
    "aws:sourceip",
    "aws:sourcearn",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceowner",
    "aws:sourceaccount",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principalorgid",
    "aws:userid",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:dataaccesspointarn",
    "s3:dataaccesspointaccount",
];

fn is_wildcard_principal(principal: &serde_json::Value) -> bool {
    match principal {
        serde_json::Value::String(s) => s == "*",
        serde_json::Value::Array(list) => list.iter().any(is_wildcard_principal),
        serde_json::Value::Object(map) => map.values().any(is_wildcard_principal),
        _ => false,
    }
}

/// Whether a condition block restricts the statement to fixed callers: some positive operator
/// on a restricting key with values that are not themselves wildcards.
fn restricts(condition: Option<&serde_json::Value>) -> bool {
    let Some(serde_json::Value::Object(operators)) = condition else { return false };
    operators.iter().any(|(operator, block)| {
        let lower = operator.to_ascii_lowercase();
        if lower.contains("not") || lower.ends_with("ifexists") || lower == "null" {
            return false;
        }
        let serde_json::Value::Object(keys) = block else { return false };
        keys.iter().any(|(key, values)| {
            let key = key.to_ascii_lowercase();
            if !RESTRICTING_KEYS.contains(&key.as_str()) {
                return false;
            }
            let values: Vec<&str> = match values {
                serde_json::Value::String(s) => vec![s.as_str()],
                serde_json::Value::Array(list) => list.iter().filter_map(|v| v.as_str()).collect(),
                _ => vec![],
            };
            !values.is_empty()
                && values
                    .iter()
                    .all(|v| !v.contains('*') && !(key == "aws:sourceip" && (v.ends_with("/0") || v.is_empty())))
        })
    })
}

/// Whether a bucket policy is public as AWS defines it: some Allow statement names every
/// principal (or uses NotPrincipal) without a condition that pins it to fixed callers.
pub fn policy_is_public(text: &str) -> bool {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else { return false };
    let statements = match &json["Statement"] {
        serde_json::Value::Array(list) => list.clone(),
        single => vec![single.clone()],
    };
    statements.iter().any(|s| {
        s.get("Effect").and_then(|e| e.as_str()) == Some("Allow")
            && (s.get("NotPrincipal").is_some() || s.get("Principal").is_some_and(is_wildcard_principal))
            && !restricts(s.get("Condition"))
    })
}

fn denied(message: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, message.to_string())
}

impl CofferS3 {
    /// The cached facts of `bucket`; NoSuchBucket when there is none.
    pub(super) async fn facts_of(&self, bucket: &str) -> S3Result<BucketFacts> {
        self.authorizer
            .owners
            .facts(bucket)
            .await?
            .ok_or_else(|| S3Error::with_message(S3ErrorCode::NoSuchBucket, "The specified bucket does not exist"))
    }

    /// Refuses a public bucket policy where BlockPublicPolicy is set (before it is stored).
    pub(super) async fn check_policy_allowed(&self, bucket: &str, policy: &str) -> S3Result<()> {
        self.authorizer.owners.forget(bucket);
        let facts = self.facts_of(bucket).await?;
        if Block::of(&facts).block_public_policy && policy_is_public(policy) {
            return Err(denied("Access Denied"));
        }
        Ok(())
    }

    pub(super) async fn do_put_public_access_block(
        &self,
        input: PutPublicAccessBlockInput,
    ) -> S3Result<PutPublicAccessBlockOutput> {
        let c = input.public_access_block_configuration;
        let block = Block {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        };
        let bytes =
            serde_json::to_vec(&block).map_err(|e| S3Error::with_message(S3ErrorCode::InternalError, e.to_string()))?;
        self.set_bucket_config(&input.bucket, names::PUBLIC_ACCESS_BLOCK, Some(bytes)).await?;
        Ok(PutPublicAccessBlockOutput {})
    }

    pub(super) async fn do_get_public_access_block(
        &self,
        input: GetPublicAccessBlockInput,
    ) -> S3Result<GetPublicAccessBlockOutput> {
        let Some(bytes) = self.bucket_config(&input.bucket, names::PUBLIC_ACCESS_BLOCK).await? else {
            // s3s has no variant for this code.
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
                "The public access block configuration was not found",
            );
            e.set_status_code(http::StatusCode::NOT_FOUND);
            return Err(e);
        };
        let b = Block::parse(&bytes);
        Ok(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(PublicAccessBlockConfiguration {
                block_public_acls: Some(b.block_public_acls),
                ignore_public_acls: Some(b.ignore_public_acls),
                block_public_policy: Some(b.block_public_policy),
                restrict_public_buckets: Some(b.restrict_public_buckets),
            }),
        })
    }

    pub(super) async fn do_delete_public_access_block(
        &self,
        input: DeletePublicAccessBlockInput,
    ) -> S3Result<DeletePublicAccessBlockOutput> {
        self.set_bucket_config(&input.bucket, names::PUBLIC_ACCESS_BLOCK, None).await?;
        Ok(DeletePublicAccessBlockOutput {})
    }

    pub(super) async fn do_put_bucket_ownership_controls(
        &self,
        input: PutBucketOwnershipControlsInput,
    ) -> S3Result<PutBucketOwnershipControlsOutput> {
        let [rule] = input.ownership_controls.rules.as_slice() else {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        };
        let value = rule.object_ownership.as_str();
        if ![
            ObjectOwnership::BUCKET_OWNER_ENFORCED,
            ObjectOwnership::BUCKET_OWNER_PREFERRED,
            ObjectOwnership::OBJECT_WRITER,
        ]
        .contains(&value)
        {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        }
        if value == ObjectOwnership::BUCKET_OWNER_ENFORCED {
            let acl = self.bucket_config(&input.bucket, names::ACL).await?;
            if acl.as_deref().map(super::acl::Canned::stored).is_some_and(|c| c.grants_others()) {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidBucketAclWithObjectOwnership,
                    "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
                ));
            }
        }
        self.set_bucket_config(&input.bucket, names::OWNERSHIP, Some(value.as_bytes().to_vec())).await?;
        Ok(PutBucketOwnershipControlsOutput {})
    }

    pub(super) async fn do_get_bucket_ownership_controls(
        &self,
        input: GetBucketOwnershipControlsInput,
    ) -> S3Result<GetBucketOwnershipControlsOutput> {
        let Some(bytes) = self.bucket_config(&input.bucket, names::OWNERSHIP).await? else {
            return Err(S3Error::with_message(
                S3ErrorCode::OwnershipControlsNotFoundError,
                "The bucket ownership controls were not found",
            ));
        };
        let value = String::from_utf8_lossy(&bytes).into_owned();
        Ok(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(OwnershipControls {
                rules: vec![OwnershipControlsRule { object_ownership: ObjectOwnership::from(value) }],
            }),
        })
    }

    pub(super) async fn do_delete_bucket_ownership_controls(
        &self,
        input: DeleteBucketOwnershipControlsInput,
    ) -> S3Result<DeleteBucketOwnershipControlsOutput> {
        self.set_bucket_config(&input.bucket, names::OWNERSHIP, None).await?;
        Ok(DeleteBucketOwnershipControlsOutput {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_policies_are_recognised() {
        let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        assert!(policy_is_public(public));
        assert!(policy_is_public(&public.replace(r#""Principal":"*""#, r#""Principal":{"AWS":["*"]}"#)));
        assert!(!policy_is_public(
            &public.replace(r#""Principal":"*""#, r#""Principal":{"AWS":"arn:aws:iam::1:user/a"}"#)
        ));
        assert!(!policy_is_public(&public.replace("Allow", "Deny")));
        let pinned =
            public.replace(r#""Resource""#, r#""Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}},"Resource""#);
        assert!(!policy_is_public(&pinned));
        let open =
            public.replace(r#""Resource""#, r#""Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}},"Resource""#);
        assert!(policy_is_public(&open));
        let negated =
            public.replace(r#""Resource""#, r#""Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}},"Resource""#);
        assert!(policy_is_public(&negated));
        let other_key =
            public.replace(r#""Resource""#, r#""Condition":{"StringEquals":{"s3:prefix":"home/"}},"Resource""#);
        assert!(policy_is_public(&other_key));
        assert!(!policy_is_public("not json"));
    }

    #[test]
    fn unreadable_blocks_fail_closed() {
        assert_eq!(Block::parse(b"{}"), Block::default());
        let b = Block::parse(b"garbage");
        assert!(b.block_public_acls && b.ignore_public_acls && b.block_public_policy && b.restrict_public_buckets);
        let stored = Block { ignore_public_acls: true, ..Default::default() };
        assert_eq!(Block::parse(&serde_json::to_vec(&stored).unwrap()), stored);
    }
}
