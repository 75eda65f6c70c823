//! Account requests: the account's containers (GET) and its totals (HEAD).

use coffer_proto::pb::metadata::{
    GetAccountRequest, GetBucketUsageRequest, ListBucketsRequest, SetAccountMetadataRequest,
};
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::listing::{self, ContainerEntry, Format};
use super::meta::{self, Scope};
use super::response::{self, SwiftResponse};
use super::{ACCOUNT_LISTING_LIMIT, SwiftApi, Target, header, is_true, listing_limit, query_pairs, query_value};

pub async fn handle(api: &SwiftApi, req: Request<Incoming>, target: Target) -> SwiftResponse {
    match *req.method() {
        Method::GET | Method::HEAD => list(api, &req, &target).await,
        Method::POST => update_metadata(api, &req, &target).await,
        _ => response::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on an account"),
    }
}

async fn list(api: &SwiftApi, req: &Request<Incoming>, target: &Target) -> SwiftResponse {
    if !target.admin_here {
        return target.refusal();
    }
    let buckets = match api.metadata.rpc().list_buckets(ListBucketsRequest {}).await {
        Ok(r) => r.into_inner().buckets,
        Err(status) => return response::from_s3(&crate::error::GatewayError::Remote(status.into()).into()),
    };
    let query = query_pairs(req.uri().query());
    let prefix = query_value(&query, "prefix").unwrap_or_default();
    let marker = query_value(&query, "marker").unwrap_or_default();
    let end_marker = query_value(&query, "end_marker");
    let reverse = query_value(&query, "reverse").is_some_and(is_true);
    let delimiter = query_value(&query, "delimiter").filter(|d| !d.is_empty());
    let limit = match listing_limit(&query, ACCOUNT_LISTING_LIMIT) {
        Ok(limit) => limit,
        Err(response) => return response,
    };
    let mut owned: Vec<_> = buckets.into_iter().filter(|b| b.owner == target.account).collect();
    let (mut total_objects, mut total_bytes) = (0u64, 0u64);
    let mut entries = Vec::with_capacity(owned.len());
    for bucket in owned.drain(..) {
        let usage = match api.metadata.rpc().get_bucket_usage(GetBucketUsageRequest { name: bucket.name.clone() }).await
        {
            Ok(r) => r.into_inner(),
            Err(status) => return response::from_s3(&crate::error::GatewayError::Remote(status.into()).into()),
        };
        total_objects += usage.objects;
        total_bytes += usage.bytes;
        entries.push(ContainerEntry {
            name: bucket.name,
            count: usage.objects,
            bytes: usage.bytes,
            last_modified: listing::swift_time(bucket.created_unix_ms),
            subdir: false,
        });
    }
    let container_count = entries.len();
    let mut selected: Vec<ContainerEntry> = entries
        .into_iter()
        .filter(|c| c.name.starts_with(prefix))
        .filter(|c| if reverse { marker.is_empty() || c.name.as_str() < marker } else { c.name.as_str() > marker })
        .filter(|c| end_marker.is_none_or(|end| if reverse { c.name.as_str() > end } else { c.name.as_str() < end }))
        .collect();
    if let Some(delimiter) = delimiter {
        selected = roll_up(selected, prefix, delimiter);
    }
    if reverse {
        selected.reverse();
    }
    selected.truncate(limit);
    let format = Format::choose(query_value(&query, "format"), header(req.headers(), "accept"));
    let mut response = if req.method() == Method::HEAD || (selected.is_empty() && format == Format::Plain) {
        response::status(StatusCode::NO_CONTENT)
    } else {
        response::body(
            StatusCode::OK,
            format.content_type(),
            listing::render_account(format, &target.account, &selected),
        )
    };
    match api.metadata.rpc().get_account(GetAccountRequest { name: target.account.clone() }).await {
        Ok(r) => meta::emit(&mut response, &r.into_inner().account.unwrap_or_default().metadata, Scope::Account),
        Err(status) => return response::from_s3(&crate::error::GatewayError::Remote(status.into()).into()),
    }
    response::set(&mut response, "x-account-container-count", &container_count.to_string());
    response::set(&mut response, "x-account-object-count", &total_objects.to_string());
    response::set(&mut response, "x-account-bytes-used", &total_bytes.to_string());
    response
}

/// `POST` on the account: its `X-Account-Meta-*` (TempURL keys among them); admins only.
async fn update_metadata(api: &SwiftApi, req: &Request<Incoming>, target: &Target) -> SwiftResponse {
    if !target.admin_here {
        return target.refusal();
    }
    let remote = |status: tonic::Status| response::from_s3(&crate::error::GatewayError::Remote(status.into()).into());
    let current = match api.metadata.rpc().get_account(GetAccountRequest { name: target.account.clone() }).await {
        Ok(r) => r.into_inner().account.unwrap_or_default().metadata,
        Err(status) => return remote(status),
    };
    let metadata = match meta::merged(&current, req.headers(), Scope::Account) {
        Ok(metadata) => metadata,
        Err(response) => return response,
    };
    if metadata != current {
        let request = SetAccountMetadataRequest { name: target.account.clone(), metadata };
        if let Err(status) = api.metadata.rpc().set_account_metadata(request).await {
            return remote(status);
        }
    }
    response::status(StatusCode::NO_CONTENT)
}

/// Names with `delimiter` after `prefix` collapse into one `subdir` entry per common part.
fn roll_up(entries: Vec<ContainerEntry>, prefix: &str, delimiter: &str) -> Vec<ContainerEntry> {
    let mut out: Vec<ContainerEntry> = Vec::with_capacity(entries.len());
    for entry in entries {
        let rest = &entry.name[prefix.len().min(entry.name.len())..];
        match rest.find(delimiter) {
            Some(at) => {
                let subdir = format!("{prefix}{}", &rest[..at + delimiter.len()]);
                if out.last().is_none_or(|last| last.name != subdir) {
                    out.push(ContainerEntry { name: subdir, subdir: true, ..ContainerEntry::default() });
                }
            }
            None => out.push(entry),
        }
    }
    out
}
