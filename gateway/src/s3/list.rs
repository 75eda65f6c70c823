//! ListObjects (v1) and ListObjectsV2: a range scan in the metadata service, shaped here.

use base64::Engine;
use coffer_proto::pb::metadata::{ListObjectsRequest, ListObjectsResponse};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::S3Result;
use s3s::dto::*;

use super::CofferS3;
use super::convert::{etag, invalid_argument, owner, remote, timestamp};

const MAX_KEYS: i32 = 1000;

/// What `encoding-type=url` leaves alone: RFC 3986 unreserved characters and `/`.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

pub fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, KEEP).to_string()
}

fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

fn decode_token(token: &str) -> S3Result<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid_argument("The continuation token provided is incorrect"))?;
    String::from_utf8(bytes).map_err(|_| invalid_argument("The continuation token provided is incorrect"))
}

/// One page request, as both ListObjects versions phrase it.
struct Query<'a> {
    bucket: &'a str,
    prefix: &'a str,
    delimiter: &'a str,
    start_after: String,
    max_keys: i32,
    url: bool,
    fetch_owner: bool,
}

struct Listing {
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    response: ListObjectsResponse,
}

impl CofferS3 {
    async fn list(&self, query: Query<'_>) -> S3Result<Listing> {
        let Query { bucket, prefix, delimiter, start_after, max_keys, url, fetch_owner } = query;
        if max_keys < 0 {
            return Err(invalid_argument("max-keys must be a non-negative integer"));
        }
        let request = ListObjectsRequest {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            delimiter: delimiter.to_string(),
            start_after,
            max_keys: max_keys.min(MAX_KEYS) as u32,
            reverse: false,
            start_at: String::new(),
        };
        let response = remote(self.plane.listings.list_objects(request).await)?;
        let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
        let owner = fetch_owner.then(|| owner(&self.root_access_key));
        let objects = response
            .objects
            .iter()
            .map(|o| Object {
                key: Some(enc(&o.key)),
                size: Some(o.size as i64),
                e_tag: Some(etag(&o.etag)),
                last_modified: Some(timestamp(o.last_modified_unix_ms)),
                storage_class: Some(ObjectStorageClass::from(if o.storage_class.is_empty() {
                    ObjectStorageClass::STANDARD.to_string()
                } else {
                    o.storage_class.clone()
                })),
                owner: owner.clone(),
                ..Default::default()
            })
            .collect();
        let prefixes = response.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect();
        Ok(Listing { objects, prefixes, response })
    }

    pub(super) async fn do_list_objects(&self, input: ListObjectsInput) -> S3Result<ListObjectsOutput> {
        let url = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let marker = input.marker.clone().unwrap_or_default();
        let query = Query {
            bucket: &input.bucket,
            prefix: &prefix,
            delimiter: &delimiter,
            start_after: marker,
            max_keys,
            url,
            fetch_owner: true,
        };
        let listing = self.list(query).await?;
        let truncated = listing.response.is_truncated;
        Ok(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            delimiter: input.delimiter.map(enc),
            marker: Some(enc(input.marker.unwrap_or_default())),
            max_keys: Some(max_keys),
            is_truncated: Some(truncated),
            next_marker: truncated.then(|| enc(listing.response.next_marker.clone())),
            contents: Some(listing.objects),
            common_prefixes: Some(listing.prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        })
    }

    pub(super) async fn do_list_objects_v2(&self, input: ListObjectsV2Input) -> S3Result<ListObjectsV2Output> {
        let url = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let token_key = match input.continuation_token.as_deref() {
            Some(token) => decode_token(token)?,
            None => String::new(),
        };
        let start_after = token_key.max(input.start_after.clone().unwrap_or_default());
        let fetch_owner = input.fetch_owner.unwrap_or(false);
        let query = Query {
            bucket: &input.bucket,
            prefix: &prefix,
            delimiter: &delimiter,
            start_after,
            max_keys,
            url,
            fetch_owner,
        };
        let listing = self.list(query).await?;
        let truncated = listing.response.is_truncated;
        let key_count = (listing.objects.len() + listing.prefixes.len()) as i32;
        Ok(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            delimiter: input.delimiter.map(enc),
            max_keys: Some(max_keys),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            next_continuation_token: truncated.then(|| encode_token(&listing.response.next_marker)),
            is_truncated: Some(truncated),
            start_after: input.start_after.map(enc),
            contents: Some(listing.objects),
            common_prefixes: Some(listing.prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        assert_eq!(url_encode("a/b c+d~e_f.g-h"), "a/b%20c%2Bd~e_f.g-h");
        assert_eq!(url_encode("ü"), "%C3%BC");
    }

    #[test]
    fn tokens_round_trip() {
        for key in ["", "a", "dir/sub key/ü"] {
            assert_eq!(decode_token(&encode_token(key)).ok().as_deref(), Some(key));
        }
        assert!(decode_token("!!!").is_err());
    }
}
