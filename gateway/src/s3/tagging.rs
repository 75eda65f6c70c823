//! Object tags with S3's rules: at most 10 per object, keys of 1 to 128 characters, values of up
//! to 256, no key twice, nothing in the reserved `aws:` namespace. Tags arrive as a `Tagging`
//! document (PutObjectTagging) or as the URL-encoded `x-amz-tagging` header (PutObject,
//! CopyObject with `x-amz-tagging-directive: REPLACE`, CreateMultipartUpload).

use std::collections::HashMap;

use coffer_proto::pb::metadata::{GetBucketRequest, PutBucketTagsRequest, PutObjectTagsRequest};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::convert::remote;

pub const MAX_TAGS: usize = 10;
pub const MAX_BUCKET_TAGS: usize = 50;
pub const MAX_KEY_CHARS: usize = 128;
pub const MAX_VALUE_CHARS: usize = 256;

fn invalid_tag(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidTag, message.into())
}

fn validate(pairs: Vec<(String, String)>) -> S3Result<HashMap<String, String>> {
    if pairs.len() > MAX_TAGS {
        // AWS answers this one with the generic 400 code `BadRequest`, which s3s has no variant for.
        let mut error =
            S3Error::with_message(S3ErrorCode::Custom("BadRequest".into()), "Object tags cannot be greater than 10");
        error.set_status_code(http::StatusCode::BAD_REQUEST);
        return Err(error);
    }
    let mut tags = HashMap::with_capacity(pairs.len());
    for (key, value) in pairs {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_KEY_CHARS {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid_tag("Your TagKey cannot be prefixed with aws:"));
        }
        if tags.insert(key, value).is_some() {
            return Err(invalid_tag("Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(tags)
}

/// The tags of an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded); none when absent.
pub fn from_header(header: Option<&str>) -> S3Result<HashMap<String, String>> {
    let Some(header) = header.filter(|h| !h.is_empty()) else {
        return Ok(HashMap::new());
    };
    let decode = |s: &str| -> S3Result<String> {
        let plus_as_space = s.replace('+', " ");
        percent_encoding::percent_decode_str(&plus_as_space)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| invalid_tag("The x-amz-tagging header is not valid UTF-8"))
    };
    let pairs = header
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(key)?, decode(value)?))
        })
        .collect::<S3Result<Vec<_>>>()?;
    validate(pairs)
}

fn pairs(tag_set: TagSet) -> Vec<(String, String)> {
    tag_set.into_iter().map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default())).collect()
}

fn from_tag_set(tag_set: TagSet) -> S3Result<HashMap<String, String>> {
    validate(pairs(tag_set))
}

/// A bucket's tag set: up to 50 tags, each with the object tags' rules.
fn bucket_tags(tag_set: TagSet) -> S3Result<HashMap<String, String>> {
    let pairs = pairs(tag_set);
    if pairs.len() > MAX_BUCKET_TAGS {
        return Err(invalid_tag("Bucket tag count cannot be greater than 50"));
    }
    // The per-tag rules are the objects'; only the count differs.
    pairs.chunks(MAX_TAGS).try_fold(HashMap::new(), |mut all, chunk| {
        for (key, value) in validate(chunk.to_vec())? {
            if all.insert(key, value).is_some() {
                return Err(invalid_tag("Cannot provide multiple Tags with the same key"));
            }
        }
        Ok(all)
    })
}

/// The record's tags in key order, as S3 lists them.
pub fn tag_set(tags: &HashMap<String, String>) -> TagSet {
    let mut set: Vec<Tag> = tags.iter().map(|(k, v)| Tag { key: Some(k.clone()), value: Some(v.clone()) }).collect();
    set.sort_by(|a, b| a.key.cmp(&b.key));
    set
}

/// `x-amz-tagging-count` of GET and HEAD: only when the object has tags.
pub fn tag_count(tags: &HashMap<String, String>) -> Option<i32> {
    (!tags.is_empty()).then_some(tags.len() as i32)
}

impl CofferS3 {
    async fn set_bucket_tags(&self, bucket: &str, tags: HashMap<String, String>) -> S3Result<()> {
        let request = PutBucketTagsRequest { name: bucket.to_string(), tags };
        remote(self.plane.metadata.rpc().put_bucket_tags(request).await)?;
        Ok(())
    }

    pub(super) async fn do_put_bucket_tagging(&self, input: PutBucketTaggingInput) -> S3Result<PutBucketTaggingOutput> {
        let tags = bucket_tags(input.tagging.tag_set)?;
        self.set_bucket_tags(&input.bucket, tags).await?;
        Ok(PutBucketTaggingOutput::default())
    }

    pub(super) async fn do_get_bucket_tagging(&self, input: GetBucketTaggingInput) -> S3Result<GetBucketTaggingOutput> {
        let request = GetBucketRequest { name: input.bucket };
        let bucket = remote(self.plane.metadata.rpc().get_bucket(request).await)?.bucket.unwrap_or_default();
        if bucket.tags.is_empty() {
            return Err(S3Error::with_message(S3ErrorCode::NoSuchTagSet, "The TagSet does not exist"));
        }
        Ok(GetBucketTaggingOutput { tag_set: tag_set(&bucket.tags) })
    }

    pub(super) async fn do_delete_bucket_tagging(
        &self,
        input: DeleteBucketTaggingInput,
    ) -> S3Result<DeleteBucketTaggingOutput> {
        self.set_bucket_tags(&input.bucket, HashMap::new()).await?;
        Ok(DeleteBucketTaggingOutput::default())
    }

    /// Sets the tags of the current object or of one version; the version set, if any.
    async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<String>,
        tags: HashMap<String, String>,
    ) -> S3Result<Option<String>> {
        if let Some(id) = version_id.as_deref() {
            // Checked first for S3's answers: NoSuchVersion, or 405 for a delete marker.
            self.get_version(bucket, key, Some(id)).await?;
        }
        let request = PutObjectTagsRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            tags,
            version_id: version_id.unwrap_or_default(),
        };
        let response = remote(self.plane.metadata.rpc().put_object_tags(request).await)?;
        Ok(response.record.as_ref().and_then(super::versioning::shown_id))
    }

    pub(super) async fn do_put_object_tagging(&self, input: PutObjectTaggingInput) -> S3Result<PutObjectTaggingOutput> {
        let tags = from_tag_set(input.tagging.tag_set)?;
        let version_id = self.set_tags(&input.bucket, &input.key, input.version_id, tags).await?;
        Ok(PutObjectTaggingOutput { version_id })
    }

    pub(super) async fn do_get_object_tagging(&self, input: GetObjectTaggingInput) -> S3Result<GetObjectTaggingOutput> {
        let record = self.get_version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        Ok(GetObjectTaggingOutput { tag_set: tag_set(&record.tags), version_id: super::versioning::shown_id(&record) })
    }

    pub(super) async fn do_delete_object_tagging(
        &self,
        input: DeleteObjectTaggingInput,
    ) -> S3Result<DeleteObjectTaggingOutput> {
        let version_id = self.set_tags(&input.bucket, &input.key, input.version_id, HashMap::new()).await?;
        Ok(DeleteObjectTaggingOutput { version_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_decode_and_limits_hold() {
        let tags = from_header(Some("project=coffer&owner=J%C3%BCrgen+K")).unwrap();
        assert_eq!(tags.get("owner").map(String::as_str), Some("Jürgen K"));
        assert_eq!(tags.len(), 2);
        assert!(from_header(None).unwrap().is_empty());
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        let too_many = from_header(Some(&eleven.join("&"))).unwrap_err();
        assert_eq!(
            (too_many.code().as_str(), too_many.status_code()),
            ("BadRequest", Some(http::StatusCode::BAD_REQUEST))
        );
        for bad in ["a=1&a=2", "aws:x=1", "=v"] {
            assert_eq!(from_header(Some(bad)).unwrap_err().code(), &S3ErrorCode::InvalidTag, "{bad}");
        }
        let long_key = format!("{}=v", "k".repeat(129));
        assert_eq!(from_header(Some(&long_key)).unwrap_err().code(), &S3ErrorCode::InvalidTag);
        let long_value = format!("k={}", "v".repeat(257));
        assert_eq!(from_header(Some(&long_value)).unwrap_err().code(), &S3ErrorCode::InvalidTag);
        assert!(from_header(Some(&format!("{}={}", "k".repeat(128), "v".repeat(256)))).is_ok());
    }

    #[test]
    fn buckets_take_up_to_fifty_tags() {
        let set = |n: usize| -> TagSet {
            (0..n).map(|i| Tag { key: Some(format!("k{i}")), value: Some("v".into()) }).collect()
        };
        assert_eq!(bucket_tags(set(50)).unwrap().len(), 50);
        assert_eq!(bucket_tags(set(51)).unwrap_err().code(), &S3ErrorCode::InvalidTag);
        let mut twice = set(12);
        twice.push(Tag { key: Some("k0".into()), value: Some("again".into()) });
        assert_eq!(bucket_tags(twice).unwrap_err().code(), &S3ErrorCode::InvalidTag);
    }

    #[test]
    fn tag_sets_list_in_key_order() {
        let tags: HashMap<String, String> = [("b".into(), "2".into()), ("a".into(), "1".into())].into();
        let keys: Vec<_> = tag_set(&tags).into_iter().filter_map(|t| t.key).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(tag_count(&tags), Some(2));
        assert_eq!(tag_count(&HashMap::new()), None);
    }
}
