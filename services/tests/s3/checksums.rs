//! Flexible checksums of multipart objects (COMPOSITE and FULL_OBJECT), `x-amz-checksum-mode`,
//! and GetObjectAttributes, through the Rust AWS SDK.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
};
use aws_smithy_types::base64;
use sha2::{Digest, Sha256};

use crate::common::*;

const PART: usize = 5 * 1024 * 1024;

/// Uploads `parts` to a new upload with `algorithm` (and `kind`); returns the upload id and
/// each part as the SDK answered it (ETag and its checksum of `algorithm`).
async fn upload_parts(
    s3: &aws_sdk_s3::Client,
    key: &str,
    algorithm: ChecksumAlgorithm,
    kind: Option<ChecksumType>,
    parts: &[Vec<u8>],
) -> (String, Vec<CompletedPart>) {
    let created = s3
        .create_multipart_upload()
        .bucket("sums")
        .key(key)
        .checksum_algorithm(algorithm.clone())
        .set_checksum_type(kind)
        .send()
        .await
        .expect("create upload");
    assert_eq!(created.checksum_algorithm(), Some(&algorithm));
    let upload_id = created.upload_id().expect("upload id").to_string();
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("sums")
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("upload part");
        let part = CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(str::to_string));
        let part = match algorithm {
            ChecksumAlgorithm::Sha256 => part.set_checksum_sha256(out.checksum_sha256().map(str::to_string)),
            ChecksumAlgorithm::Crc32 => part.set_checksum_crc32(out.checksum_crc32().map(str::to_string)),
            ChecksumAlgorithm::Crc32C => part.set_checksum_crc32_c(out.checksum_crc32_c().map(str::to_string)),
            ChecksumAlgorithm::Crc64Nvme => part.set_checksum_crc64_nvme(out.checksum_crc64_nvme().map(str::to_string)),
            _ => part,
        };
        completed.push(part.build());
    }
    (upload_id, completed)
}

fn with_sha256(part: &CompletedPart, sum: Option<String>) -> CompletedPart {
    CompletedPart::builder()
        .set_part_number(part.part_number())
        .set_e_tag(part.e_tag().map(str::to_string))
        .set_checksum_sha256(sum)
        .build()
}

fn listing(parts: Vec<CompletedPart>) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder().set_parts(Some(parts)).build()
}

#[test]
fn composite_multipart_checksums() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("sums").send().await.expect("bucket");
        let data = [pattern(PART, 1), pattern(1000, 2)];
        let (upload_id, parts) = upload_parts(&s3, "composite", ChecksumAlgorithm::Sha256, None, &data).await;

        // Each part's SHA-256 as the SDK computed and the server confirmed.
        for (part, bytes) in parts.iter().zip(&data) {
            assert_eq!(part.checksum_sha256(), Some(base64::encode(Sha256::digest(bytes)).as_str()));
        }
        let listed = s3.list_parts().bucket("sums").key("composite").upload_id(&upload_id).send().await.expect("list");
        assert_eq!(listed.checksum_algorithm(), Some(&ChecksumAlgorithm::Sha256));
        assert_eq!(listed.checksum_type(), Some(&ChecksumType::Composite));
        assert_eq!(listed.parts()[1].checksum_sha256(), parts[1].checksum_sha256());

        // A part checksum that is not the stored one is InvalidPart; a missing one InvalidRequest.
        let mut wrong = parts.clone();
        wrong[0] = with_sha256(&wrong[0], Some(base64::encode(Sha256::digest(b"other"))));
        let refused = s3
            .complete_multipart_upload()
            .bucket("sums")
            .key("composite")
            .upload_id(&upload_id)
            .multipart_upload(listing(wrong));
        assert_eq!(error_code(refused.send().await), "InvalidPart");
        let mut missing = parts.clone();
        missing[1] = with_sha256(&missing[1], None);
        let refused = s3
            .complete_multipart_upload()
            .bucket("sums")
            .key("composite")
            .upload_id(&upload_id)
            .multipart_upload(listing(missing));
        assert_eq!(error_code(refused.send().await), "InvalidRequest");

        let done = s3
            .complete_multipart_upload()
            .bucket("sums")
            .key("composite")
            .upload_id(&upload_id)
            .multipart_upload(listing(parts.clone()))
            .send()
            .await
            .expect("complete");
        let mut joined = Vec::new();
        for part in &parts {
            joined.extend(base64::decode(part.checksum_sha256().expect("part sum")).expect("base64"));
        }
        let expected = format!("{}-2", base64::encode(Sha256::digest(&joined)));
        assert_eq!(done.checksum_sha256(), Some(expected.as_str()));
        assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));

        let head = s3.head_object().bucket("sums").key("composite").checksum_mode(ChecksumMode::Enabled).send().await;
        let head = head.expect("head");
        assert_eq!(head.checksum_sha256(), Some(expected.as_str()));
        assert_eq!(head.checksum_type(), Some(&ChecksumType::Composite));
        let plain = s3.head_object().bucket("sums").key("composite").send().await.expect("head without mode");
        assert_eq!(plain.checksum_sha256(), None);
        let part = s3
            .head_object()
            .bucket("sums")
            .key("composite")
            .part_number(2)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("head part");
        assert_eq!(part.checksum_sha256(), parts[1].checksum_sha256());
        let got = s3.get_object().bucket("sums").key("composite").checksum_mode(ChecksumMode::Enabled).send().await;
        let got = got.expect("get");
        assert_eq!(got.checksum_sha256(), Some(expected.as_str()));
        assert_eq!(got.body.collect().await.expect("body").into_bytes().len(), PART + 1000);
    });
}

#[test]
fn full_object_multipart_checksums() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("sums").send().await.expect("bucket");
        let data = [pattern(PART, 3), pattern(PART, 4), pattern(12345, 5)];
        let whole: Vec<u8> = data.concat();
        for (key, algorithm, kind) in [
            ("nvme", ChecksumAlgorithm::Crc64Nvme, None),
            ("crc32c", ChecksumAlgorithm::Crc32C, Some(ChecksumType::FullObject)),
            ("crc32", ChecksumAlgorithm::Crc32, Some(ChecksumType::FullObject)),
        ] {
            let (upload_id, parts) = upload_parts(&s3, key, algorithm.clone(), kind, &data).await;
            let done = s3
                .complete_multipart_upload()
                .bucket("sums")
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(listing(parts))
                .send()
                .await
                .expect("complete");
            assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject), "{key}");
            // The same bytes PUT in one piece: the server's one-pass CRC must equal the combined one.
            let single = s3
                .put_object()
                .bucket("sums")
                .key(format!("{key}-single"))
                .checksum_algorithm(algorithm.clone())
                .body(ByteStream::from(whole.clone()))
                .send()
                .await
                .expect("put whole");
            let (combined, one_pass) = match algorithm {
                ChecksumAlgorithm::Crc64Nvme => (done.checksum_crc64_nvme(), single.checksum_crc64_nvme()),
                ChecksumAlgorithm::Crc32C => (done.checksum_crc32_c(), single.checksum_crc32_c()),
                _ => (done.checksum_crc32(), single.checksum_crc32()),
            };
            assert!(combined.is_some(), "{key}: no checksum in the completion");
            assert_eq!(combined, one_pass, "{key}");
            // The SDK validates a full-object CRC against the body it reads.
            let got = s3.get_object().bucket("sums").key(key).checksum_mode(ChecksumMode::Enabled).send().await;
            let got = got.expect("get with checksum mode");
            assert_eq!(got.checksum_type(), Some(&ChecksumType::FullObject));
            assert_eq!(got.body.collect().await.expect("validated body").into_bytes().len(), whole.len());
        }

        // FULL_OBJECT is for CRCs only; COMPOSITE is not for CRC64NVME.
        let refused = s3
            .create_multipart_upload()
            .bucket("sums")
            .key("bad")
            .checksum_algorithm(ChecksumAlgorithm::Sha1)
            .checksum_type(ChecksumType::FullObject)
            .send()
            .await;
        assert_eq!(error_code(refused), "InvalidRequest");
        let refused = s3
            .create_multipart_upload()
            .bucket("sums")
            .key("bad")
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::Composite)
            .send()
            .await;
        assert_eq!(error_code(refused), "InvalidRequest");
    });
}

#[test]
fn get_object_attributes() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("sums").send().await.expect("bucket");
        let body = b"attributes".to_vec();
        s3.put_object()
            .bucket("sums")
            .key("single")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put");
        let all = [
            ObjectAttributes::Etag,
            ObjectAttributes::Checksum,
            ObjectAttributes::ObjectParts,
            ObjectAttributes::StorageClass,
            ObjectAttributes::ObjectSize,
        ];
        let got = s3
            .get_object_attributes()
            .bucket("sums")
            .key("single")
            .set_object_attributes(Some(all.to_vec()))
            .send()
            .await
            .expect("attributes");
        assert_eq!(got.e_tag().map(|e| e.trim_matches('"')), Some(md5_hex(&body).as_str()));
        assert_eq!(got.object_size(), Some(body.len() as i64));
        assert_eq!(got.storage_class().map(|c| c.as_str()), Some("STANDARD"));
        let checksum = got.checksum().expect("checksum");
        assert_eq!(checksum.checksum_sha256(), Some(base64::encode(Sha256::digest(&body)).as_str()));
        assert!(got.object_parts().is_none(), "a single-part object has no parts");
        assert!(got.last_modified().is_some());

        // Only what is asked for.
        let size_only = s3
            .get_object_attributes()
            .bucket("sums")
            .key("single")
            .object_attributes(ObjectAttributes::ObjectSize)
            .send()
            .await
            .expect("size only");
        assert!(size_only.e_tag().is_none() && size_only.checksum().is_none());

        let data = [pattern(PART, 6), pattern(PART, 7), pattern(10, 8)];
        let (upload_id, parts) = upload_parts(&s3, "multi", ChecksumAlgorithm::Crc32C, None, &data).await;
        s3.complete_multipart_upload()
            .bucket("sums")
            .key("multi")
            .upload_id(&upload_id)
            .multipart_upload(listing(parts.clone()))
            .send()
            .await
            .expect("complete");
        let page = s3
            .get_object_attributes()
            .bucket("sums")
            .key("multi")
            .set_object_attributes(Some(all.to_vec()))
            .max_parts(2)
            .send()
            .await
            .expect("first page");
        let object_parts = page.object_parts().expect("parts");
        assert_eq!(object_parts.total_parts_count(), Some(3));
        assert_eq!(object_parts.is_truncated(), Some(true));
        assert_eq!(object_parts.next_part_number_marker(), Some("2"));
        assert_eq!(object_parts.parts().len(), 2);
        assert_eq!(object_parts.parts()[1].size(), Some(PART as i64));
        assert_eq!(object_parts.parts()[1].checksum_crc32_c(), parts[1].checksum_crc32_c());
        assert!(page.checksum().and_then(|c| c.checksum_crc32_c()).is_some_and(|v| v.ends_with("-3")));
        let rest = s3
            .get_object_attributes()
            .bucket("sums")
            .key("multi")
            .object_attributes(ObjectAttributes::ObjectParts)
            .part_number_marker("2")
            .send()
            .await
            .expect("second page");
        let object_parts = rest.object_parts().expect("parts");
        assert_eq!(object_parts.is_truncated(), Some(false));
        assert_eq!(object_parts.parts().iter().filter_map(|p| p.part_number()).collect::<Vec<_>>(), [3]);

        let missing = s3
            .get_object_attributes()
            .bucket("sums")
            .key("nope")
            .object_attributes(ObjectAttributes::Etag)
            .send()
            .await;
        assert_eq!(error_code(missing), "NoSuchKey");
        let missing = s3
            .get_object_attributes()
            .bucket("nobucket")
            .key("k")
            .object_attributes(ObjectAttributes::Etag)
            .send()
            .await;
        assert_eq!(error_code(missing), "NoSuchBucket");
    });
}

#[test]
fn checksum_mode_decides_what_get_shows() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("sums").send().await.expect("bucket");
        let body = pattern(300_000, 9);
        let put = s3
            .put_object()
            .bucket("sums")
            .key("k")
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put");
        let sent = put.checksum_crc32_c().expect("crc32c").to_string();
        // The SDK asks for checksums on every GET by default; this client only when told to.
        let asks_not = aws_sdk_s3::Client::from_conf(
            config_with(&server.endpoint(), ACCESS_KEY, SECRET_KEY)
                .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
                .build(),
        );
        let plain = asks_not.get_object().bucket("sums").key("k").send().await.expect("get");
        assert_eq!(plain.checksum_crc32_c(), None);
        assert_eq!(plain.checksum_type(), None);
        let checked = s3.get_object().bucket("sums").key("k").checksum_mode(ChecksumMode::Enabled).send().await;
        let checked = checked.expect("get with mode");
        assert_eq!(checked.checksum_crc32_c(), Some(sent.as_str()));
        assert_eq!(checked.checksum_type(), Some(&ChecksumType::FullObject));
        assert_eq!(checked.body.collect().await.expect("body").into_bytes().to_vec(), body);
        // A byte range has no object checksum.
        let ranged =
            s3.get_object().bucket("sums").key("k").range("bytes=0-9").checksum_mode(ChecksumMode::Enabled).send();
        assert_eq!(ranged.await.expect("ranged").checksum_crc32_c(), None);
        // A wrong checksum sent with the body is BadDigest, and nothing is stored.
        let refused = s3
            .put_object()
            .bucket("sums")
            .key("bad")
            .checksum_sha256(base64::encode(Sha256::digest(b"something else")))
            .body(ByteStream::from(body.clone()))
            .send()
            .await;
        assert_eq!(error_code(refused), "BadDigest");
        assert_eq!(error_code(s3.head_object().bucket("sums").key("bad").send().await), "NotFound");
    });
}
