//! The S3 operation a request asks for, from its method, addressing and query — just enough to
//! label metrics (`op`) with AWS's operation names. Unknown shapes are `Other`, so the label set
//! stays small whatever clients send.

use http::Method;

/// What the request addresses: the service, a bucket, or an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Service,
    Bucket,
    Object,
}

/// Splits a path-style or virtual-hosted request into its target.
pub fn target(path: &str, bucket_in_host: bool) -> Target {
    let path = path.trim_start_matches('/');
    if bucket_in_host {
        return if path.is_empty() { Target::Bucket } else { Target::Object };
    }
    match path.split_once('/') {
        None if path.is_empty() => Target::Service,
        None => Target::Bucket,
        Some((_, "")) => Target::Bucket,
        Some(_) => Target::Object,
    }
}

fn has(query: &str, name: &str) -> bool {
    query.split('&').any(|pair| pair.split('=').next() == Some(name))
}

/// Bucket subresources with their own Get/Put/Delete operations.
const BUCKET_SUBRESOURCES: [(&str, &str); 12] = [
    ("acl", "Acl"),
    ("cors", "Cors"),
    ("encryption", "Encryption"),
    ("lifecycle", "LifecycleConfiguration"),
    ("location", "Location"),
    ("notification", "NotificationConfiguration"),
    ("object-lock", "ObjectLockConfiguration"),
    ("policy", "Policy"),
    ("publicAccessBlock", "PublicAccessBlock"),
    ("replication", "Replication"),
    ("tagging", "Tagging"),
    ("versioning", "Versioning"),
];

fn bucket_subresource(method: &Method, query: &str) -> Option<&'static str> {
    let (_, suffix) = BUCKET_SUBRESOURCES.iter().find(|(name, _)| has(query, name))?;
    let name = match (method.as_str(), *suffix) {
        ("GET", "Acl") => "GetBucketAcl",
        ("GET", "Cors") => "GetBucketCors",
        ("GET", "Encryption") => "GetBucketEncryption",
        ("GET", "LifecycleConfiguration") => "GetBucketLifecycleConfiguration",
        ("GET", "Location") => "GetBucketLocation",
        ("GET", "NotificationConfiguration") => "GetBucketNotificationConfiguration",
        ("GET", "ObjectLockConfiguration") => "GetObjectLockConfiguration",
        ("GET", "Policy") => "GetBucketPolicy",
        ("GET", "PublicAccessBlock") => "GetPublicAccessBlock",
        ("GET", "Replication") => "GetBucketReplication",
        ("GET", "Tagging") => "GetBucketTagging",
        ("GET", "Versioning") => "GetBucketVersioning",
        ("PUT", "Acl") => "PutBucketAcl",
        ("PUT", "Cors") => "PutBucketCors",
        ("PUT", "Encryption") => "PutBucketEncryption",
        ("PUT", "LifecycleConfiguration") => "PutBucketLifecycleConfiguration",
        ("PUT", "NotificationConfiguration") => "PutBucketNotificationConfiguration",
        ("PUT", "ObjectLockConfiguration") => "PutObjectLockConfiguration",
        ("PUT", "Policy") => "PutBucketPolicy",
        ("PUT", "PublicAccessBlock") => "PutPublicAccessBlock",
        ("PUT", "Replication") => "PutBucketReplication",
        ("PUT", "Tagging") => "PutBucketTagging",
        ("PUT", "Versioning") => "PutBucketVersioning",
        ("DELETE", "Cors") => "DeleteBucketCors",
        ("DELETE", "Encryption") => "DeleteBucketEncryption",
        ("DELETE", "LifecycleConfiguration") => "DeleteBucketLifecycle",
        ("DELETE", "Policy") => "DeleteBucketPolicy",
        ("DELETE", "PublicAccessBlock") => "DeletePublicAccessBlock",
        ("DELETE", "Replication") => "DeleteBucketReplication",
        ("DELETE", "Tagging") => "DeleteBucketTagging",
        _ => "Other",
    };
    Some(name)
}

/// The AWS name of the operation (`GetObject`, `UploadPart`, …), or `Other`.
pub fn name(method: &Method, target: Target, query: &str, copy_source: bool) -> &'static str {
    let m = method.as_str();
    // CORS preflights, answered at the edge (`s3::cors`).
    if m == "OPTIONS" {
        return "PreflightRequest";
    }
    match target {
        Target::Service => match m {
            "GET" => "ListBuckets",
            "POST" if has(query, "Action") => "STS",
            _ => "Other",
        },
        Target::Bucket => {
            if let Some(name) = bucket_subresource(method, query) {
                return name;
            }
            match m {
                "GET" if has(query, "uploads") => "ListMultipartUploads",
                "GET" if has(query, "versions") => "ListObjectVersions",
                "GET" if query.contains("list-type=2") => "ListObjectsV2",
                "GET" => "ListObjects",
                "HEAD" => "HeadBucket",
                "PUT" => "CreateBucket",
                "DELETE" => "DeleteBucket",
                "POST" if has(query, "delete") => "DeleteObjects",
                "POST" => "PostObject",
                _ => "Other",
            }
        }
        Target::Object => match m {
            "GET" if has(query, "uploadId") => "ListParts",
            "GET" if has(query, "tagging") => "GetObjectTagging",
            "GET" if has(query, "acl") => "GetObjectAcl",
            "GET" if has(query, "attributes") => "GetObjectAttributes",
            "GET" if has(query, "retention") => "GetObjectRetention",
            "GET" if has(query, "legal-hold") => "GetObjectLegalHold",
            "GET" => "GetObject",
            "HEAD" => "HeadObject",
            "PUT" if has(query, "uploadId") && copy_source => "UploadPartCopy",
            "PUT" if has(query, "uploadId") => "UploadPart",
            "PUT" if has(query, "tagging") => "PutObjectTagging",
            "PUT" if has(query, "acl") => "PutObjectAcl",
            "PUT" if has(query, "retention") => "PutObjectRetention",
            "PUT" if has(query, "legal-hold") => "PutObjectLegalHold",
            "PUT" if copy_source => "CopyObject",
            "PUT" => "PutObject",
            "DELETE" if has(query, "uploadId") => "AbortMultipartUpload",
            "DELETE" if has(query, "tagging") => "DeleteObjectTagging",
            "DELETE" => "DeleteObject",
            "POST" if has(query, "uploads") => "CreateMultipartUpload",
            "POST" if has(query, "uploadId") => "CompleteMultipartUpload",
            _ => "Other",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: Method, path: &str, query: &str) -> &'static str {
        name(&method, target(path, false), query, false)
    }

    #[test]
    fn common_requests_get_their_aws_names() {
        assert_eq!(op(Method::GET, "/", ""), "ListBuckets");
        assert_eq!(op(Method::PUT, "/b", ""), "CreateBucket");
        assert_eq!(op(Method::GET, "/b/", "list-type=2&prefix=a"), "ListObjectsV2");
        assert_eq!(op(Method::GET, "/b", "location"), "GetBucketLocation");
        assert_eq!(op(Method::POST, "/b", "delete"), "DeleteObjects");
        assert_eq!(op(Method::GET, "/b/k/x", ""), "GetObject");
        assert_eq!(op(Method::PUT, "/b/k", "partNumber=1&uploadId=u"), "UploadPart");
        assert_eq!(op(Method::POST, "/b/k", "uploads"), "CreateMultipartUpload");
        assert_eq!(op(Method::POST, "/b/k", "uploadId=u"), "CompleteMultipartUpload");
        assert_eq!(op(Method::DELETE, "/b/k", "uploadId=u"), "AbortMultipartUpload");
        assert_eq!(name(&Method::PUT, Target::Object, "", true), "CopyObject");
        assert_eq!(op(Method::PATCH, "/b/k", ""), "Other");
        assert_eq!(op(Method::OPTIONS, "/b/k", ""), "PreflightRequest");
    }

    #[test]
    fn virtual_hosted_requests_address_the_host_bucket() {
        assert_eq!(target("/", true), Target::Bucket);
        assert_eq!(target("/key", true), Target::Object);
        assert_eq!(target("/bucket", false), Target::Bucket);
        assert_eq!(target("/", false), Target::Service);
    }
}
