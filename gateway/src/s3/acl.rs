//! Canned ACLs: Get/PutBucketAcl, Get/PutObjectAcl, `x-amz-acl` on CreateBucket, PutObject,
//! CopyObject and CreateMultipartUpload, and what an ACL grants when the policies do not.
//!
//! Coffer stores only what a canned ACL can express: the canned name, in
//! `BucketRecord.configs["acl"]` for buckets and `ObjectRecord.acl` for objects (empty: private).
//! An `AccessControlPolicy` body or `x-amz-grant-*` headers are accepted when their grants are
//! exactly those of a canned ACL (plus the owner's); others answer NotImplemented. The owner
//! always keeps FULL_CONTROL.
//!
//! What grants mean (AWS's rules): bucket READ lists the bucket, bucket WRITE creates,
//! overwrites and deletes its objects, object READ reads the object. AllUsers includes
//! anonymous requests; AuthenticatedUsers is any valid signer. An ACL is one more source of
//! Allow: an explicit Deny of a policy still wins, IgnorePublicAcls and BucketOwnerEnforced
//! make ACLs grant nothing.

use coffer_proto::pb::metadata::{AclSetObjectAclRequest, GetBucketRequest, GetObjectRequest};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::bucket_config::names;
use super::convert::{owner, remote};
use super::public_access::{Block, acls_disabled};
use crate::authz::Authorizer;
use crate::owners::BucketFacts;

pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
pub const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canned {
    Private,
    PublicRead,
    PublicReadWrite,
    AuthenticatedRead,
    AwsExecRead,
    BucketOwnerRead,
    BucketOwnerFullControl,
    LogDeliveryWrite,
}

const NAMES: [(Canned, &str); 8] = [
    (Canned::Private, "private"),
    (Canned::PublicRead, "public-read"),
    (Canned::PublicReadWrite, "public-read-write"),
    (Canned::AuthenticatedRead, "authenticated-read"),
    (Canned::AwsExecRead, "aws-exec-read"),
    (Canned::BucketOwnerRead, "bucket-owner-read"),
    (Canned::BucketOwnerFullControl, "bucket-owner-full-control"),
    (Canned::LogDeliveryWrite, "log-delivery-write"),
];

/// What a request wants from an ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// List the bucket (bucket READ).
    BucketRead,
    /// Create, overwrite or delete objects (bucket WRITE).
    BucketWrite,
    /// Read one object (object READ).
    ObjectRead { key: &'a str, version_id: Option<&'a str> },
}

impl Canned {
    pub fn parse(name: &str) -> Option<Canned> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }

    pub fn name(self) -> &'static str {
        NAMES.iter().find(|(c, _)| *c == self).map_or("private", |(_, n)| n)
    }

    /// The stored form back (an empty or unknown value is private).
    pub fn stored(bytes: &[u8]) -> Canned {
        std::str::from_utf8(bytes).ok().and_then(Canned::parse).unwrap_or(Canned::Private)
    }

    /// What is stored: nothing for private.
    fn to_stored(self) -> String {
        if self == Canned::Private { String::new() } else { self.name().to_string() }
    }

    /// Grants to AllUsers or AuthenticatedUsers: what PublicAccessBlock calls public.
    pub fn is_public(self) -> bool {
        matches!(self, Canned::PublicRead | Canned::PublicReadWrite | Canned::AuthenticatedRead)
    }

    /// Grants anyone but the owner anything (what BucketOwnerEnforced refuses).
    pub fn grants_others(self) -> bool {
        self.is_public() || matches!(self, Canned::LogDeliveryWrite | Canned::AwsExecRead)
    }

    /// Whether this ACL gives a non-owner `read` (else write) access; `authenticated`: a valid signer.
    fn grants(self, read: bool, authenticated: bool) -> bool {
        match self {
            Canned::PublicRead => read,
            Canned::PublicReadWrite => true,
            Canned::AuthenticatedRead => read && authenticated,
            _ => false,
        }
    }

    /// The group grants besides the owner's FULL_CONTROL, as (group URI, permission).
    fn group_grants(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Canned::PublicRead => &[(ALL_USERS, Permission::READ)],
            Canned::PublicReadWrite => &[(ALL_USERS, Permission::READ), (ALL_USERS, Permission::WRITE)],
            Canned::AuthenticatedRead => &[(AUTHENTICATED_USERS, Permission::READ)],
            Canned::LogDeliveryWrite => &[(LOG_DELIVERY, Permission::WRITE), (LOG_DELIVERY, Permission::READ_ACP)],
            _ => &[],
        }
    }

    /// The grants GetBucketAcl / GetObjectAcl show, the owner's first.
    pub fn grants_list(self, owner: &Owner) -> Grants {
        let mut grants = vec![Grant {
            grantee: Some(Grantee {
                display_name: owner.display_name.clone(),
                email_address: None,
                id: owner.id.clone(),
                type_: Type::from_static(Type::CANONICAL_USER),
                uri: None,
            }),
            permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
        }];
        for (uri, permission) in self.group_grants() {
            grants.push(Grant {
                grantee: Some(Grantee {
                    display_name: None,
                    email_address: None,
                    id: None,
                    type_: Type::from_static(Type::GROUP),
                    uri: Some(uri.to_string()),
                }),
                permission: Some(Permission::from_static(permission)),
            });
        }
        grants
    }

    /// The canned ACL whose group grants are exactly `groups` (order and repeats aside).
    fn from_groups(mut groups: Vec<(String, String)>) -> Option<Canned> {
        groups.sort();
        groups.dedup();
        NAMES.iter().map(|(c, _)| *c).filter(|c| !matches!(c, Canned::AwsExecRead | Canned::BucketOwnerRead)).find(
            |c| {
                let mut expected: Vec<(String, String)> =
                    c.group_grants().iter().map(|(u, p)| (u.to_string(), p.to_string())).collect();
                expected.sort();
                expected == groups
            },
        )
    }
}

fn not_expressible() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NotImplemented,
        "Only access control lists that a canned ACL can express are supported",
    )
}

/// Turns a list of grants (body or headers) into the canned ACL it amounts to.
fn from_grants(grants: Vec<(Grantee, String)>, owner_id: &str) -> S3Result<Canned> {
    let mut groups = Vec::new();
    for (grantee, permission) in grants {
        if ![Permission::FULL_CONTROL, Permission::READ, Permission::WRITE, Permission::READ_ACP, Permission::WRITE_ACP]
            .contains(&permission.as_str())
        {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedACLError,
                "The ACL you provided was not well formed",
            ));
        }
        match grantee.type_.as_str() {
            Type::CANONICAL_USER => {
                // The owner always has full control: a grant to it changes nothing.
                if grantee.id.as_deref() != Some(owner_id) {
                    return Err(S3Error::with_message(S3ErrorCode::InvalidArgument, "Invalid id"));
                }
            }
            Type::GROUP => {
                let uri = grantee.uri.unwrap_or_default();
                if ![ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY].contains(&uri.as_str()) {
                    return Err(S3Error::with_message(S3ErrorCode::InvalidArgument, "Invalid group uri"));
                }
                groups.push((uri, permission));
            }
            _ => return Err(not_expressible()),
        }
    }
    Canned::from_groups(groups).ok_or_else(not_expressible)
}

/// The grants of one `x-amz-grant-*` header: `uri="..."`, `id="..."` or `emailAddress="..."`, comma-separated.
fn header_grants(value: &str, permission: &str) -> S3Result<Vec<(Grantee, String)>> {
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, v) = part
            .split_once('=')
            .ok_or_else(|| S3Error::with_message(S3ErrorCode::InvalidArgument, "Argument format not recognized"))?;
        let v = v.trim().trim_matches('"').to_string();
        let mut grantee = Grantee {
            display_name: None,
            email_address: None,
            id: None,
            type_: Type::from_static(Type::GROUP),
            uri: None,
        };
        match kind.trim().to_ascii_lowercase().as_str() {
            "uri" => grantee.uri = Some(v),
            "id" => {
                grantee.type_ = Type::from_static(Type::CANONICAL_USER);
                grantee.id = Some(v);
            }
            "emailaddress" => {
                grantee.type_ = Type::from_static(Type::AMAZON_CUSTOMER_BY_EMAIL);
                grantee.email_address = Some(v);
            }
            _ => return Err(S3Error::with_message(S3ErrorCode::InvalidArgument, "Argument format not recognized")),
        }
        out.push((grantee, permission.to_string()));
    }
    Ok(out)
}

/// The `x-amz-grant-*` headers of a request, as (header value, permission).
pub struct GrantHeaders<'a> {
    pub full_control: Option<&'a str>,
    pub read: Option<&'a str>,
    pub read_acp: Option<&'a str>,
    pub write: Option<&'a str>,
    pub write_acp: Option<&'a str>,
}

impl GrantHeaders<'_> {
    fn any(&self) -> bool {
        [self.full_control, self.read, self.read_acp, self.write, self.write_acp].iter().any(Option::is_some)
    }

    fn grants(&self) -> S3Result<Vec<(Grantee, String)>> {
        let mut out = Vec::new();
        for (value, permission) in [
            (self.full_control, Permission::FULL_CONTROL),
            (self.read, Permission::READ),
            (self.read_acp, Permission::READ_ACP),
            (self.write, Permission::WRITE),
            (self.write_acp, Permission::WRITE_ACP),
        ] {
            if let Some(value) = value {
                out.extend(header_grants(value, permission)?);
            }
        }
        Ok(out)
    }
}

/// The canned ACL a request asks for: `x-amz-acl`, or grant headers, or an AccessControlPolicy
/// body (PutBucketAcl / PutObjectAcl only). `None` when it names none.
pub fn requested(
    canned: Option<&str>,
    headers: &GrantHeaders<'_>,
    policy: Option<AccessControlPolicy>,
    owner_id: &str,
) -> S3Result<Option<Canned>> {
    if canned.is_some() && headers.any() {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed",
        ));
    }
    if (canned.is_some() || headers.any()) && policy.is_some() {
        return Err(S3Error::with_message(S3ErrorCode::UnexpectedContent, "This request does not support content"));
    }
    if let Some(name) = canned {
        return Canned::parse(name)
            .map(Some)
            .ok_or_else(|| S3Error::with_message(S3ErrorCode::InvalidArgument, format!("Invalid canned ACL: {name}")));
    }
    if headers.any() {
        return from_grants(headers.grants()?, owner_id).map(Some);
    }
    if let Some(policy) = policy {
        let grants = policy
            .grants
            .unwrap_or_default()
            .into_iter()
            .map(|g| match (g.grantee, g.permission) {
                (Some(grantee), Some(permission)) => Ok((grantee, permission.as_str().to_string())),
                _ => Err(S3Error::with_message(
                    S3ErrorCode::MalformedACLError,
                    "The ACL you provided was not well formed",
                )),
            })
            .collect::<S3Result<Vec<_>>>()?;
        return from_grants(grants, owner_id).map(Some);
    }
    Ok(None)
}

/// Refuses `acl` where the bucket's settings do: BucketOwnerEnforced allows only private ACLs
/// (AccessControlListNotSupported), BlockPublicAcls no public ones (AccessDenied).
fn check_allowed(facts: &BucketFacts, acl: Canned) -> S3Result<()> {
    if acls_disabled(facts) && acl.grants_others() {
        return Err(S3Error::with_message(
            S3ErrorCode::AccessControlListNotSupported,
            "The bucket does not allow ACLs",
        ));
    }
    if acl.is_public() && Block::of(facts).block_public_acls {
        return Err(S3Error::with_message(S3ErrorCode::AccessDenied, "Access Denied"));
    }
    Ok(())
}

/// The ACL operation a request needs, if an ACL can grant it at all.
pub fn need_of<'a>(op: &str, key: Option<&'a str>, version_id: Option<&'a str>) -> Option<Need<'a>> {
    // AWS's mapping of ACL permissions to actions: bucket READ is s3:ListBucket,
    // s3:ListBucketVersions and s3:ListBucketMultipartUploads; bucket WRITE is s3:PutObject and
    // s3:DeleteObject; object READ is s3:GetObject and s3:GetObjectVersion.
    match op {
        "ListObjects" | "ListObjectsV2" | "ListObjectVersions" | "HeadBucket" | "ListMultipartUploads" => {
            Some(Need::BucketRead)
        }
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "DeleteObjects" => Some(Need::BucketWrite),
        // Deleting one version for good is s3:DeleteObjectVersion, which WRITE gives only the owner.
        "DeleteObject" if version_id.is_none() => Some(Need::BucketWrite),
        "GetObject" | "HeadObject" => key.map(|key| Need::ObjectRead { key, version_id }),
        _ => None,
    }
}

impl Authorizer {
    /// Whether the ACLs of the bucket (or object) described by `facts` give `need` to a caller
    /// the policies did not allow (and did not explicitly deny). Reads the object record only
    /// for object reads, and only on this fallback path.
    pub(crate) async fn acl_allows(
        &self,
        facts: &BucketFacts,
        bucket: &str,
        authenticated: bool,
        need: Need<'_>,
    ) -> S3Result<bool> {
        // Every ACL that grants anything to a non-owner is public: IgnorePublicAcls voids them all.
        if acls_disabled(facts) || Block::of(facts).ignore_public_acls {
            return Ok(false);
        }
        let bucket_acl = facts.config(names::ACL).map_or(Canned::Private, Canned::stored);
        match need {
            Need::BucketRead => Ok(bucket_acl.grants(true, authenticated)),
            Need::BucketWrite => Ok(bucket_acl.grants(false, authenticated)),
            Need::ObjectRead { key, version_id } => {
                let request = GetObjectRequest {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    version_id: version_id.unwrap_or_default().to_string(),
                };
                match self.owners.metadata().rpc().get_object(request).await {
                    Ok(response) => match response.into_inner().record {
                        Some(record) if !record.delete_marker => {
                            Ok(Canned::stored(record.acl.as_bytes()).grants(true, authenticated))
                        }
                        // Nothing to read: a caller who may list learns it is missing (404), others get 403.
                        _ => Ok(bucket_acl.grants(true, authenticated)),
                    },
                    Err(status) => {
                        let error = coffer_proto::RemoteError::from(status);
                        // A missing key or version, or a malformed version id: nothing this ACL
                        // could open, so the caller learns no more than the listing would tell.
                        if matches!(
                            error.code,
                            coffer_proto::ErrorCode::NoSuchKey
                                | coffer_proto::ErrorCode::NoSuchBucket
                                | coffer_proto::ErrorCode::InvalidArgument
                        ) {
                            Ok(bucket_acl.grants(true, authenticated))
                        } else {
                            Err(crate::error::GatewayError::Remote(error).into())
                        }
                    }
                }
            }
        }
    }
}

/// What CreateBucket sets besides the bucket itself.
pub struct NewBucket {
    acl: Option<Canned>,
    ownership: Option<String>,
}

/// A write that may set the new object's ACL (`x-amz-acl` or `x-amz-grant-*`).
pub trait AclHeaders {
    fn bucket(&self) -> &str;
    fn canned(&self) -> Option<&str>;
    fn grant_headers(&self) -> GrantHeaders<'_>;
}

macro_rules! acl_headers {
    ($($input:ty),*) => {$(
        impl AclHeaders for $input {
            fn bucket(&self) -> &str {
                &self.bucket
            }
            fn canned(&self) -> Option<&str> {
                self.acl.as_ref().map(|a| a.as_str())
            }
            fn grant_headers(&self) -> GrantHeaders<'_> {
                GrantHeaders {
                    full_control: self.grant_full_control.as_deref(),
                    read: self.grant_read.as_deref(),
                    read_acp: self.grant_read_acp.as_deref(),
                    // Objects take no WRITE grant.
                    write: None,
                    write_acp: self.grant_write_acp.as_deref(),
                }
            }
        }
    )*};
}

acl_headers!(PutObjectInput, CopyObjectInput, CreateMultipartUploadInput);

/// The ACL a Put{Bucket,Object}Acl request sets (their inputs share the field names, not a type):
/// a canned ACL, grant headers or a body; none of them is MissingSecurityHeader.
macro_rules! required_acl {
    ($input:expr, $owner:expr) => {{
        let headers = GrantHeaders {
            full_control: $input.grant_full_control.as_deref(),
            read: $input.grant_read.as_deref(),
            read_acp: $input.grant_read_acp.as_deref(),
            write: $input.grant_write.as_deref(),
            write_acp: $input.grant_write_acp.as_deref(),
        };
        let canned = $input.acl.as_ref().map(|a| a.as_str());
        requested(canned, &headers, $input.access_control_policy, $owner.id.as_deref().unwrap_or_default()).and_then(
            |acl| {
                acl.ok_or_else(|| {
                    S3Error::with_message(
                        S3ErrorCode::MissingSecurityHeader,
                        "Your request was missing a required header",
                    )
                })
            },
        )
    }};
}

impl CofferS3 {
    /// The ACL to store with an object written with `x-amz-acl` or `x-amz-grant-*` (PutObject,
    /// CopyObject, CreateMultipartUpload), refused where the bucket's settings forbid it. Empty:
    /// private (also what a copy gets without them: ACLs are never copied).
    pub(super) async fn acl_for_write(&self, input: &impl AclHeaders) -> S3Result<String> {
        let headers = input.grant_headers();
        if input.canned().is_none() && !headers.any() {
            return Ok(String::new());
        }
        let facts = self.facts_of(input.bucket()).await?;
        let owner = owner(&facts.owner);
        let acl = requested(input.canned(), &headers, None, owner.id.as_deref().unwrap_or_default())?
            .unwrap_or(Canned::Private);
        check_allowed(&facts, acl)?;
        Ok(acl.to_stored())
    }

    /// Validates the ACL (`x-amz-acl`, `x-amz-grant-*`) and `x-amz-object-ownership` of
    /// CreateBucket before the bucket exists.
    pub(super) fn new_bucket_settings(&self, input: &CreateBucketInput, owner_name: &str) -> S3Result<NewBucket> {
        let ownership = match input.object_ownership.as_ref().map(|o| o.as_str()) {
            None => None,
            Some(
                value @ (ObjectOwnership::BUCKET_OWNER_ENFORCED
                | ObjectOwnership::BUCKET_OWNER_PREFERRED
                | ObjectOwnership::OBJECT_WRITER),
            ) => Some(value.to_string()),
            Some(other) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!("Invalid x-amz-object-ownership header: {other}"),
                ));
            }
        };
        let headers = GrantHeaders {
            full_control: input.grant_full_control.as_deref(),
            read: input.grant_read.as_deref(),
            read_acp: input.grant_read_acp.as_deref(),
            write: input.grant_write.as_deref(),
            write_acp: input.grant_write_acp.as_deref(),
        };
        let canned = input.acl.as_ref().map(|a| a.as_str());
        let acl = requested(canned, &headers, None, owner(owner_name).id.as_deref().unwrap_or_default())?
            .filter(|a| *a != Canned::Private);
        if ownership.as_deref() == Some(ObjectOwnership::BUCKET_OWNER_ENFORCED)
            && acl.is_some_and(Canned::grants_others)
        {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidBucketAclWithObjectOwnership,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
            ));
        }
        Ok(NewBucket { acl, ownership })
    }

    /// Stores the settings of a just-created bucket (the defaults need nothing).
    pub(super) async fn apply_new_bucket_settings(&self, bucket: &str, settings: NewBucket) -> S3Result<()> {
        // A bucket of that name deleted moments ago may still be cached with its ACL and CORS rules.
        self.authorizer.owners.forget(bucket);
        if let Some(acl) = settings.acl {
            self.set_bucket_config(bucket, names::ACL, Some(acl.name().as_bytes().to_vec())).await?;
        }
        if let Some(ownership) = settings.ownership {
            self.set_bucket_config(bucket, names::OWNERSHIP, Some(ownership.into_bytes())).await?;
        }
        Ok(())
    }

    async fn bucket_owner(&self, bucket: &str) -> S3Result<Owner> {
        let request = GetBucketRequest { name: bucket.to_string() };
        let record = remote(self.plane.metadata.rpc().get_bucket(request).await)?.bucket.unwrap_or_default();
        Ok(owner(&record.owner))
    }

    pub(super) async fn do_get_bucket_acl(&self, input: GetBucketAclInput) -> S3Result<GetBucketAclOutput> {
        let owner = self.bucket_owner(&input.bucket).await?;
        let acl = self.bucket_config(&input.bucket, names::ACL).await?.map_or(Canned::Private, |v| Canned::stored(&v));
        Ok(GetBucketAclOutput { grants: Some(acl.grants_list(&owner)), owner: Some(owner) })
    }

    pub(super) async fn do_put_bucket_acl(&self, input: PutBucketAclInput) -> S3Result<PutBucketAclOutput> {
        // Fresh facts: the ownership and PublicAccessBlock settings decide what may be set.
        self.authorizer.owners.forget(&input.bucket);
        let facts = self.facts_of(&input.bucket).await?;
        let owner = owner(&facts.owner);
        let acl = required_acl!(input, owner)?;
        check_allowed(&facts, acl)?;
        let stored = acl.to_stored();
        self.set_bucket_config(&input.bucket, names::ACL, (!stored.is_empty()).then(|| stored.into_bytes())).await?;
        Ok(PutBucketAclOutput {})
    }

    pub(super) async fn do_get_object_acl(&self, input: GetObjectAclInput) -> S3Result<GetObjectAclOutput> {
        let record = self.get_version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let owner = owner(&self.facts_of(&input.bucket).await?.owner);
        let acl = Canned::stored(record.acl.as_bytes());
        Ok(GetObjectAclOutput { grants: Some(acl.grants_list(&owner)), owner: Some(owner), ..Default::default() })
    }

    pub(super) async fn do_put_object_acl(&self, input: PutObjectAclInput) -> S3Result<PutObjectAclOutput> {
        let facts = self.facts_of(&input.bucket).await?;
        let owner = owner(&facts.owner);
        let acl = required_acl!(input, owner)?;
        check_allowed(&facts, acl)?;
        if let Some(id) = input.version_id.as_deref() {
            // Checked first for S3's answers: NoSuchVersion, or 405 for a delete marker.
            self.get_version(&input.bucket, &input.key, Some(id)).await?;
        }
        let request = AclSetObjectAclRequest {
            bucket: input.bucket,
            key: input.key,
            version_id: input.version_id.unwrap_or_default(),
            acl: acl.to_stored(),
        };
        remote(self.plane.metadata.rpc().set_object_acl(request).await)?;
        Ok(PutObjectAclOutput::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> GrantHeaders<'static> {
        GrantHeaders { full_control: None, read: None, read_acp: None, write: None, write_acp: None }
    }

    fn group(uri: &str, permission: &str) -> Grant {
        Grant {
            grantee: Some(Grantee {
                display_name: None,
                email_address: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                uri: Some(uri.to_string()),
            }),
            permission: Some(Permission::from(permission.to_string())),
        }
    }

    fn code<T: std::fmt::Debug>(r: S3Result<T>) -> String {
        r.err().map(|e| e.code().as_str().to_string()).unwrap_or_default()
    }

    #[test]
    fn canned_acls_round_trip_and_grant_as_aws() {
        for (c, name) in NAMES {
            assert_eq!(Canned::parse(name), Some(c));
            assert_eq!(Canned::stored(c.to_stored().as_bytes()), c);
        }
        assert_eq!(Canned::stored(b""), Canned::Private);
        assert!(Canned::PublicRead.grants(true, false) && !Canned::PublicRead.grants(false, true));
        assert!(Canned::PublicReadWrite.grants(false, false));
        assert!(!Canned::AuthenticatedRead.grants(true, false) && Canned::AuthenticatedRead.grants(true, true));
        assert!(!Canned::Private.grants(true, true));
        assert!(!Canned::LogDeliveryWrite.grants(false, true), "log delivery is no caller of ours");
        let owner = owner("alice");
        let grants = Canned::PublicReadWrite.grants_list(&owner);
        assert_eq!(grants.len(), 3);
        assert_eq!(grants[0].grantee.as_ref().unwrap().id, owner.id);
        assert_eq!(grants[1].grantee.as_ref().unwrap().uri.as_deref(), Some(ALL_USERS));
        assert_eq!(grants[2].permission.as_ref().unwrap().as_str(), "WRITE");
    }

    #[test]
    fn bodies_and_headers_must_amount_to_a_canned_acl() {
        let owner_id = "abc";
        let owner_grant = Grant {
            grantee: Some(Grantee {
                display_name: None,
                email_address: None,
                id: Some(owner_id.into()),
                type_: Type::from_static(Type::CANONICAL_USER),
                uri: None,
            }),
            permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
        };
        let body = |grants: Vec<Grant>| Some(AccessControlPolicy { grants: Some(grants), owner: None });
        let ask = |policy| requested(None, &none(), policy, owner_id);
        assert_eq!(ask(body(vec![owner_grant.clone()])).unwrap(), Some(Canned::Private));
        assert_eq!(ask(body(vec![owner_grant.clone(), group(ALL_USERS, "READ")])).unwrap(), Some(Canned::PublicRead));
        assert_eq!(
            ask(body(vec![group(ALL_USERS, "WRITE"), owner_grant.clone(), group(ALL_USERS, "READ")])).unwrap(),
            Some(Canned::PublicReadWrite)
        );
        assert_eq!(ask(body(vec![group(AUTHENTICATED_USERS, "READ")])).unwrap(), Some(Canned::AuthenticatedRead));
        assert_eq!(code(ask(body(vec![group(ALL_USERS, "WRITE")]))), "NotImplemented");
        assert_eq!(code(ask(body(vec![group("http://example.com/x", "READ")]))), "InvalidArgument");
        assert_eq!(code(ask(body(vec![group(ALL_USERS, "EVERYTHING")]))), "MalformedACLError");
        let mut stranger = owner_grant.clone();
        stranger.grantee.as_mut().unwrap().id = Some("someone-else".into());
        assert_eq!(code(ask(body(vec![stranger]))), "InvalidArgument");

        let read = format!("uri=\"{ALL_USERS}\"");
        let headers = GrantHeaders { read: Some(&read), ..none() };
        assert_eq!(requested(None, &headers, None, owner_id).unwrap(), Some(Canned::PublicRead));
        assert_eq!(code(requested(Some("private"), &headers, None, owner_id)), "InvalidRequest");
        assert_eq!(code(requested(Some("private"), &none(), body(vec![]), owner_id)), "UnexpectedContent");
        assert_eq!(code(requested(Some("world-readable"), &none(), None, owner_id)), "InvalidArgument");
        assert_eq!(requested(None, &none(), None, owner_id).unwrap(), None);
    }

    #[test]
    fn operations_need_the_acl_grant_aws_names() {
        assert_eq!(need_of("ListObjectsV2", None, None), Some(Need::BucketRead));
        assert_eq!(need_of("PutObject", Some("k"), None), Some(Need::BucketWrite));
        assert_eq!(need_of("DeleteObject", Some("k"), Some("v")), None);
        assert_eq!(
            need_of("HeadObject", Some("k"), Some("v")),
            Some(Need::ObjectRead { key: "k", version_id: Some("v") })
        );
        assert_eq!(need_of("GetBucketAcl", None, None), None);
        assert_eq!(need_of("PutBucketPolicy", None, None), None);
    }
}
