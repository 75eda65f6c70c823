//! Container requests: create (PUT), delete, totals and metadata (HEAD), listing (GET) and
//! metadata updates (POST). A container is the bucket of the same name.

use std::collections::HashMap;

use coffer_proto::pb::metadata::{
    BucketRecord, GetBucketRequest, GetBucketUsageRequest, ListObjectsRequest, SetBucketMetadataRequest,
};
use http::{HeaderMap, Method, Request, StatusCode};
use hyper::body::Incoming;
use s3s::S3;
use s3s::dto::{CreateBucketInput, DeleteBucketInput};

use super::acl;
use super::listing::{self, ContainerItem, Format, ObjectEntry};
use super::meta::{self, Scope};
use super::quota;
use super::response::{self, SwiftResponse};
use super::versioned_writes;
use super::{Access, CONTAINER_LISTING_LIMIT, SwiftApi, Target, header, query_pairs, query_value};
use crate::error::GatewayError;

fn remote(status: tonic::Status) -> SwiftResponse {
    response::from_s3(&GatewayError::Remote(status.into()).into())
}

pub async fn handle(api: &SwiftApi, req: Request<Incoming>, target: Target) -> SwiftResponse {
    let access = match *req.method() {
        Method::GET | Method::HEAD => Access::ContainerRead,
        _ => Access::ContainerAdmin,
    };
    if let Err(denied) = api.allowed(&target, access).await {
        return denied;
    }
    let name = target.container.clone().unwrap_or_default();
    match *req.method() {
        Method::PUT => create(api, &target, &name, req.headers()).await,
        Method::DELETE => delete(api, &target, &name).await,
        Method::HEAD | Method::GET => show(api, &req, &name, target.admin_here).await,
        Method::POST => match update_metadata(api, &name, req.headers()).await {
            Ok(()) => response::status(StatusCode::NO_CONTENT),
            Err(response) => response,
        },
        _ => response::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on a container"),
    }
}

async fn bucket(api: &SwiftApi, name: &str) -> Result<BucketRecord, SwiftResponse> {
    match api.metadata.rpc().get_bucket(GetBucketRequest { name: name.to_string() }).await {
        Ok(r) => r.into_inner().bucket.ok_or_else(|| response::error(StatusCode::NOT_FOUND, "no such container")),
        Err(status) => Err(remote(status)),
    }
}

async fn update_metadata(api: &SwiftApi, name: &str, headers: &HeaderMap) -> Result<(), SwiftResponse> {
    quota::validate(headers)?;
    let current = bucket(api, name).await?;
    let mut metadata = meta::merged(&current.metadata, headers, Scope::Container)?;
    versioned_writes::apply(headers, &mut metadata)?;
    if metadata == current.metadata {
        return Ok(());
    }
    let request = SetBucketMetadataRequest { name: name.to_string(), metadata };
    api.metadata.rpc().set_bucket_metadata(request).await.map_err(remote)?;
    // Quotas and ACLs apply from the next request on.
    api.authorizer.owners.forget(name);
    Ok(())
}

async fn create(api: &SwiftApi, target: &Target, name: &str, headers: &HeaderMap) -> SwiftResponse {
    if name.contains('/') || name.is_empty() {
        return response::error(StatusCode::BAD_REQUEST, "Invalid container name");
    }
    // An empty value asks for the default policy, as in Swift.
    if let Some(policy) = header(headers, "x-storage-policy").map(str::trim).filter(|p| !p.is_empty())
        && !policy.eq_ignore_ascii_case("default")
    {
        return response::error(StatusCode::BAD_REQUEST, &format!("Invalid X-Storage-Policy {policy:?}"));
    }
    // Validate the metadata before anything is created.
    if let Err(response) = quota::validate(headers)
        .and_then(|_| meta::merged(&HashMap::new(), headers, Scope::Container))
        .and_then(|mut metadata| versioned_writes::apply(headers, &mut metadata))
    {
        return response;
    }
    let input = match CreateBucketInput::builder().bucket(name.to_string()).build() {
        Ok(input) => input,
        Err(e) => return response::error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let created = match api.s3.create_bucket(api.s3_request(target, input, HeaderMap::new())).await {
        Ok(_) => StatusCode::CREATED,
        Err(e) if *e.code() == s3s::S3ErrorCode::BucketAlreadyOwnedByYou => StatusCode::ACCEPTED,
        Err(e) => return response::from_s3(&e),
    };
    api.authorizer.owners.forget(name);
    match update_metadata(api, name, headers).await {
        Ok(()) => response::status(created),
        Err(response) => response,
    }
}

pub(super) async fn delete(api: &SwiftApi, target: &Target, name: &str) -> SwiftResponse {
    let input = match DeleteBucketInput::builder().bucket(name.to_string()).build() {
        Ok(input) => input,
        Err(e) => return response::error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match api.s3.delete_bucket(api.s3_request(target, input, HeaderMap::new())).await {
        Ok(_) => {
            api.authorizer.owners.forget(name);
            response::status(StatusCode::NO_CONTENT)
        }
        Err(e) if *e.code() == s3s::S3ErrorCode::BucketNotEmpty => {
            response::error(StatusCode::CONFLICT, "There was a conflict when trying to complete your request.")
        }
        Err(e) => response::from_s3(&e),
    }
}

async fn show(api: &SwiftApi, req: &Request<Incoming>, name: &str, admin: bool) -> SwiftResponse {
    let record = match bucket(api, name).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let usage = match api.metadata.rpc().get_bucket_usage(GetBucketUsageRequest { name: name.to_string() }).await {
        Ok(r) => r.into_inner(),
        Err(status) => return remote(status),
    };
    let mut response = if req.method() == Method::HEAD {
        response::status(StatusCode::NO_CONTENT)
    } else {
        match list(api, req, name).await {
            Ok(response) => response,
            Err(response) => return response,
        }
    };
    response::set(&mut response, "x-container-object-count", &usage.objects.to_string());
    response::set(&mut response, "x-container-bytes-used", &usage.bytes.to_string());
    let timestamp = format!("{}.{:05}", record.created_unix_ms / 1000, (record.created_unix_ms % 1000) * 100);
    response::set(&mut response, "x-timestamp", &timestamp);
    response::set(&mut response, "last-modified", &response::http_date(record.created_unix_ms));
    response::set(&mut response, "x-storage-policy", "default");
    // ACLs are the owner's business; other readers see the container's metadata only.
    for (header_name, key) in [("x-container-read", acl::READ_KEY), ("x-container-write", acl::WRITE_KEY)] {
        if let Some(value) = record.metadata.get(key).filter(|_| admin) {
            response::set(&mut response, header_name, value);
        }
    }
    versioned_writes::show(&mut response, &record.metadata);
    meta::emit(&mut response, &record.metadata, Scope::Container);
    response
}

async fn list(api: &SwiftApi, req: &Request<Incoming>, name: &str) -> Result<SwiftResponse, SwiftResponse> {
    let query = query_pairs(req.uri().query());
    let limit = super::listing_limit(&query, CONTAINER_LISTING_LIMIT as usize)? as u32;
    let reverse = query_value(&query, "reverse").is_some_and(super::is_true);
    // `path=P` is `prefix=P/` with `/` as delimiter, as in Swift.
    let (prefix, delimiter) = match query_value(&query, "path") {
        Some(path) if !path.is_empty() => (format!("{}/", path.trim_end_matches('/')), "/".to_string()),
        Some(_) => (String::new(), "/".to_string()),
        None => (
            query_value(&query, "prefix").unwrap_or_default().to_string(),
            query_value(&query, "delimiter").unwrap_or_default().to_string(),
        ),
    };
    let end_marker = query_value(&query, "end_marker").filter(|e| !e.is_empty());
    let request = ListObjectsRequest {
        bucket: name.to_string(),
        prefix,
        delimiter,
        start_after: query_value(&query, "marker").unwrap_or_default().to_string(),
        max_keys: limit,
        reverse,
        start_at: String::new(),
    };
    let listing = api.s3.plane.listings.list_objects(request).await.map_err(remote)?.into_inner();
    let mut items: Vec<ContainerItem> = listing
        .objects
        .into_iter()
        .map(|o| {
            ContainerItem::Object(ObjectEntry {
                hash: o.etag,
                bytes: o.size,
                content_type: if o.content_type.is_empty() {
                    "application/octet-stream".into()
                } else {
                    o.content_type
                },
                last_modified: listing::swift_time(o.last_modified_unix_ms),
                name: o.key,
            })
        })
        .chain(listing.common_prefixes.into_iter().map(ContainerItem::Subdir))
        .filter(|item| end_marker.is_none_or(|end| if reverse { item.name() > end } else { item.name() < end }))
        .collect();
    if reverse {
        items.sort_by(|a, b| b.name().cmp(a.name()));
    } else {
        items.sort_by(|a, b| a.name().cmp(b.name()));
    }
    let format = Format::choose(query_value(&query, "format"), header(req.headers(), "accept"));
    if items.is_empty() && format == Format::Plain {
        return Ok(response::status(StatusCode::NO_CONTENT));
    }
    Ok(response::body(StatusCode::OK, format.content_type(), listing::render_container(format, name, &items)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_headers_set_replace_and_remove() {
        let current: HashMap<String, String> =
            [("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())].into();
        let mut headers = HeaderMap::new();
        headers.insert("x-container-meta-a", "one".parse().unwrap());
        headers.insert("x-remove-container-meta-b", "x".parse().unwrap());
        headers.insert("x-container-meta-c", "3".parse().unwrap());
        let merged = meta::merged(&current, &headers, Scope::Container).unwrap();
        assert_eq!(merged, [("a".to_string(), "one".to_string()), ("c".to_string(), "3".to_string())].into());
        let mut too_long = HeaderMap::new();
        too_long.insert("x-container-meta-k", "v".repeat(super::super::MAX_META_VALUE + 1).parse().unwrap());
        assert!(meta::merged(&current, &too_long, Scope::Container).is_err());
    }
}
