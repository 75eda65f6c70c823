//! The AWS IAM policy language: parsing policy documents and evaluating them against
//! requests. Pure: no I/O, no clock, no global state.
//!
//! ```
//! use coffer_iam::policy::{Decision, Policy, PrincipalId, RequestContext};
//!
//! let policy = Policy::parse(r#"{
//!     "Version": "2012-10-17",
//!     "Statement": [{
//!         "Effect": "Allow",
//!         "Action": ["s3:GetObject", "s3:PutObject"],
//!         "Resource": "arn:aws:s3:::team-a/home/${aws:username}/*"
//!     }]
//! }"#)?;
//! let alice = PrincipalId::user("123456789012", "alice", "AKIAALICE");
//! let own = RequestContext::new("s3:GetObject", "arn:aws:s3:::team-a/home/alice/notes.txt")
//!     .with_principal(alice.clone());
//! let other = RequestContext::new("s3:GetObject", "arn:aws:s3:::team-a/home/bob/notes.txt")
//!     .with_principal(alice);
//! assert_eq!(policy.evaluate(&own), Decision::Allow);
//! assert_eq!(policy.evaluate(&other), Decision::NotApplicable);
//! # Ok::<(), coffer_iam::policy::PolicyError>(())
//! ```
//!
//! # Elements
//! `Version` (`2012-10-17`, `2008-10-17` or absent), `Id`, `Statement` (one object or an
//! array) with `Sid`, `Effect`, `Principal`/`NotPrincipal` (`"*"`, `{"AWS": ...}`,
//! `{"CanonicalUser": ...}`), `Action`/`NotAction`, `Resource`/`NotResource` and `Condition`.
//! Actions match without regard to case, resources with; both take `*` and `?`. Resource
//! ARNs match part by part, as in AWS. Unknown elements are errors, never ignored.
//!
//! # Identity and resource policies
//! A statement without a `Principal` applies to whoever sent the request, which is what an
//! identity policy means: evaluate a user's policies with [`Policy::evaluate`] and no
//! further argument. [`Policy::parse_as`] with [`PolicyKind::Identity`] refuses statements
//! naming a principal, and with [`PolicyKind::Resource`] (bucket policies) refuses
//! statements that do not.
//!
//! # Condition operators
//! `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`, `StringNotEqualsIgnoreCase`,
//! `StringLike`, `StringNotLike`, `NumericEquals`, `NumericNotEquals`, `NumericLessThan`,
//! `NumericLessThanEquals`, `NumericGreaterThan`, `NumericGreaterThanEquals`, `DateEquals`,
//! `DateNotEquals`, `DateLessThan`, `DateLessThanEquals`, `DateGreaterThan`,
//! `DateGreaterThanEquals`, `Bool`, `BinaryEquals`, `IpAddress`, `NotIpAddress`, `ArnEquals`,
//! `ArnLike`, `ArnNotEquals`, `ArnNotLike` and `Null`; each (but `Null`) with the `IfExists`
//! suffix and the `ForAllValues:` / `ForAnyValue:` prefixes.
//!
//! Operators and the keys within one operator AND together; the values of one key OR
//! together (for negated operators: none may match). A missing key fails positive operators
//! and passes negated ones; `...IfExists` passes when the key is missing; `ForAllValues:` is
//! true and `ForAnyValue:` false over a missing key.
//!
//! # Condition keys
//! Any key is accepted; the gateway decides which it fills in, typically `aws:SourceIp`,
//! `aws:SecureTransport`, `aws:CurrentTime`, `aws:EpochTime` ([`RequestContext::with_time`]),
//! `aws:username` ([`RequestContext::with_principal`]), `aws:userid`, `aws:PrincipalType`,
//! `aws:Referer`, `aws:UserAgent`, `s3:prefix`, `s3:delimiter`, `s3:max-keys`, `s3:x-amz-acl`,
//! `s3:x-amz-*` headers and `s3:ExistingObjectTag/<tag>`. Key names ignore case except after
//! the first `/` (tag names keep theirs).
//!
//! # Policy variables
//! `${key}` in `Resource`, `NotResource` and string or ARN condition values is replaced by the
//! request's value of `key`, taken literally (a user named `*` is not a wildcard);
//! `${key, 'default'}` supplies a fallback; `${*}`, `${?}` and `${$}` write those characters.
//! As in AWS, variables are recognised only in `"Version": "2012-10-17"` policies.
//!
//! # Deviations from AWS
//! - A request for no particular resource (`*`, e.g. `s3:ListAllMyBuckets`) is matched as
//!   `arn:aws:<service>:::*`, so MinIO-style `arn:aws:s3:::*` grants it as well as `*` does.
//! - `Resource` may be left out when no `s3:` action is covered (`admin:*`, `sts:*`), as in
//!   MinIO's canned policies; it then covers every resource.
//! - Only `AWS` and `CanonicalUser` principals exist; `Service` and `Federated` are refused.
//!   An `AWS` value matches the principal's ARN, user name, access key, or account (bare ID
//!   or `arn:aws:iam::<account>:root`), compared exactly (no wildcards but a lone `*`).
//! - A variable the request cannot fill (key missing or multi-valued) makes the one pattern
//!   or condition value containing it match nothing. Under `Resource` or a positive operator
//!   that means the statement does not apply; under `NotResource` or a negated operator the
//!   inversion still applies, so a `Deny` built on `NotResource`/`StringNotLike` keeps denying.
//! - `BinaryEquals` compares the bytes of base64 in the policy with base64 in the request
//!   value (context values are strings).
//! - Numbers compare as `f64`; dates at nanosecond precision.
//! - Condition values that do not parse as the operator's type (a `NumericEquals` value of
//!   `"ten"`) are refused when the policy is stored rather than failing at request time;
//!   request values that do not parse match no policy value.

mod action;
mod arn;
mod builtin;
mod condition;
mod context;
mod document;
mod error;
mod evaluate;
mod json;
mod principal;
mod resource;
mod statement;
mod template;

#[cfg(test)]
mod tests;

pub use builtin::{BUILTIN_NAMES, builtin, builtin_document};
pub use context::RequestContext;
pub use document::{CURRENT_VERSION, Policy, PolicyKind};
pub use error::PolicyError;
pub use evaluate::{Decision, evaluate_all};
pub use principal::PrincipalId;
pub use statement::{Effect, Statement};
