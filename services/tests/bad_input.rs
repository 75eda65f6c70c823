//! Bad requests get their S3 error code, and nothing is stored.

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::*;

fn raw(method: &str, url: &str) -> (u16, String) {
    let response = match ureq::request(method, url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    (status, response.into_string().unwrap_or_default())
}

fn code_of(body: &str) -> &str {
    body.split("<Code>").nth(1).and_then(|s| s.split("</Code>").next()).unwrap_or("")
}

#[test]
fn authentication_failures() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    let rt = runtime();
    rt.block_on(async { s3.create_bucket().bucket("auth").send().await.expect("create") });

    // Unsigned.
    let (status, body) = raw("GET", &format!("{}/auth", server.endpoint()));
    assert_eq!((status, code_of(&body)), (403, "AccessDenied"), "{body}");
    assert!(body.contains("<RequestId>"), "error without request id: {body}");

    rt.block_on(async {
        // Wrong secret, unknown key.
        let wrong = client_with(&server.endpoint(), ACCESS_KEY, "not-the-secret");
        assert_eq!(error_code(wrong.list_buckets().send().await), "SignatureDoesNotMatch");
        let unknown = client_with(&server.endpoint(), "nobody", "whatever-secret");
        assert_eq!(error_code(unknown.list_buckets().send().await), "InvalidAccessKeyId");

        // Clock skew beyond 15 minutes.
        let skewed_time = SystemTime::now() - Duration::from_secs(20 * 60);
        let config = s3
            .config()
            .to_builder()
            .time_source(aws_smithy_async::time::StaticTimeSource::new(skewed_time))
            // The SDK corrects its clock from the error and retries; the first answer is the test.
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        let skewed = aws_sdk_s3::Client::from_conf(config);
        assert_eq!(error_code(skewed.list_buckets().send().await), "RequestTimeTooSkewed");

        // Presigned URLs: a fresh one works, an expired one is refused.
        put_bytes(&s3, "auth", "k", b"presigned".to_vec()).await;
        let fresh = s3
            .get_object()
            .bucket("auth")
            .key("k")
            .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("config"))
            .await
            .expect("presign");
        let (status, body) = raw("GET", fresh.uri());
        assert_eq!((status, body.as_str()), (200, "presigned"));
        let short = s3
            .get_object()
            .bucket("auth")
            .key("k")
            .presigned(PresigningConfig::expires_in(Duration::from_secs(1)).expect("config"))
            .await
            .expect("presign");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let (status, body) = raw("GET", short.uri());
        assert_eq!((status, code_of(&body)), (403, "AccessDenied"), "{body}");
    });
}

#[test]
fn invalid_input_is_refused_and_nothing_is_stored() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("bad").send().await.expect("create");
        for name in ["Bad_Bucket", "ab", "-leading", "a..b", "192.168.1.1"] {
            assert_eq!(error_code(s3.create_bucket().bucket(name).send().await), "InvalidBucketName", "{name}");
        }
        let listed = s3.list_buckets().send().await.expect("list");
        assert_eq!(listed.buckets().len(), 1);

        let long_key = "k".repeat(1025);
        assert_eq!(
            error_code(s3.put_object().bucket("bad").key(&long_key).body(ByteStream::from_static(b"x")).send().await),
            "KeyTooLongError"
        );
        let ok_key = "k".repeat(1024);
        put_bytes(&s3, "bad", &ok_key, b"fits".to_vec()).await;
        s3.delete_object().bucket("bad").key(&ok_key).send().await.expect("delete");

        // Content-MD5 of other bytes: BadDigest, for an inline and a striped body.
        for size in [10usize, 1024 * 1024] {
            let result = s3
                .put_object()
                .bucket("bad")
                .key("digest")
                .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
                .body(ByteStream::from(pattern(size, 5)))
                .send()
                .await;
            assert_eq!(error_code(result), "BadDigest", "{size} bytes");
            assert_eq!(error_code(s3.head_object().bucket("bad").key("digest").send().await), "NotFound");
        }
        let result = s3
            .put_object()
            .bucket("bad")
            .key("digest")
            .content_md5("not-base64")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        assert_eq!(error_code(result), "InvalidDigest");

        // Completing with a wrong part ETag: InvalidPart, and no object appears.
        let upload = s3.create_multipart_upload().bucket("bad").key("mp").send().await.expect("create upload");
        let id = upload.upload_id().expect("id");
        s3.upload_part()
            .bucket("bad")
            .key("mp")
            .upload_id(id)
            .part_number(1)
            .body(ByteStream::from(pattern(1000, 1)))
            .send()
            .await
            .expect("part");
        let wrong = CompletedMultipartUpload::builder()
            .parts(CompletedPart::builder().part_number(1).e_tag("\"0123456789abcdef0123456789abcdef\"").build())
            .build();
        assert_eq!(
            error_code(
                s3.complete_multipart_upload()
                    .bucket("bad")
                    .key("mp")
                    .upload_id(id)
                    .multipart_upload(wrong)
                    .send()
                    .await
            ),
            "InvalidPart"
        );
        let missing = CompletedMultipartUpload::builder()
            .parts(CompletedPart::builder().part_number(7).e_tag("\"0123456789abcdef0123456789abcdef\"").build())
            .build();
        assert_eq!(
            error_code(
                s3.complete_multipart_upload()
                    .bucket("bad")
                    .key("mp")
                    .upload_id(id)
                    .multipart_upload(missing)
                    .send()
                    .await
            ),
            "InvalidPart"
        );
        assert_eq!(error_code(s3.head_object().bucket("bad").key("mp").send().await), "NotFound");
        assert_eq!(
            error_code(
                s3.upload_part()
                    .bucket("bad")
                    .key("mp")
                    .upload_id("no-such-upload")
                    .part_number(1)
                    .body(ByteStream::from_static(b"x"))
                    .send()
                    .await
            ),
            "NoSuchUpload"
        );
        let listed = s3.list_objects_v2().bucket("bad").send().await.expect("list");
        assert_eq!(listed.key_count(), Some(0));
    });
}
