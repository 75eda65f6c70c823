//! The canned policies every deployment has, shaped like MinIO's so that users, scripts and
//! habits carry over.

use super::Policy;

/// Names accepted by [`builtin`], in the order an admin listing shows them.
pub const BUILTIN_NAMES: &[&str] = &["readonly", "readwrite", "writeonly", "consoleAdmin", "diagnostics"];

/// Reading objects, their tags and versions, and listing buckets and uploads; not reading
/// bucket policies or other configuration that says who else may do what.
const READONLY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "s3:GetBucketLocation",
        "s3:GetBucketTagging",
        "s3:GetBucketVersioning",
        "s3:GetObject",
        "s3:GetObjectAttributes",
        "s3:GetObjectTagging",
        "s3:GetObjectVersion",
        "s3:GetObjectVersionTagging",
        "s3:ListAllMyBuckets",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "s3:ListBucketVersions",
        "s3:ListMultipartUploadParts"
      ],
      "Resource": ["arn:aws:s3:::*"]
    }
  ]
}"#;

const READWRITE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:*"],
      "Resource": ["arn:aws:s3:::*"]
    }
  ]
}"#;

/// Uploading, single-part or multipart (S3 authorises Create/UploadPart/Complete as
/// s3:PutObject). Listing an upload's parts needs its upload ID, so it reveals nothing else;
/// listing a bucket's uploads would reveal key names, so it is left out.
const WRITEONLY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      "Resource": ["arn:aws:s3:::*"]
    }
  ]
}"#;

const CONSOLE_ADMIN: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["admin:*"]
    },
    {
      "Effect": "Allow",
      "Action": ["sts:*"]
    },
    {
      "Effect": "Allow",
      "Action": ["s3:*"],
      "Resource": ["arn:aws:s3:::*"]
    }
  ]
}"#;

/// Looking at the cluster without changing it: MinIO's diagnostics set. Healing is left
/// out because it rewrites data.
const DIAGNOSTICS: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "admin:BandwidthMonitor",
        "admin:ConsoleLog",
        "admin:OBDInfo",
        "admin:Profiling",
        "admin:Prometheus",
        "admin:ServerInfo",
        "admin:ServerTrace",
        "admin:TopLocksInfo"
      ]
    }
  ]
}"#;

/// The JSON text of the canned policy called `name`.
pub fn builtin_document(name: &str) -> Option<&'static str> {
    Some(match name {
        "readonly" => READONLY,
        "readwrite" => READWRITE,
        "writeonly" => WRITEONLY,
        "consoleAdmin" => CONSOLE_ADMIN,
        "diagnostics" => DIAGNOSTICS,
        _ => return None,
    })
}

/// The canned policy called `name` (see [`BUILTIN_NAMES`]); names are case-sensitive.
pub fn builtin(name: &str) -> Option<Policy> {
    let text = builtin_document(name)?;
    // The texts are constants that the tests parse; an error here cannot depend on input.
    Policy::parse_as(text, super::PolicyKind::Identity).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Decision, PrincipalId, RequestContext};

    #[test]
    fn every_builtin_parses_as_an_identity_policy() {
        for name in BUILTIN_NAMES {
            let policy = builtin(name).unwrap_or_else(|| panic!("{name} does not parse"));
            assert!(!policy.statements().is_empty());
        }
        assert!(builtin("ReadOnly").is_none());
        assert!(builtin("root").is_none());
    }

    #[test]
    fn builtins_grant_what_their_names_say() {
        let alice = PrincipalId::user("123456789012", "alice", "alice");
        let ask = |name: &str, action: &str, resource: &str| {
            let ctx = RequestContext::new(action, resource).with_principal(alice.clone());
            builtin(name).map(|policy| policy.evaluate(&ctx))
        };
        let allow = Some(Decision::Allow);
        let none = Some(Decision::NotApplicable);
        let cases = [
            ("readonly", "s3:GetObject", "arn:aws:s3:::photos/cat.jpg", allow),
            ("readonly", "s3:ListBucket", "arn:aws:s3:::photos", allow),
            ("readonly", "s3:ListAllMyBuckets", "*", allow),
            ("readonly", "s3:GetBucketLocation", "arn:aws:s3:::photos", allow),
            ("readonly", "s3:PutObject", "arn:aws:s3:::photos/cat.jpg", none),
            ("readonly", "s3:GetBucketPolicy", "arn:aws:s3:::photos", none),
            ("readonly", "admin:ServerInfo", "*", none),
            ("readwrite", "s3:DeleteObject", "arn:aws:s3:::photos/cat.jpg", allow),
            ("readwrite", "s3:ListAllMyBuckets", "*", allow),
            ("readwrite", "admin:ServerInfo", "*", none),
            ("writeonly", "s3:PutObject", "arn:aws:s3:::photos/cat.jpg", allow),
            ("writeonly", "s3:AbortMultipartUpload", "arn:aws:s3:::photos/cat.jpg", allow),
            ("writeonly", "s3:GetObject", "arn:aws:s3:::photos/cat.jpg", none),
            ("consoleAdmin", "admin:CreateUser", "*", allow),
            ("consoleAdmin", "sts:AssumeRole", "*", allow),
            ("consoleAdmin", "s3:PutBucketPolicy", "arn:aws:s3:::photos", allow),
            ("diagnostics", "admin:ServerInfo", "*", allow),
            ("diagnostics", "admin:Prometheus", "*", allow),
            ("diagnostics", "admin:Heal", "*", none),
            ("diagnostics", "s3:GetObject", "arn:aws:s3:::photos/cat.jpg", none),
        ];
        for (name, action, resource, expected) in cases {
            assert_eq!(ask(name, action, resource), expected, "{name}: {action} on {resource}");
        }
    }
}
