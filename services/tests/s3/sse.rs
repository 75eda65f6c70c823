//! Server-side encryption through the Rust AWS SDK: SSE-S3, SSE-C, SSE-KMS from a key file, and
//! bucket default encryption.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use md5::{Digest, Md5};

use crate::common::*;

const MIB: usize = 1 << 20;

/// Standard base64 with padding (the SSE-C headers' encoding).
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A server with an SSE-KMS key file holding `k1` (the default) and `k2`.
fn kms_server() -> (Embedded, tempfile::TempDir) {
    let keys = tempfile::Builder::new().prefix("coffer-kms").tempdir_in(test_root()).expect("tempdir");
    let file = keys.path().join("kms.keys");
    std::fs::write(&file, format!("k1:{}\nk2:{}\n", b64(&[1; 32]), b64(&[2; 32]))).expect("write keys");
    let server = Embedded::start(&[
        "--console-address",
        "off",
        "--swift-address",
        "off",
        "--kms-key-file",
        file.to_str().expect("utf-8 path"),
    ]);
    (server, keys)
}

#[test]
fn sse_s3_objects_ranges_and_multipart() {
    let (server, _keys) = kms_server();
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("enc").send().await.expect("create");
        let body = pattern(2 * MIB + 777, 5);
        let put = s3
            .put_object()
            .bucket("enc")
            .key("obj")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put");
        assert_eq!(put.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
        assert_eq!(put.e_tag(), Some(format!("\"{}\"", md5_hex(&body)).as_str()));
        assert_eq!(get_bytes(&s3, "enc", "obj").await, body);
        for (first, last) in
            [(0u64, 0u64), (65_535, 65_536), (100, 1_500_000), (body.len() as u64 - 1, body.len() as u64 - 1)]
        {
            assert_eq!(
                get_range(&s3, "enc", "obj", first, last).await,
                &body[first as usize..=last as usize],
                "{first}-{last}"
            );
        }
        let head = s3.head_object().bucket("enc").key("obj").send().await.expect("head");
        assert_eq!(head.content_length(), Some(body.len() as i64));
        assert_eq!(head.server_side_encryption(), Some(&ServerSideEncryption::Aes256));

        let upload = s3
            .create_multipart_upload()
            .bucket("enc")
            .key("mp")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .expect("create upload");
        let id = upload.upload_id().expect("upload id");
        let parts = [pattern(5 * MIB, 1), pattern(100_000, 2)];
        let mut done = Vec::new();
        for (n, data) in parts.iter().enumerate() {
            let part = s3
                .upload_part()
                .bucket("enc")
                .key("mp")
                .upload_id(id)
                .part_number(n as i32 + 1)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .expect("part");
            done.push(CompletedPart::builder().part_number(n as i32 + 1).set_e_tag(part.e_tag).build());
        }
        let completed = s3
            .complete_multipart_upload()
            .bucket("enc")
            .key("mp")
            .upload_id(id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
            .send()
            .await
            .expect("complete");
        assert_eq!(completed.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
        let whole = parts.concat();
        assert_eq!(get_bytes(&s3, "enc", "mp").await, whole);
        let (first, last) = (5 * MIB as u64 - 5, 5 * MIB as u64 + 5);
        assert_eq!(get_range(&s3, "enc", "mp", first, last).await, &whole[first as usize..=last as usize]);
    });
}

#[test]
fn sse_c_and_sse_kms() {
    let (server, _keys) = kms_server();
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("keys").send().await.expect("create");
        let key = [9u8; 32];
        let key_md5 = b64(&Md5::digest(key));
        let body = pattern(300_000, 3);
        let put = s3
            .put_object()
            .bucket("keys")
            .key("c")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(b64(&key))
            .sse_customer_key_md5(&key_md5)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put SSE-C");
        assert_eq!(put.sse_customer_key_md5(), Some(key_md5.as_str()));
        assert_eq!(error_code(s3.get_object().bucket("keys").key("c").send().await), "InvalidRequest");
        let other = [8u8; 32];
        let wrong = s3
            .get_object()
            .bucket("keys")
            .key("c")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(b64(&other))
            .sse_customer_key_md5(b64(&Md5::digest(other)))
            .send()
            .await;
        assert_eq!(error_code(wrong), "AccessDenied");
        let got = s3
            .get_object()
            .bucket("keys")
            .key("c")
            .range("bytes=70000-70100")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(b64(&key))
            .sse_customer_key_md5(&key_md5)
            .send()
            .await
            .expect("get SSE-C");
        assert_eq!(got.sse_customer_algorithm(), Some("AES256"));
        assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), &body[70_000..=70_100]);

        let kms = s3
            .put_object()
            .bucket("keys")
            .key("kms")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id("k2")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put SSE-KMS");
        assert_eq!(kms.ssekms_key_id(), Some("k2"));
        let head = s3.head_object().bucket("keys").key("kms").send().await.expect("head");
        assert_eq!(head.server_side_encryption(), Some(&ServerSideEncryption::AwsKms));
        assert_eq!(head.ssekms_key_id(), Some("k2"));
        assert_eq!(get_bytes(&s3, "keys", "kms").await, body);
        let unknown = s3
            .put_object()
            .bucket("keys")
            .key("nope")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id("no-such-key")
            .body(ByteStream::from(b"x".to_vec()))
            .send()
            .await;
        assert_eq!(error_code(unknown), "KMS.NotFoundException");
    });
}

#[test]
fn bucket_default_encryption() {
    let server = Embedded::start(&["--console-address", "off", "--swift-address", "off"]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("dflt").send().await.expect("create");
        assert_eq!(
            error_code(s3.get_bucket_encryption().bucket("dflt").send().await),
            "ServerSideEncryptionConfigurationNotFoundError"
        );
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(
                ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::Aes256)
                    .build()
                    .expect("default"),
            )
            .build();
        let config = ServerSideEncryptionConfiguration::builder().rules(rule).build().expect("config");
        s3.put_bucket_encryption()
            .bucket("dflt")
            .server_side_encryption_configuration(config)
            .send()
            .await
            .expect("put encryption");
        let got = s3.get_bucket_encryption().bucket("dflt").send().await.expect("get encryption");
        let rules = got.server_side_encryption_configuration().map(|c| c.rules()).unwrap_or_default();
        assert_eq!(
            rules[0].apply_server_side_encryption_by_default().map(|d| d.sse_algorithm()),
            Some(&ServerSideEncryption::Aes256)
        );
        let body = pattern(150_000, 9);
        put_bytes(&s3, "dflt", "o", body.clone()).await;
        let head = s3.head_object().bucket("dflt").key("o").send().await.expect("head");
        assert_eq!(head.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
        assert_eq!(get_bytes(&s3, "dflt", "o").await, body);
        s3.delete_bucket_encryption().bucket("dflt").send().await.expect("delete encryption");
        assert_eq!(
            error_code(s3.get_bucket_encryption().bucket("dflt").send().await),
            "ServerSideEncryptionConfigurationNotFoundError"
        );
        put_bytes(&s3, "dflt", "p", b"plain".to_vec()).await;
        let head = s3.head_object().bucket("dflt").key("p").send().await.expect("head");
        assert_eq!(head.server_side_encryption(), None);
    });
}
