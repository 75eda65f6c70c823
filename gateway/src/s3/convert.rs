//! Conversions between metadata records and s3s DTOs, and the small helpers every handler uses.

use std::time::{SystemTime, UNIX_EPOCH};

use coffer_proto::RemoteError;
use coffer_proto::pb::metadata::ObjectRecord;
use s3s::dto::{ETag, Metadata, Owner, Timestamp, TimestampFormat};
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::error::GatewayError;

/// Unwraps a metadata call, turning a failure into the gateway's error.
pub fn remote<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Result<T, GatewayError> {
    result.map(tonic::Response::into_inner).map_err(|s| GatewayError::Remote(RemoteError::from(s)))
}

pub fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A time as S3 shows it: whole seconds (`.000Z` in XML), as S3 keeps them, so that every
/// response naming one object or part shows the same time.
pub fn timestamp(unix_ms: i64) -> Timestamp {
    let nanos = i128::from(unix_ms - unix_ms.rem_euclid(1000)) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(time::OffsetDateTime::UNIX_EPOCH).into()
}

/// Whole seconds since the epoch; HTTP dates carry no more precision than that.
pub fn unix_seconds(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_string())
}

pub fn owner(root_access_key: &str) -> Owner {
    Owner { id: Some(owner_id(root_access_key)), display_name: Some(root_access_key.to_string()) }
}

/// A stable, opaque canonical id for the account, as AWS shows one.
fn owner_id(root_access_key: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(format!("coffer-owner:{root_access_key}").as_bytes())).repeat(2)
}

pub fn http_date(ts: &Timestamp) -> String {
    let mut out = Vec::new();
    match ts.format(TimestampFormat::HttpDate, &mut out) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    if s.is_empty() { None } else { Timestamp::parse(TimestampFormat::HttpDate, s).ok() }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The headers an object carries, as given on PUT, CopyObject (REPLACE) or CreateMultipartUpload.
#[derive(Default)]
pub struct ObjectHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<Timestamp>,
    pub metadata: Option<Metadata>,
    pub storage_class: Option<String>,
    /// An Expires header that is no date, stored as given when `expires` is empty.
    pub raw_expires: Option<String>,
    /// Validated by `tagging::from_header` before any byte is stored.
    pub tags: std::collections::HashMap<String, String>,
}

impl ObjectHeaders {
    pub fn into_record(self, bucket: &str, key: &str) -> ObjectRecord {
        ObjectRecord {
            bucket: bucket.to_string(),
            key: key.to_string(),
            content_type: self.content_type.unwrap_or_else(|| "binary/octet-stream".to_string()),
            content_encoding: self.content_encoding.unwrap_or_default(),
            content_disposition: self.content_disposition.unwrap_or_default(),
            content_language: self.content_language.unwrap_or_default(),
            cache_control: self.cache_control.unwrap_or_default(),
            expires: self.expires.as_ref().map(http_date).or(self.raw_expires).unwrap_or_default(),
            user_metadata: self.metadata.unwrap_or_default().into_iter().collect(),
            storage_class: self.storage_class.unwrap_or_default(),
            tags: self.tags,
            ..Default::default()
        }
    }
}

/// Read-side view of a record's headers, with the `response-*` overrides applied.
pub struct StoredHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<Timestamp>,
    /// A stored Expires that is no HTTP date (S3 keeps what it was given).
    pub raw_expires: Option<String>,
    pub metadata: Option<Metadata>,
}

impl StoredHeaders {
    pub fn of(record: &ObjectRecord) -> Self {
        StoredHeaders {
            content_type: non_empty(&record.content_type),
            content_encoding: non_empty(&record.content_encoding),
            content_disposition: non_empty(&record.content_disposition),
            content_language: non_empty(&record.content_language),
            cache_control: non_empty(&record.cache_control),
            expires: parse_http_date(&record.expires),
            raw_expires: (!record.expires.is_empty() && parse_http_date(&record.expires).is_none())
                .then(|| record.expires.clone()),
            metadata: (!record.user_metadata.is_empty())
                .then(|| record.user_metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        }
    }
}

pub fn invalid_argument(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message.into())
}

/// The size limit of one PUT or one part (AWS: 5 GiB).
pub const MAX_PUT_BYTES: u64 = 5 << 30;

/// Decodes a Content-MD5 header (base64 of 16 bytes).
pub fn content_md5(header: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    use base64::Engine;
    let Some(value) = header else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| S3Error::from(GatewayError::InvalidDigest))?;
    let digest: [u8; 16] = bytes.try_into().map_err(|_| S3Error::from(GatewayError::InvalidDigest))?;
    Ok(Some(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_round_trip() {
        let ts = timestamp(1_700_000_000_000);
        let text = http_date(&ts);
        assert_eq!(text, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(parse_http_date(&text).map(|t| unix_seconds(&t)), Some(1_700_000_000));
    }

    #[test]
    fn content_md5_must_be_16_bytes_of_base64() {
        assert!(content_md5(Some("1B2M2Y8AsgTpgAmY7PhCfg==")).expect("valid").is_some());
        assert!(content_md5(Some("not base64!")).is_err());
        assert!(content_md5(Some("AAAA")).is_err());
        assert!(content_md5(None).expect("absent").is_none());
    }
}
