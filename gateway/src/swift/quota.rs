//! Container quotas, as Swift's container_quotas middleware: `X-Container-Meta-Quota-Bytes` and
//! `X-Container-Meta-Quota-Count` (whole numbers, checked when set) refuse a write that would take
//! the container past them with 413. The usage figures are the metadata service's exact counters;
//! they are read only for containers that have a quota.

use std::collections::HashMap;

use coffer_proto::pb::metadata::GetBucketUsageRequest;
use http::{HeaderMap, StatusCode};

use super::response::{self, SwiftResponse};
use super::{SwiftApi, header};

/// Container metadata names (stored without the `x-container-meta-` prefix).
const BYTES: &str = "quota-bytes";
const COUNT: &str = "quota-count";

/// Refuses quota headers that are not whole numbers (an empty value removes the quota).
pub fn validate(headers: &HeaderMap) -> Result<(), SwiftResponse> {
    for (name, what) in [("x-container-meta-quota-bytes", "bytes"), ("x-container-meta-quota-count", "count")] {
        if let Some(value) = header(headers, name).map(str::trim)
            && !value.is_empty()
            && value.parse::<u64>().is_err()
        {
            return Err(response::error(StatusCode::BAD_REQUEST, &format!("Invalid {what} quota.")));
        }
    }
    Ok(())
}

fn limit(metadata: &HashMap<String, String>, name: &str) -> Option<u64> {
    metadata.get(name)?.trim().parse().ok()
}

/// Whether one more object of `incoming` bytes fits in `container`.
pub async fn check(api: &SwiftApi, container: &str, incoming: u64) -> Result<(), SwiftResponse> {
    let facts = match api.authorizer.owners.facts(container).await {
        Ok(Some(facts)) => facts,
        // No such container (the write answers that) or the lookup failed (so will the write).
        _ => return Ok(()),
    };
    let (max_bytes, max_count) = (limit(&facts.metadata, BYTES), limit(&facts.metadata, COUNT));
    if max_bytes.is_none() && max_count.is_none() {
        return Ok(());
    }
    let request = GetBucketUsageRequest { name: container.to_string() };
    let usage = api
        .metadata
        .rpc()
        .get_bucket_usage(request)
        .await
        .map_err(|_| response::error(StatusCode::SERVICE_UNAVAILABLE, "cannot read the container's usage"))?
        .into_inner();
    let over_bytes = max_bytes.is_some_and(|max| usage.bytes.saturating_add(incoming) > max);
    let over_count = max_count.is_some_and(|max| usage.objects.saturating_add(1) > max);
    if over_bytes || over_count {
        return Err(response::error(StatusCode::PAYLOAD_TOO_LARGE, "Upload exceeds quota."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_must_be_whole_numbers() {
        let with = |name: &'static str, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, value.parse().unwrap());
            validate(&headers).err().map(|r| r.status())
        };
        assert_eq!(with("x-container-meta-quota-bytes", "100"), None);
        assert_eq!(with("x-container-meta-quota-bytes", ""), None);
        assert_eq!(with("x-container-meta-quota-bytes", "1.5"), Some(StatusCode::BAD_REQUEST));
        assert_eq!(with("x-container-meta-quota-count", "-1"), Some(StatusCode::BAD_REQUEST));
        let meta: HashMap<String, String> = [(BYTES.to_string(), " 10 ".to_string())].into();
        assert_eq!(limit(&meta, BYTES), Some(10));
        assert_eq!(limit(&meta, COUNT), None);
    }
}
