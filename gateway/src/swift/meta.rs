//! `X-Account-Meta-*` and `X-Container-Meta-*`: applying a request's metadata headers to what is
//! stored (set, replace, remove with an empty value or `X-Remove-…`), with Swift's limits, and
//! writing the stored metadata back as headers. Container ACLs ride along under reserved names.

use std::collections::HashMap;

use http::{HeaderMap, StatusCode};

use super::acl;
use super::response::{self, SwiftResponse};
use super::{MAX_META_NAME, MAX_META_VALUE};

/// Swift's limits on one account's or container's metadata.
const MAX_META_COUNT: usize = 90;
const MAX_META_OVERALL: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Account,
    Container,
}

impl Scope {
    fn prefix(self) -> &'static str {
        match self {
            Scope::Account => "x-account-meta-",
            Scope::Container => "x-container-meta-",
        }
    }

    fn remove_prefix(self) -> &'static str {
        match self {
            Scope::Account => "x-remove-account-meta-",
            Scope::Container => "x-remove-container-meta-",
        }
    }
}

/// Where a container ACL header is stored in the metadata map.
fn acl_key(header_name: &str) -> Option<&'static str> {
    match header_name {
        "x-container-read" => Some(acl::READ_KEY),
        "x-container-write" => Some(acl::WRITE_KEY),
        _ => None,
    }
}

/// The metadata after applying the request's headers.
pub fn merged(
    current: &HashMap<String, String>,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<HashMap<String, String>, SwiftResponse> {
    let mut metadata = current.clone();
    for (name, value) in headers {
        let name = name.as_str();
        let value = String::from_utf8_lossy(value.as_bytes());
        // Swift clients send UTF-8 in metadata values, which `to_str` (visible ASCII only) would drop.
        let value = value.trim();
        let acl = if scope == Scope::Container { acl_key(name) } else { None };
        let removed_acl = if scope == Scope::Container {
            name.strip_prefix("x-remove-").and_then(|rest| acl_key(&format!("x-{rest}")))
        } else {
            None
        };
        if let Some(key) = name.strip_prefix(scope.prefix()) {
            if key.len() > MAX_META_NAME || value.len() > MAX_META_VALUE {
                return Err(response::error(StatusCode::BAD_REQUEST, "Metadata name or value too long"));
            }
            if value.is_empty() {
                metadata.remove(key);
            } else {
                metadata.insert(key.to_string(), value.to_string());
            }
        } else if let Some(key) = name.strip_prefix(scope.remove_prefix()) {
            metadata.remove(key);
        } else if let Some(stored) = acl {
            if value.is_empty() {
                metadata.remove(stored);
            } else {
                metadata.insert(stored.to_string(), value.to_string());
            }
        } else if let Some(stored) = removed_acl {
            metadata.remove(stored);
        }
    }
    let overall: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if metadata.len() > MAX_META_COUNT || overall > MAX_META_OVERALL {
        return Err(response::error(StatusCode::BAD_REQUEST, "Too many metadata items or metadata too large"));
    }
    Ok(metadata)
}

/// Writes the stored metadata as `X-…-Meta-*` headers (reserved names, such as ACLs, excluded).
pub fn emit(response: &mut SwiftResponse, metadata: &HashMap<String, String>, scope: Scope) {
    for (key, value) in metadata.iter().filter(|(key, _)| !key.starts_with(':')) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::try_from(format!("{}{key}", scope.prefix())), http::HeaderValue::from_str(value))
        {
            response.headers_mut().insert(name, value);
        }
    }
}
