//! Authorisation of every S3 and admin request: the signer's policies decide (see
//! `coffer_iam::authorize`). Runs after s3s verified the signature and before the handler.

use std::sync::Arc;

use coffer_iam::IdentityStore;
use coffer_iam::authorize::Signer;
use coffer_iam::policy::RequestContext;
use coffer_iam::session::is_session_key;
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{CopyObjectInput, CopySource, DeleteObjectsInput, PostObjectInput, UploadPartCopyInput};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result};

use crate::owners::BucketOwners;

/// The resource admin actions are evaluated against (MinIO's built-in admin policies name this).
const ADMIN_RESOURCE: &str = "arn:aws:s3:::*";

/// An S3 operation the gateway runs on behalf of a signer authenticated elsewhere (a Swift user).
#[derive(Clone)]
pub struct ActingAs(pub Signer);

#[derive(Clone)]
pub struct Authorizer {
    identities: Arc<IdentityStore>,
    /// For Swift accounts, which are authorised by owning the bucket.
    pub owners: BucketOwners,
    /// HTTPS on the S3 port: `aws:SecureTransport` is true for every request.
    secure_transport: bool,
    /// Keystone, whose EC2 credentials sign S3 requests as their project's Swift account.
    keystone: Option<Arc<crate::swift::keystone::Keystone>>,
}

fn denied() -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, "Access Denied")
}

pub fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

/// The IAM action of an S3 operation, where its name alone does not say it.
fn action_of(op: &str) -> String {
    let action = match op {
        "ListBuckets" => "ListAllMyBuckets",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        "HeadObject" => "GetObject",
        "CopyObject" | "CreateMultipartUpload" | "UploadPart" | "UploadPartCopy" | "CompleteMultipartUpload" => {
            "PutObject"
        }
        "ListParts" => "ListMultipartUploadParts",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "DeleteObjects" => "DeleteObject",
        "DeleteBucketTagging" => "PutBucketTagging",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "PutEncryptionConfiguration",
        "GetBucketEncryption" => "GetEncryptionConfiguration",
        "PutBucketCors" | "DeleteBucketCors" => "PutBucketCORS",
        "GetBucketCors" => "GetBucketCORS",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "PutBucketPublicAccessBlock",
        "GetPublicAccessBlock" => "GetBucketPublicAccessBlock",
        "DeleteBucketOwnershipControls" => "PutBucketOwnershipControls",
        "GetObjectAttributes" => "GetObject",
        "PutObjectLockConfiguration" => "PutBucketObjectLockConfiguration",
        "GetObjectLockConfiguration" => "GetBucketObjectLockConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "PutLifecycleConfiguration",
        "GetBucketLifecycleConfiguration" => "GetLifecycleConfiguration",
        "PutBucketNotificationConfiguration" => "PutBucketNotification",
        "GetBucketNotificationConfiguration" => "GetBucketNotification",
        other => other,
    };
    format!("s3:{action}")
}

/// The IAM action of an operation on one version (`?versionId=`), as AWS names it.
fn version_action_of(op: &str) -> String {
    match op {
        "GetObject" | "HeadObject" => "s3:GetObjectVersion".into(),
        "DeleteObject" => "s3:DeleteObjectVersion".into(),
        "GetObjectTagging" => "s3:GetObjectVersionTagging".into(),
        "PutObjectTagging" => "s3:PutObjectVersionTagging".into(),
        "DeleteObjectTagging" => "s3:DeleteObjectVersionTagging".into(),
        "GetObjectAcl" => "s3:GetObjectVersionAcl".into(),
        "PutObjectAcl" => "s3:PutObjectVersionAcl".into(),
        other => action_of(other),
    }
}

impl Authorizer {
    pub fn new(identities: Arc<IdentityStore>, secure_transport: bool, owners: BucketOwners) -> Authorizer {
        Authorizer { identities, owners, secure_transport, keystone: None }
    }

    pub fn with_keystone(mut self, keystone: Option<Arc<crate::swift::keystone::Keystone>>) -> Self {
        self.keystone = keystone;
        self
    }

    /// The signer behind a Keystone EC2 credential (looked up moments ago by `auth`): it acts on
    /// its project's account, as an admin when it holds an operator role there.
    fn keystone_signer(&self, access_key: &str) -> Option<Signer> {
        let credential = self.keystone.as_ref()?.ec2_cached(access_key)??;
        let identity = credential.identity;
        Some(Signer {
            name: format!("keystone:{}", identity.user),
            access_key: access_key.to_string(),
            account: Some(identity.account()),
            account_admin: identity.operator || identity.reseller_admin,
            ..Default::default()
        })
    }

    /// Swift's rule for a tempauth user: its account's admins may do anything to the account's
    /// containers, and create containers; other users need ACLs (not supported yet, so: nothing).
    pub async fn account_allows(&self, signer: &Signer, bucket: Option<&str>) -> S3Result<bool> {
        let Some(account) = &signer.account else { return Ok(false) };
        if !signer.account_admin {
            return Ok(false);
        }
        let Some(bucket) = bucket else { return Ok(true) };
        match self.owners.owner(bucket).await? {
            // A bucket that does not exist yet: the request will create it or answer NoSuchBucket.
            None => Ok(true),
            Some(owner) => Ok(&owner == account),
        }
    }

    /// The S3 port (and so the Swift port) serves HTTPS.
    pub fn secure_transport(&self) -> bool {
        self.secure_transport
    }

    pub fn root_access_key(&self) -> &str {
        &self.identities.root().access_key
    }

    /// The signer of a request: a long-term key, or session credentials with their token
    /// (`x-amz-security-token` header, or `X-Amz-Security-Token` in a presigned URL).
    pub fn signer(&self, access_key: &str, headers: &http::HeaderMap, uri: &http::Uri) -> S3Result<Signer> {
        if !is_session_key(access_key) {
            return self.identities.signer(access_key).or_else(|| self.keystone_signer(access_key)).ok_or_else(denied);
        }
        let token = headers
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                uri.query().and_then(|q| url_pairs(q).find(|(n, _)| n == "X-Amz-Security-Token").map(|(_, v)| v))
            })
            .ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidToken,
                    "The provided token is malformed or otherwise invalid.",
                )
            })?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.identities.session_signer(access_key, &token, now).map_err(|e| match e {
            coffer_iam::IamError::SessionExpired => {
                S3Error::with_message(S3ErrorCode::ExpiredToken, "The provided token has expired.")
            }
            other => S3Error::with_message(S3ErrorCode::InvalidToken, other.to_string()),
        })
    }

    pub fn session_key(&self) -> Option<coffer_iam::session::SessionKey> {
        self.identities.directory().session_key().cloned()
    }

    fn context(&self, action: &str, resource: &str) -> RequestContext {
        RequestContext::new(action, resource)
            .with_time(time::OffsetDateTime::now_utc())
            .with_value("aws:SecureTransport", if self.secure_transport { "true" } else { "false" })
    }

    pub fn allows(&self, signer: &Signer, ctx: RequestContext) -> bool {
        self.identities.decide(signer, ctx).is_allowed()
    }

    /// Whether `signer` may perform the admin `action`.
    pub fn allows_admin(&self, signer: &Signer, action: &str) -> bool {
        self.allows(signer, self.context(action, ADMIN_RESOURCE))
    }

    /// Whether `signer` may see `bucket` in ListBuckets: it owns it or may list it.
    pub fn may_see_bucket(&self, signer: &Signer, bucket: &str, owner: &str) -> bool {
        signer.is_root()
            || owner == signer.owner_name()
            || self.allows(signer, self.context("s3:ListBucket", &bucket_arn(bucket)))
    }

    /// Requires `ctx` to be allowed for `signer` by its identity policies or `bucket`'s policy.
    /// Requires `ctx` to be allowed for `signer` (`None`: anonymous) by its identity policies or
    /// `bucket`'s policy, or else by the ACL grant `need`.
    async fn require(
        &self,
        signer: Option<&Signer>,
        ctx: RequestContext,
        bucket: &str,
        need: Option<crate::s3::acl::Need<'_>>,
    ) -> S3Result<()> {
        let facts = self.owners.facts(bucket).await?;
        let policy = facts
            .as_ref()
            .filter(|f| signer.is_some() || crate::s3::public_access::policy_serves_anonymous(f))
            .and_then(|f| f.policy.clone());
        let decision = self.identities.decide_with(signer, ctx, policy.as_deref());
        if decision.is_allowed() {
            return Ok(());
        }
        if decision == coffer_iam::policy::Decision::NotApplicable
            && let (Some(facts), Some(need)) = (&facts, need)
            && self.acl_allows(facts, bucket, signer.is_some(), need).await?
        {
            return Ok(());
        }
        Err(denied())
    }

    /// A write that sets an ACL (`x-amz-acl`, `x-amz-grant-*`) also needs the permission to set
    /// ACLs, as in AWS: s3:PutObjectAcl, or s3:PutBucketAcl for CreateBucket.
    fn require_acl_permission(
        &self,
        signer: Option<&Signer>,
        cx: &mut S3AccessContext<'_>,
        resource: &str,
        policy: Option<&coffer_iam::policy::Policy>,
    ) -> S3Result<()> {
        let action = match cx.s3_op().name() {
            "PutObject" | "CopyObject" | "CreateMultipartUpload" => "s3:PutObjectAcl",
            "CreateBucket" => "s3:PutBucketAcl",
            _ => return Ok(()),
        };
        let sets_acl = cx.headers().keys().any(|n| n == "x-amz-acl" || n.as_str().starts_with("x-amz-grant-"));
        if !sets_acl {
            return Ok(());
        }
        let mut ctx = self.context(action, resource);
        add_request_values(&mut ctx, cx);
        if let Some(signer) = signer {
            ctx.add_value("aws:userid", signer.owner_name().to_string());
        }
        if self.identities.decide_with(signer, ctx, policy).is_allowed() { Ok(()) } else { Err(denied()) }
    }

    /// The signer of a request, or `None` for an anonymous one (which only bucket policies and
    /// ACLs can allow).
    fn signer_or_anonymous<T>(&self, req: &S3Request<T>) -> S3Result<Option<Signer>> {
        if req.credentials.is_none() && req.extensions.get::<ActingAs>().is_none() {
            return Ok(None);
        }
        self.signer_of(req).map(Some)
    }

    /// Whether `signer` may also do `action` on `bucket/key`: a permission an operation needs
    /// beyond its own (s3:BypassGovernanceRetention), by its identity policies or the bucket policy.
    pub async fn may(&self, signer: &Signer, action: &str, bucket: &str, key: &str) -> S3Result<bool> {
        if signer.is_root() {
            return Ok(true);
        }
        if signer.account.is_some() {
            return self.account_allows(signer, Some(bucket)).await;
        }
        Ok(self.require(Some(signer), self.context(action, &object_arn(bucket, key)), bucket, None).await.is_ok())
    }

    pub fn signer_of<T>(&self, req: &S3Request<T>) -> S3Result<Signer> {
        // Set only by the gateway itself (Swift runs S3 operations for its users this way); a
        // network request cannot carry a Rust value in its extensions.
        if let Some(ActingAs(signer)) = req.extensions.get::<ActingAs>() {
            return Ok(signer.clone());
        }
        let access_key = req.credentials.as_ref().map(|c| c.access_key.as_str()).ok_or_else(denied)?;
        self.signer(access_key, &req.headers, &req.uri)
    }

    async fn require_source_read(&self, signer: Option<&Signer>, source: &CopySource) -> S3Result<()> {
        match source {
            CopySource::Bucket { bucket, key, version_id } => {
                if let Some(signer) = signer.filter(|s| s.account.is_some()) {
                    return if self.account_allows(signer, Some(bucket)).await? { Ok(()) } else { Err(denied()) };
                }
                let action = if version_id.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
                let need = crate::s3::acl::Need::ObjectRead { key, version_id: version_id.as_deref() };
                self.require(signer, self.context(action, &object_arn(bucket, key)), bucket, Some(need)).await
            }
            CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => Err(denied()),
        }
    }
}

/// Condition keys taken from the request itself.
fn add_request_values(ctx: &mut RequestContext, cx: &mut S3AccessContext<'_>) {
    if let Some(query) = cx.uri().query() {
        for (name, value) in url_pairs(query) {
            match name.as_str() {
                "prefix" => ctx.add_value("s3:prefix", value),
                "delimiter" => ctx.add_value("s3:delimiter", value),
                "max-keys" => ctx.add_value("s3:max-keys", value),
                _ => {}
            }
        }
    }
    for (name, value) in cx.headers() {
        let name = name.as_str();
        let Ok(value) = value.to_str() else { continue };
        if name.starts_with("x-amz-") {
            ctx.add_value(&format!("s3:{name}"), value);
        }
        match name {
            "user-agent" => ctx.add_value("aws:UserAgent", value),
            "referer" => ctx.add_value("aws:Referer", value),
            _ => {}
        }
    }
    if let Some(addr) = cx.extensions_mut().get::<crate::http::RemoteAddr>() {
        ctx.add_value("aws:SourceIp", addr.0.ip().to_string());
    }
}

/// The `versionId` of a request's query, if any.
fn version_of(uri: &http::Uri) -> Option<String> {
    uri.query().and_then(|q| url_pairs(q).find(|(name, _)| name == "versionId").map(|(_, v)| v))
}

pub fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode =
            |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        (decode(name), decode(value))
    })
}

#[async_trait::async_trait]
impl S3Access for Authorizer {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let signer = match cx.credentials().map(|c| c.access_key.clone()) {
            Some(access_key) => {
                // s3s verified the signature but not how old a SigV2 request is; without this a
                // captured one could be replayed forever (root included).
                crate::s3::edge::check_sigv2_time(cx.headers(), time::OffsetDateTime::now_utc().unix_timestamp())?;
                Some(self.signer(&access_key, cx.headers(), cx.uri())?)
            }
            // Anonymous: only a bucket policy can allow it.
            None => None,
        };
        if signer.as_ref().is_some_and(Signer::is_root) {
            return Ok(());
        }
        if let Some(signer) = signer.as_ref().filter(|s| s.account.is_some()) {
            let bucket = match cx.s3_path() {
                S3Path::Root => None,
                S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
            };
            let op = cx.s3_op().name();
            if bucket.is_none() && op != "ListBuckets" {
                return Err(denied());
            }
            return if op == "ListBuckets" || self.account_allows(signer, bucket.as_deref()).await? {
                Ok(())
            } else {
                Err(denied())
            };
        }
        if cx.s3_op().name() == "PostObject" {
            // A form upload names its key inside the form: decided in `post_object` below.
            return Ok(());
        }
        let versioned = cx.uri().query().is_some_and(|q| url_pairs(q).any(|(name, _)| name == "versionId"));
        let action = if versioned { version_action_of(cx.s3_op().name()) } else { action_of(cx.s3_op().name()) };
        let resource = match cx.s3_path() {
            S3Path::Root => "*".to_string(),
            S3Path::Bucket { bucket } => bucket_arn(bucket),
            S3Path::Object { bucket, key } => object_arn(bucket, key),
        };
        let mut ctx = self.context(&action, &resource);
        add_request_values(&mut ctx, cx);
        if let Some(signer) = &signer {
            ctx.add_value("aws:userid", signer.owner_name().to_string());
        }
        let bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
        };
        let facts = match &bucket {
            Some(bucket) => self.owners.facts(bucket).await?,
            None => None,
        };
        // RestrictPublicBuckets: the bucket policy serves no anonymous request.
        let policy = facts
            .as_ref()
            .filter(|f| signer.is_some() || crate::s3::public_access::policy_serves_anonymous(f))
            .and_then(|f| f.policy.clone());
        let decision = self.identities.decide_with(signer.as_ref(), ctx, policy.as_deref());
        if decision.is_allowed() {
            return self.require_acl_permission(signer.as_ref(), cx, &resource, policy.as_deref());
        }
        // An ACL grant is one more source of Allow; an explicit Deny still wins.
        if decision == coffer_iam::policy::Decision::NotApplicable
            && let (Some(facts), Some(bucket)) = (&facts, &bucket)
        {
            let (key, version_id) = match cx.s3_path() {
                S3Path::Object { key, .. } => (Some(key.to_string()), version_of(cx.uri())),
                _ => (None, None),
            };
            if let Some(need) = crate::s3::acl::need_of(cx.s3_op().name(), key.as_deref(), version_id.as_deref())
                && self.acl_allows(facts, bucket, signer.is_some(), need).await?
            {
                return self.require_acl_permission(signer.as_ref(), cx, &resource, policy.as_deref());
            }
        }
        Err(denied())
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let signer = self.signer_or_anonymous(req)?;
        if signer.as_ref().is_some_and(Signer::is_root) {
            return Ok(());
        }
        self.require_source_read(signer.as_ref(), &req.input.copy_source).await
    }

    /// A browser form upload is s3:PutObject on the form's key, for the form's signer (or,
    /// unsigned, for anyone a bucket policy or ACL lets in); a form setting an ACL also needs
    /// s3:PutObjectAcl, as a PUT with `x-amz-acl` does.
    async fn post_object(&self, req: &mut S3Request<PostObjectInput>) -> S3Result<()> {
        let signer = self.signer_or_anonymous(req)?;
        // Root may do anything; a Swift account's ownership of the bucket was checked in `check`.
        if signer.as_ref().is_some_and(|s| s.is_root() || s.account.is_some()) {
            return Ok(());
        }
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let context = |action: &str| {
            let mut ctx = self.context(action, &object_arn(&bucket, &key));
            if let Some(signer) = &signer {
                ctx.add_value("aws:userid", signer.owner_name().to_string());
            }
            if let Some(addr) = req.extensions.get::<crate::http::RemoteAddr>() {
                ctx.add_value("aws:SourceIp", addr.0.ip().to_string());
            }
            if let Some(acl) = &req.input.acl {
                ctx.add_value("s3:x-amz-acl", acl.as_str().to_string());
            }
            ctx
        };
        let need = Some(crate::s3::acl::Need::BucketWrite);
        self.require(signer.as_ref(), context("s3:PutObject"), &bucket, need).await?;
        if req.input.acl.is_some() {
            self.require(signer.as_ref(), context("s3:PutObjectAcl"), &bucket, None).await?;
        }
        Ok(())
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        let signer = self.signer_or_anonymous(req)?;
        if signer.as_ref().is_some_and(Signer::is_root) {
            return Ok(());
        }
        self.require_source_read(signer.as_ref(), &req.input.copy_source).await
    }

    /// Every key must be deletable; one that is not refuses the whole request.
    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let signer = self.signer_or_anonymous(req)?;
        if signer.as_ref().is_some_and(|s| s.is_root() || s.account.is_some()) {
            // Root may do anything; for a Swift account, ownership of the bucket (checked in
            // `check`) covers every key in it.
            return Ok(());
        }
        let bucket = req.input.bucket.clone();
        for object in &req.input.delete.objects {
            let (action, need) = match object.version_id {
                Some(_) => ("s3:DeleteObjectVersion", None),
                None => ("s3:DeleteObject", Some(crate::s3::acl::Need::BucketWrite)),
            };
            self.require(signer.as_ref(), self.context(action, &object_arn(&bucket, &object.key)), &bucket, need)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_iam_actions() {
        assert_eq!(action_of("ListBuckets"), "s3:ListAllMyBuckets");
        assert_eq!(action_of("HeadObject"), "s3:GetObject");
        assert_eq!(action_of("UploadPart"), "s3:PutObject");
        assert_eq!(action_of("GetObjectTagging"), "s3:GetObjectTagging");
        assert_eq!(version_action_of("GetObject"), "s3:GetObjectVersion");
        assert_eq!(version_action_of("DeleteObject"), "s3:DeleteObjectVersion");
        assert_eq!(version_action_of("ListObjectVersions"), "s3:ListBucketVersions");
        let pairs: Vec<_> = url_pairs("list-type=2&prefix=home%2Falice%2F&delimiter=/").collect();
        assert_eq!(pairs[1], ("prefix".to_string(), "home/alice/".to_string()));
    }
}
