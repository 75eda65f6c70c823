//! Bucket lifecycle through the Rust AWS SDK against a `coffer server` whose lifecycle days last two
//! seconds: objects expire (by prefix and by tag), noncurrent versions and lone delete markers go,
//! incomplete multipart uploads are aborted, and objects outside the filters stay.

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, Tag, VersioningConfiguration,
};

use crate::common::*;

fn rule(id: &str, filter: LifecycleRuleFilter) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder().id(id).status(ExpirationStatus::Enabled).filter(filter)
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().expect("tag")
}

async fn configure(s3: &Client, bucket: &str, rules: Vec<LifecycleRule>) {
    let config = BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().expect("config");
    s3.put_bucket_lifecycle_configuration().bucket(bucket).lifecycle_configuration(config).send().await.expect("put");
}

async fn exists(s3: &Client, bucket: &str, key: &str) -> bool {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => true,
        Err(e) => {
            let text = format!("{e:?}");
            assert!(text.contains("NotFound") || text.contains("404"), "head {key}: {text}");
            false
        }
    }
}

/// (key, is delete marker) of every version in `bucket`.
async fn versions(s3: &Client, bucket: &str) -> Vec<(String, bool)> {
    let listed = s3.list_object_versions().bucket(bucket).send().await.expect("versions");
    let mut out: Vec<(String, bool)> =
        listed.versions().iter().map(|v| (v.key().unwrap_or_default().to_string(), false)).collect();
    out.extend(listed.delete_markers().iter().map(|m| (m.key().unwrap_or_default().to_string(), true)));
    out.sort();
    out
}

#[test]
fn lifecycle_rules_expire_objects_versions_and_uploads() {
    let server = Embedded::start(&["--lifecycle-day-seconds", "2", "--lifecycle-interval", "200ms"]);
    let s3 = server.client();
    runtime().block_on(async {
        for bucket in ["plain", "versioned", "uploads"] {
            s3.create_bucket().bucket(bucket).send().await.expect("create");
        }
        assert_eq!(
            error_code(s3.get_bucket_lifecycle_configuration().bucket("plain").send().await),
            "NoSuchLifecycleConfiguration"
        );

        // Unversioned: expire logs/ and objects tagged expire=yes after one day.
        let by_prefix = rule("logs", LifecycleRuleFilter::builder().prefix("logs/").build())
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .expect("rule");
        let by_tag = rule("tagged", LifecycleRuleFilter::builder().tag(tag("expire", "yes")).build())
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .expect("rule");
        configure(&s3, "plain", vec![by_prefix, by_tag]).await;
        let stored = s3.get_bucket_lifecycle_configuration().bucket("plain").send().await.expect("get");
        let ids: Vec<_> = stored.rules().iter().filter_map(|r| r.id()).collect();
        assert_eq!(ids, ["logs", "tagged"]);
        assert_eq!(stored.rules()[0].filter().and_then(|f| f.prefix()), Some("logs/"));
        assert_eq!(stored.rules()[1].filter().and_then(|f| f.tag()).map(|t| t.value()), Some("yes"));
        for key in ["logs/a", "keep/b"] {
            put_bytes(&s3, "plain", key, b"data".to_vec()).await;
        }
        for (key, tagging) in [("keep/t", "expire=yes"), ("keep/u", "expire=no")] {
            s3.put_object()
                .bucket("plain")
                .key(key)
                .tagging(tagging)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .expect("put tagged");
        }

        // Versioned: noncurrent versions go after a day, then lone delete markers.
        let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        s3.put_bucket_versioning().bucket("versioned").versioning_configuration(enabled).send().await.expect("v");
        let noncurrent = rule("old", LifecycleRuleFilter::builder().prefix("").build())
            .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build())
            .expiration(LifecycleExpiration::builder().expired_object_delete_marker(true).build())
            .build()
            .expect("rule");
        configure(&s3, "versioned", vec![noncurrent]).await;
        put_bytes(&s3, "versioned", "v", b"one".to_vec()).await;
        put_bytes(&s3, "versioned", "v", b"two".to_vec()).await;
        put_bytes(&s3, "versioned", "gone", b"x".to_vec()).await;
        s3.delete_object().bucket("versioned").key("gone").send().await.expect("delete");
        assert_eq!(versions(&s3, "versioned").await.len(), 4);

        // Incomplete uploads are aborted after a day.
        let abort = rule("abort", LifecycleRuleFilter::builder().prefix("").build())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build(),
            )
            .build()
            .expect("rule");
        configure(&s3, "uploads", vec![abort]).await;
        let upload = s3.create_multipart_upload().bucket("uploads").key("big").send().await.expect("create upload");
        let upload_id = upload.upload_id().expect("id").to_string();
        s3.upload_part()
            .bucket("uploads")
            .key("big")
            .upload_id(&upload_id)
            .part_number(1)
            .body(ByteStream::from(pattern(1 << 16, 1)))
            .send()
            .await
            .expect("part");

        // Due after one 2-second day, rounded up to the next day boundary: within about 4 s.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let plain_done = !exists(&s3, "plain", "logs/a").await && !exists(&s3, "plain", "keep/t").await;
            let versioned_done = versions(&s3, "versioned").await == [("v".to_string(), false)];
            let uploads = s3.list_multipart_uploads().bucket("uploads").send().await.expect("uploads");
            if plain_done && versioned_done && uploads.uploads().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "lifecycle did not act in time: {:?}", versions(&s3, "versioned").await);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(exists(&s3, "plain", "keep/b").await, "outside the prefix");
        assert!(exists(&s3, "plain", "keep/u").await, "another tag value");
        assert_eq!(get_bytes(&s3, "versioned", "v").await, b"two", "the current version stays");
        assert_eq!(
            error_code(s3.list_parts().bucket("uploads").key("big").upload_id(&upload_id).send().await),
            "NoSuchUpload"
        );

        s3.delete_bucket_lifecycle().bucket("plain").send().await.expect("delete config");
        assert_eq!(
            error_code(s3.get_bucket_lifecycle_configuration().bucket("plain").send().await),
            "NoSuchLifecycleConfiguration"
        );
    });
}
