//! The OpenStack Swift API on its own port (`--swift-address`), over the same buckets and objects
//! as S3: a container is a bucket, an object is an object. Object operations run through the S3
//! implementation itself (so both protocols share every rule); Swift's own shapes (listings,
//! headers, statuses) are rendered here.
//!
//! Auth is tempauth: `GET /auth/v1.0` with `X-Auth-User: ACCOUNT:USER` and `X-Auth-Key` returns a
//! token and the storage URL `…/v1/AUTH_ACCOUNT`. An account's admins own its containers.

// Handlers fail with the Swift response to send, built once on the error path; boxing it would
// only add an allocation to every failure.
#![allow(clippy::result_large_err)]

mod account;
mod acl;
mod bulk;
mod bulk_upload;
mod container;
mod expiry;
mod form_parts;
mod formpost;
pub mod keystone;
mod large;
mod listing;
mod meta;
mod object;
mod quota;
mod ranges;
mod response;
mod tempurl;
mod token;
mod upload;
mod versioned_writes;

use std::sync::Arc;

use coffer_iam::IdentityStore;
use coffer_iam::authorize::Signer;
use coffer_proto::metadata_client::MetadataClient;
use http::{HeaderMap, Method, Request, StatusCode};
use hyper::body::Incoming;
use s3s::S3Request;

use crate::authz::Authorizer;
use crate::s3::CofferS3;
use response::SwiftResponse;

/// Swift's limits, advertised in `/info` and enforced here.
/// What the metadata service accepts for a bucket name.
pub const MAX_CONTAINER_NAME: usize = 255;
pub const MAX_OBJECT_NAME: usize = 1024;
pub const MAX_META_NAME: usize = 128;
pub const MAX_META_VALUE: usize = 256;
pub const CONTAINER_LISTING_LIMIT: u32 = 10_000;
pub const ACCOUNT_LISTING_LIMIT: usize = 10_000;

#[derive(Clone)]
pub struct SwiftApi {
    pub s3: CofferS3,
    pub authorizer: Authorizer,
    pub identities: Arc<IdentityStore>,
    pub metadata: MetadataClient,
    /// Keystone token validation, when `--keystone-url` is set.
    pub keystone: Option<Arc<keystone::Keystone>>,
}

/// A request after authentication: who, and the account, container and object it names.
#[derive(Clone)]
pub struct Target {
    /// Who signed (the default, empty signer for an anonymous request).
    pub signer: Signer,
    /// Who asks, in container-ACL terms; `None` when anonymous.
    pub identity: Option<acl::AclIdentity>,
    /// The signer administers the account of the path (owns its containers).
    pub admin_here: bool,
    /// The request's Referer, for `.r:` ACL entries.
    pub referrer: Option<String>,
    /// A TempURL signature in the query, for a request without a token.
    pub tempurl: Option<tempurl::TempUrl>,
    /// The request's method and decoded path, which a TempURL signature covers.
    pub method: String,
    pub path: String,
    pub account: String,
    pub container: Option<String>,
    pub object: Option<String>,
}

impl Target {
    /// The refusal for this requester: 401 without a token (authenticate first), else 403.
    pub fn refusal(&self) -> SwiftResponse {
        if self.identity.is_none() {
            response::error(StatusCode::UNAUTHORIZED, "This server could not verify that you are authorized.")
        } else {
            response::error(StatusCode::FORBIDDEN, "Access was denied to this resource.")
        }
    }
}

fn now_unix_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn query_pairs(req_query: Option<&str>) -> Vec<(String, String)> {
    req_query.map(|q| crate::authz::url_pairs(q).collect()).unwrap_or_default()
}

pub fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Swift's idea of a true query or header value.
pub fn is_true(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on" | "t" | "y")
}

/// The listing `limit`: at most `max` (412 beyond, as Swift answers); a value that is not a whole
/// number is ignored, as Swift does.
pub fn listing_limit(query: &[(String, String)], max: usize) -> Result<usize, SwiftResponse> {
    match query_value(query, "limit").map(str::parse::<usize>) {
        Some(Ok(n)) if n > max => {
            Err(response::error(StatusCode::PRECONDITION_FAILED, &format!("Maximum limit is {max}")))
        }
        Some(Ok(n)) => Ok(n),
        None | Some(Err(_)) => Ok(max),
    }
}

impl SwiftApi {
    pub async fn handle(&self, req: Request<Incoming>, trans_id: &str) -> SwiftResponse {
        let mut response = self.route(req).await;
        response::set(&mut response, "x-trans-id", trans_id);
        response::set(&mut response, "x-openstack-request-id", trans_id);
        response
    }

    async fn route(&self, req: Request<Incoming>) -> SwiftResponse {
        let path = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8_lossy().into_owned();
        // A form post carries its own authority (its signature), token or not, as in Swift.
        if req.method() == Method::POST
            && path.starts_with("/v1/")
            && let Some(boundary) = formpost::boundary(req.headers())
        {
            return formpost::handle(self, req, &path, &boundary).await;
        }
        match (req.method(), path.as_str()) {
            (&Method::GET | &Method::HEAD, "/info") => info(),
            (&Method::GET, "/auth/v1.0" | "/auth/v1" | "/v1.0") => self.tempauth(req.headers(), req.uri()),
            (_, p) if p.starts_with("/v1/") => {
                let target = match self.authenticate(&req, &p["/v1/".len()..]).await {
                    Ok(target) => target,
                    Err(response) => return response,
                };
                // Swift's bulk middleware answers these at any path under the account.
                let query = query_pairs(req.uri().query());
                if req.method() == Method::PUT
                    && let Some(archive) = query_value(&query, "extract-archive")
                {
                    return match bulk_upload::Compression::from_query(archive) {
                        Some(compression) => bulk_upload::extract(self, req, target, compression).await,
                        None => response::body(
                            StatusCode::BAD_REQUEST,
                            "text/html; charset=UTF-8",
                            "Unsupported archive format".into(),
                        ),
                    };
                }
                let bulk_delete = query.iter().any(|(name, _)| name == "bulk-delete");
                if bulk_delete && matches!(*req.method(), Method::POST | Method::DELETE) {
                    if target.identity.is_none() {
                        return response::error(StatusCode::UNAUTHORIZED, "bulk delete needs a token");
                    }
                    return bulk::delete(self, req, target).await;
                }
                match (&target.container, &target.object) {
                    (None, _) => account::handle(self, req, target).await,
                    (Some(_), None) => container::handle(self, req, target).await,
                    (Some(_), Some(_)) => object::handle(self, req, target).await,
                }
            }
            _ => response::error(StatusCode::NOT_FOUND, "The resource could not be found."),
        }
    }

    /// Tempauth login: `X-Auth-User`/`X-Auth-Key` (or the `X-Storage-*` spellings).
    fn tempauth(&self, headers: &HeaderMap, uri: &http::Uri) -> SwiftResponse {
        let login = header(headers, "x-auth-user").or_else(|| header(headers, "x-storage-user")).unwrap_or_default();
        let key = header(headers, "x-auth-key").or_else(|| header(headers, "x-storage-pass")).unwrap_or_default();
        let Some(user) = self.identities.tempauth_user(login).filter(|u| constant_time_eq(u.key(), key)) else {
            return response::error(StatusCode::UNAUTHORIZED, "This server could not verify that you are authorized.");
        };
        let Some(session_key) = self.authorizer.session_key() else {
            return response::error(StatusCode::SERVICE_UNAVAILABLE, "the token signing key is not loaded yet");
        };
        let (token, expires) = token::issue(&session_key, &user.login(), now_unix_s());
        let host = header(headers, "host").or_else(|| uri.authority().map(|a| a.as_str())).unwrap_or("127.0.0.1");
        let scheme = uri.scheme_str().unwrap_or(if self.authorizer.secure_transport() { "https" } else { "http" });
        let url = format!("{scheme}://{host}/v1/{}", user.account_name());
        let mut response = response::status(StatusCode::OK);
        response::set(&mut response, "x-storage-url", &url);
        response::set(&mut response, "x-auth-token", &token);
        response::set(&mut response, "x-storage-token", &token);
        response::set(&mut response, "x-auth-token-expires", &(expires - now_unix_s()).to_string());
        response
    }

    async fn authenticate(&self, req: &Request<Incoming>, rest: &str) -> Result<Target, SwiftResponse> {
        let unauthorized =
            || response::error(StatusCode::UNAUTHORIZED, "This server could not verify that you are authorized.");
        let mut parts = rest.splitn(3, '/');
        let account = parts.next().unwrap_or_default().to_string();
        let container = parts.next().filter(|c| !c.is_empty()).map(str::to_string);
        let object = parts.next().filter(|o| !o.is_empty()).map(str::to_string);
        if let Some(c) = &container
            && (c.len() > MAX_CONTAINER_NAME || c.contains('\0'))
        {
            return Err(response::error(StatusCode::BAD_REQUEST, "Invalid container name"));
        }
        if let Some(o) = &object
            && o.len() > MAX_OBJECT_NAME
        {
            return Err(response::error(StatusCode::BAD_REQUEST, "Object name length exceeds the limit"));
        }
        let referrer = header(req.headers(), "referer").map(str::to_string);
        let method = req.method().as_str().to_string();
        let path = format!("/v1/{rest}");
        let Some(token) = header(req.headers(), "x-auth-token")
            .or_else(|| header(req.headers(), "x-storage-token"))
            .map(str::to_string)
        else {
            // Anonymous: what a TempURL signature or a container's `.r:` ACL opens.
            let tempurl = match tempurl::TempUrl::from_query(&query_pairs(req.uri().query())) {
                None => None,
                Some(Ok(link)) => Some(link),
                Some(Err(why)) => return Err(response::error(StatusCode::UNAUTHORIZED, &why)),
            };
            let signer = Signer::default();
            return Ok(Target {
                signer,
                identity: None,
                admin_here: false,
                referrer,
                tempurl,
                method,
                path,
                account,
                container,
                object,
            });
        };
        let (signer, identity, admin_here) = if token.starts_with("AUTH_tk") {
            let session_key = self.authorizer.session_key().ok_or_else(unauthorized)?;
            let login = token::verify(&session_key, &token, now_unix_s()).ok_or_else(unauthorized)?;
            let user = self.identities.tempauth_user(&login).ok_or_else(unauthorized)?;
            let signer = self.identities.signer(&login).ok_or_else(unauthorized)?;
            let identity = acl::AclIdentity::tempauth(&user.account, &user.user);
            let admin_here = signer.account_admin && signer.account.as_deref() == Some(account.as_str());
            (signer, identity, admin_here)
        } else {
            let keystone = self.keystone.clone().ok_or_else(unauthorized)?;
            let checked = tokio::task::spawn_blocking(move || keystone.validate_blocking(&token)).await;
            let identity = match checked {
                Ok(Ok(identity)) => identity,
                Ok(Err(keystone::KeystoneError::InvalidToken)) => return Err(unauthorized()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot validate a Keystone token");
                    return Err(response::error(StatusCode::SERVICE_UNAVAILABLE, "Keystone is not reachable"));
                }
                Err(_) => return Err(response::error(StatusCode::INTERNAL_SERVER_ERROR, "token validation failed")),
            };
            // Operators own their project's account; a reseller admin acts on every account.
            let admin_here = (identity.operator && identity.account() == account) || identity.reseller_admin;
            let signer = Signer {
                name: format!("keystone:{}", identity.user),
                access_key: format!("keystone:{}", identity.user),
                account: Some(if identity.reseller_admin { account.clone() } else { identity.account() }),
                account_admin: identity.operator || identity.reseller_admin,
                ..Signer::default()
            };
            let acl_identity = identity.acl_identity();
            (signer, acl_identity, admin_here)
        };
        Ok(Target {
            signer,
            identity: Some(identity),
            admin_here,
            referrer,
            tempurl: None,
            method,
            path,
            account,
            container,
            object,
        })
    }

    /// Runs one S3 operation (`op`, e.g. `|r| self.s3.get_object(r)`) as the Swift user; its
    /// failure becomes the Swift answer.
    pub async fn run_s3<I, O, Fut>(
        &self,
        target: &Target,
        input: I,
        op: impl FnOnce(S3Request<I>) -> Fut,
    ) -> Result<O, SwiftResponse>
    where
        Fut: std::future::Future<Output = s3s::S3Result<s3s::S3Response<O>>>,
    {
        op(self.s3_request(target, input, HeaderMap::new())).await.map(|r| r.output).map_err(|e| response::from_s3(&e))
    }

    /// An S3 request for `input`, made as the Swift user.
    pub fn s3_request<T>(&self, target: &Target, input: T, headers: HeaderMap) -> S3Request<T> {
        let mut extensions = http::Extensions::new();
        extensions.insert(crate::authz::ActingAs(target.signer.clone()));
        S3Request {
            input,
            method: Method::GET,
            uri: http::Uri::default(),
            headers,
            extensions,
            credentials: None,
            region: None,
            service: None,
            trailing_headers: None,
        }
    }

    /// Whether the request may do `access` on the container of its path: the path's account must
    /// own the container; its admins may do anything, others what the container's ACLs allow.
    pub async fn allowed(&self, target: &Target, access: Access) -> Result<(), SwiftResponse> {
        let denied = || target.refusal();
        let Some(container) = target.container.as_deref() else {
            return if target.admin_here { Ok(()) } else { Err(denied()) };
        };
        let owner = self.authorizer.owners.owner(container).await.map_err(|e| response::from_s3(&e.into()))?;
        match owner {
            // Another account's container of the same name is, for this account, no container at all.
            Some(owner) if owner != target.account => {
                return Err(if target.admin_here {
                    response::error(StatusCode::NOT_FOUND, "no such container")
                } else {
                    denied()
                });
            }
            None if access != Access::ContainerAdmin => {
                return Err(if target.admin_here {
                    response::error(StatusCode::NOT_FOUND, "no such container")
                } else {
                    denied()
                });
            }
            _ => {}
        }
        if target.admin_here {
            return Ok(());
        }
        if access == Access::ContainerAdmin {
            return Err(denied());
        }
        let request = coffer_proto::pb::metadata::GetBucketRequest { name: container.to_string() };
        let record = match self.metadata.rpc().get_bucket(request).await {
            Ok(r) => r.into_inner().bucket.unwrap_or_default(),
            Err(status) => return Err(response::from_s3(&crate::error::GatewayError::Remote(status.into()).into())),
        };
        if let Some(link) = &target.tempurl {
            let keys = tempurl::keys(self, &target.account, &record.metadata).await?;
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let object_access = matches!(access, Access::ObjectRead | Access::ObjectWrite);
            return if object_access && link.grants(&target.method, &target.path, &keys, now_unix_s()) {
                Ok(())
            } else {
                Err(response::error(StatusCode::UNAUTHORIZED, "Temp URL invalid"))
            };
        }
        let acl_of = |key: &str| acl::Acl::parse(record.metadata.get(key).map(String::as_str).unwrap_or_default());
        let allowed = match access {
            Access::ObjectWrite => target.identity.as_ref().is_some_and(|who| acl_of(acl::WRITE_KEY).names(who)),
            Access::ObjectRead | Access::ContainerRead => {
                let read = acl_of(acl::READ_KEY);
                let by_name = target.identity.as_ref().is_some_and(|who| read.names(who));
                let by_referrer = read.allows_referrer(target.referrer.as_deref())
                    && (access == Access::ObjectRead || read.allows_listings());
                by_name || by_referrer
            }
            Access::ContainerAdmin => false,
        };
        if allowed { Ok(()) } else { Err(denied()) }
    }
}

/// What a request does to a container, for [`SwiftApi::allowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Create, delete, change metadata or ACLs: the account's admins only.
    ContainerAdmin,
    /// List or HEAD the container.
    ContainerRead,
    ObjectRead,
    ObjectWrite,
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /info`: exactly what this implementation supports.
fn info() -> SwiftResponse {
    let info = serde_json::json!({
        "swift": {
            "version": env!("CARGO_PKG_VERSION"),
            "max_file_size": crate::s3::convert::MAX_PUT_BYTES,
            "max_object_name_length": MAX_OBJECT_NAME,
            "max_container_name_length": MAX_CONTAINER_NAME,
            "max_meta_name_length": MAX_META_NAME,
            "max_meta_value_length": MAX_META_VALUE,
            "container_listing_limit": CONTAINER_LISTING_LIMIT,
            "account_listing_limit": ACCOUNT_LISTING_LIMIT,
            "strict_cors_mode": true,
            "policies": [{"name": "default", "default": true}],
        },
        "tempauth": {"account_acls": false},
        "bulk_delete": {"max_deletes_per_request": bulk::MAX_DELETES, "max_failed_deletes": bulk::MAX_FAILED_DELETES},
        "bulk_upload": {
            "max_containers_per_extraction": bulk_upload::MAX_CONTAINERS_PER_EXTRACTION,
            "max_failed_extractions": bulk_upload::MAX_FAILED_EXTRACTIONS,
        },
        "formpost": {"allowed_digests": ["sha1", "sha256", "sha512"]},
        "slo": {
            "max_manifest_segments": large::MAX_SEGMENTS,
            "max_manifest_size": large::MAX_MANIFEST_BYTES,
            "min_segment_size": 1,
            "allow_async_delete": false,
        },
        "dlo": {"max_segments": large::MAX_EXPANDED_SEGMENTS},
        "container_quotas": {},
        "tempurl": {
            "methods": ["GET", "HEAD", "PUT", "POST", "DELETE"],
            "allowed_digests": ["sha1", "sha256", "sha512"],
        },
        "versioned_writes": {
            "allowed_flags": [versioned_writes::VERSIONS_LOCATION, versioned_writes::HISTORY_LOCATION],
        },
    });
    response::body(StatusCode::OK, "application/json; charset=utf-8", info.to_string())
}
