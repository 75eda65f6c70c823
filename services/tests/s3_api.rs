//! Every S3 operation of the foundation, through the Rust AWS SDK, against `coffer server`.

#[path = "s3/checksums.rs"]
mod checksums;
mod common;
#[path = "s3/cors_acl.rs"]
mod cors_acl;
#[path = "s3/lifecycle.rs"]
mod lifecycle;
#[path = "s3/notify_compress.rs"]
mod notify_compress;
#[path = "s3/object_lock.rs"]
mod object_lock;
#[path = "s3/sse.rs"]
mod sse;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, MetadataDirective, ObjectIdentifier};
use common::*;

#[test]
fn buckets() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("alpha").send().await.expect("create alpha");
        s3.create_bucket().bucket("beta").send().await.expect("create beta");
        assert_eq!(error_code(s3.create_bucket().bucket("alpha").send().await), "BucketAlreadyOwnedByYou");

        let listed = s3.list_buckets().send().await.expect("list");
        let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
        assert_eq!(names, ["alpha", "beta"]);
        assert!(listed.buckets()[0].creation_date().is_some());

        s3.head_bucket().bucket("alpha").send().await.expect("head");
        assert_eq!(error_code(s3.head_bucket().bucket("nope").send().await), "NotFound");
        let location = s3.get_bucket_location().bucket("alpha").send().await.expect("location");
        assert!(location.location_constraint().is_none_or(|c| c.as_str().is_empty()));

        put_bytes(&s3, "alpha", "k", b"x".to_vec()).await;
        assert_eq!(error_code(s3.delete_bucket().bucket("alpha").send().await), "BucketNotEmpty");
        s3.delete_object().bucket("alpha").key("k").send().await.expect("delete object");
        s3.delete_bucket().bucket("alpha").send().await.expect("delete bucket");
        assert_eq!(error_code(s3.delete_bucket().bucket("alpha").send().await), "NoSuchBucket");
        assert_eq!(error_code(s3.get_object().bucket("alpha").key("k").send().await), "NoSuchBucket");
    });
}

#[test]
fn objects_headers_conditions_and_copies() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("bkt").send().await.expect("create");
        let body = b"hello, coffer".to_vec();
        let put = s3
            .put_object()
            .bucket("bkt")
            .key("dir/hello.txt")
            .body(ByteStream::from(body.clone()))
            .content_type("text/plain")
            .content_encoding("identity")
            .content_disposition("attachment; filename=\"hello.txt\"")
            .content_language("en")
            .cache_control("max-age=60")
            .metadata("colour", "blue")
            .metadata("Mixed-Case", "yes")
            .send()
            .await
            .expect("put");
        let etag = put.e_tag().expect("etag").to_string();
        assert_eq!(etag, format!("\"{}\"", md5_hex(&body)));

        let head = s3.head_object().bucket("bkt").key("dir/hello.txt").send().await.expect("head");
        assert_eq!(head.content_length(), Some(body.len() as i64));
        assert_eq!(head.content_type(), Some("text/plain"));
        assert_eq!(head.content_encoding(), Some("identity"));
        assert_eq!(head.content_disposition(), Some("attachment; filename=\"hello.txt\""));
        assert_eq!(head.content_language(), Some("en"));
        assert_eq!(head.cache_control(), Some("max-age=60"));
        let meta = head.metadata().expect("metadata");
        assert_eq!(meta.get("colour").map(String::as_str), Some("blue"));
        assert_eq!(meta.get("mixed-case").map(String::as_str), Some("yes"));

        // Conditions.
        let ok = s3.get_object().bucket("bkt").key("dir/hello.txt").if_match(&etag).send().await;
        assert!(ok.is_ok());
        assert_eq!(
            error_code(s3.get_object().bucket("bkt").key("dir/hello.txt").if_match("\"nope\"").send().await),
            "PreconditionFailed"
        );
        assert_eq!(
            error_code(s3.get_object().bucket("bkt").key("dir/hello.txt").if_none_match(&etag).send().await),
            "HTTP 304"
        );
        let future = aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000);
        let past = aws_sdk_s3::primitives::DateTime::from_secs(1_000_000_000);
        assert_eq!(
            error_code(s3.get_object().bucket("bkt").key("dir/hello.txt").if_modified_since(future).send().await),
            "HTTP 304"
        );
        assert!(s3.get_object().bucket("bkt").key("dir/hello.txt").if_modified_since(past).send().await.is_ok());
        assert_eq!(
            error_code(s3.get_object().bucket("bkt").key("dir/hello.txt").if_unmodified_since(past).send().await),
            "PreconditionFailed"
        );

        // response-* overrides.
        let got = s3
            .get_object()
            .bucket("bkt")
            .key("dir/hello.txt")
            .response_content_type("application/x-test")
            .response_content_disposition("inline")
            .response_cache_control("no-cache")
            .send()
            .await
            .expect("get with overrides");
        assert_eq!(got.content_type(), Some("application/x-test"));
        assert_eq!(got.content_disposition(), Some("inline"));
        assert_eq!(got.cache_control(), Some("no-cache"));

        // Ranges.
        assert_eq!(get_range(&s3, "bkt", "dir/hello.txt", 7, 12).await, b"coffer");
        let suffix = s3.get_object().bucket("bkt").key("dir/hello.txt").range("bytes=-6").send().await.expect("suffix");
        assert_eq!(suffix.content_range(), Some("bytes 7-12/13"));
        assert_eq!(suffix.body.collect().await.expect("body").into_bytes().as_ref(), b"coffer");
        assert_eq!(
            error_code(s3.get_object().bucket("bkt").key("dir/hello.txt").range("bytes=100-200").send().await),
            "InvalidRange"
        );

        // CopyObject, COPY keeps headers, REPLACE takes the request's.
        let copied =
            s3.copy_object().bucket("bkt").key("copy-1").copy_source("bkt/dir/hello.txt").send().await.expect("copy");
        assert_eq!(copied.copy_object_result().and_then(|r| r.e_tag()), Some(etag.as_str()));
        let head = s3.head_object().bucket("bkt").key("copy-1").send().await.expect("head copy");
        assert_eq!(head.content_type(), Some("text/plain"));
        assert_eq!(head.metadata().and_then(|m| m.get("colour")).map(String::as_str), Some("blue"));
        s3.copy_object()
            .bucket("bkt")
            .key("copy-2")
            .copy_source("bkt/dir/hello.txt")
            .metadata_directive(MetadataDirective::Replace)
            .content_type("application/json")
            .metadata("fresh", "1")
            .send()
            .await
            .expect("copy replace");
        let head = s3.head_object().bucket("bkt").key("copy-2").send().await.expect("head copy 2");
        assert_eq!(head.content_type(), Some("application/json"));
        let meta = head.metadata().expect("metadata");
        assert!(meta.get("colour").is_none());
        assert_eq!(meta.get("fresh").map(String::as_str), Some("1"));
        assert_eq!(get_bytes(&s3, "bkt", "copy-2").await, body);
        assert_eq!(
            error_code(
                s3.copy_object()
                    .bucket("bkt")
                    .key("copy-3")
                    .copy_source("bkt/dir/hello.txt")
                    .copy_source_if_match("\"other\"")
                    .send()
                    .await
            ),
            "PreconditionFailed"
        );
        assert_eq!(
            error_code(
                s3.copy_object().bucket("bkt").key("dir/hello.txt").copy_source("bkt/dir/hello.txt").send().await
            ),
            "InvalidRequest"
        );
        assert_eq!(
            error_code(s3.copy_object().bucket("bkt").key("x").copy_source("bkt/missing").send().await),
            "NoSuchKey"
        );

        // Overwrite, delete, missing keys.
        put_bytes(&s3, "bkt", "copy-1", b"new".to_vec()).await;
        assert_eq!(get_bytes(&s3, "bkt", "copy-1").await, b"new");
        s3.delete_object().bucket("bkt").key("copy-1").send().await.expect("delete");
        assert_eq!(error_code(s3.get_object().bucket("bkt").key("copy-1").send().await), "NoSuchKey");
        assert_eq!(error_code(s3.head_object().bucket("bkt").key("copy-1").send().await), "NotFound");
        // Deleting a missing key is not an error in S3.
        s3.delete_object().bucket("bkt").key("never-was").send().await.expect("delete missing");

        // DeleteObjects.
        for i in 0..5 {
            put_bytes(&s3, "bkt", &format!("many/{i}"), vec![i as u8; 10]).await;
        }
        let ids: Vec<ObjectIdentifier> = (0..5)
            .map(|i| ObjectIdentifier::builder().key(format!("many/{i}")).build().expect("id"))
            .chain(std::iter::once(ObjectIdentifier::builder().key("many/none").build().expect("id")))
            .collect();
        let deleted = s3
            .delete_objects()
            .bucket("bkt")
            .delete(Delete::builder().set_objects(Some(ids)).build().expect("delete"))
            .send()
            .await
            .expect("delete objects");
        assert_eq!(deleted.deleted().len(), 6);
        assert!(deleted.errors().is_empty());
        let left = s3.list_objects_v2().bucket("bkt").prefix("many/").send().await.expect("list");
        assert_eq!(left.key_count(), Some(0));
    });
}

#[test]
fn listings() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("lst").send().await.expect("create");
        let keys = ["a", "b/1", "b/2", "b/c/3", "c d+e", "d/x", "e"];
        for key in keys {
            put_bytes(&s3, "lst", key, key.as_bytes().to_vec()).await;
        }
        // Flat, everything.
        let all = s3.list_objects_v2().bucket("lst").send().await.expect("list");
        let got: Vec<_> = all.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(got, keys);
        assert_eq!(all.contents()[0].size(), Some(1));

        // Delimiter folds prefixes.
        let folded = s3.list_objects_v2().bucket("lst").delimiter("/").send().await.expect("list");
        let objects: Vec<_> = folded.contents().iter().filter_map(|o| o.key()).collect();
        let prefixes: Vec<_> = folded.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
        assert_eq!(objects, ["a", "c d+e", "e"]);
        assert_eq!(prefixes, ["b/", "d/"]);
        assert_eq!(folded.key_count(), Some(5));

        let sub = s3.list_objects_v2().bucket("lst").prefix("b/").delimiter("/").send().await.expect("list");
        let objects: Vec<_> = sub.contents().iter().filter_map(|o| o.key()).collect();
        let prefixes: Vec<_> = sub.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
        assert_eq!(objects, ["b/1", "b/2"]);
        assert_eq!(prefixes, ["b/c/"]);

        // Pagination with continuation tokens visits every key once.
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = s3
                .list_objects_v2()
                .bucket("lst")
                .max_keys(2)
                .set_continuation_token(token.clone())
                .send()
                .await
                .expect("page");
            seen.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            if page.is_truncated() != Some(true) {
                break;
            }
            token = page.next_continuation_token().map(str::to_string);
        }
        assert_eq!(seen, keys);

        // start-after.
        let after = s3.list_objects_v2().bucket("lst").start_after("b/2").send().await.expect("list");
        let got: Vec<_> = after.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(got, ["b/c/3", "c d+e", "d/x", "e"]);

        // v1 with marker.
        let v1 = s3.list_objects().bucket("lst").marker("c d+e").max_keys(1).send().await.expect("v1");
        let got: Vec<_> = v1.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(got, ["d/x"]);
        assert_eq!(v1.is_truncated(), Some(true));

        // encoding-type=url: keys come back percent-encoded (the Rust SDK does not decode them).
        let encoded = s3
            .list_objects_v2()
            .bucket("lst")
            .prefix("c")
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .send()
            .await
            .expect("url list");
        let got: Vec<_> = encoded.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(got, ["c%20d%2Be"]);

        assert_eq!(error_code(s3.list_objects_v2().bucket("nobucket").send().await), "NoSuchBucket");
    });
}

#[test]
fn multipart_uploads() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("mpu").send().await.expect("create");
        let part_size = 5 * 1024 * 1024;
        let part1 = pattern(part_size, 1);
        let part2 = pattern(part_size, 2);
        let part3 = pattern(1234, 3);

        let upload = s3
            .create_multipart_upload()
            .bucket("mpu")
            .key("big")
            .content_type("application/x-big")
            .metadata("kind", "multipart")
            .send()
            .await
            .expect("create upload");
        let id = upload.upload_id().expect("upload id").to_string();

        let listed = s3.list_multipart_uploads().bucket("mpu").send().await.expect("list uploads");
        assert_eq!(listed.uploads().len(), 1);
        assert_eq!(listed.uploads()[0].upload_id(), Some(id.as_str()));

        let mut etags = Vec::new();
        for (n, data) in [(1, &part1), (2, &part2), (3, &part3)] {
            let out = s3
                .upload_part()
                .bucket("mpu")
                .key("big")
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .expect("upload part");
            assert_eq!(out.e_tag(), Some(format!("\"{}\"", md5_hex(data)).as_str()));
            etags.push(out.e_tag().expect("etag").to_string());
        }
        // Replace part 2 with a copy of a range of another object.
        put_bytes(&s3, "mpu", "source", pattern(part_size + 100, 9)).await;
        let copied = s3
            .upload_part_copy()
            .bucket("mpu")
            .key("big")
            .upload_id(&id)
            .part_number(2)
            .copy_source("mpu/source")
            .copy_source_range(format!("bytes=100-{}", part_size + 99))
            .send()
            .await
            .expect("upload part copy");
        let part2 = pattern(part_size + 100, 9)[100..].to_vec();
        let copy_etag = copied.copy_part_result().and_then(|r| r.e_tag()).expect("etag").to_string();
        assert_eq!(copy_etag, format!("\"{}\"", md5_hex(&part2)));
        etags[1] = copy_etag;

        let parts = s3.list_parts().bucket("mpu").key("big").upload_id(&id).send().await.expect("list parts");
        let numbers: Vec<_> = parts.parts().iter().filter_map(|p| p.part_number()).collect();
        assert_eq!(numbers, [1, 2, 3]);
        let paged = s3.list_parts().bucket("mpu").key("big").upload_id(&id).max_parts(2).send().await.expect("page");
        assert_eq!(paged.parts().len(), 2);
        assert_eq!(paged.is_truncated(), Some(true));

        // A wrong ETag, then parts out of order: refused, nothing committed.
        let wrong = CompletedMultipartUpload::builder()
            .parts(CompletedPart::builder().part_number(1).e_tag("\"00000000000000000000000000000000\"").build())
            .build();
        assert_eq!(
            error_code(
                s3.complete_multipart_upload()
                    .bucket("mpu")
                    .key("big")
                    .upload_id(&id)
                    .multipart_upload(wrong)
                    .send()
                    .await
            ),
            "InvalidPart"
        );
        let disordered = CompletedMultipartUpload::builder()
            .parts(CompletedPart::builder().part_number(2).e_tag(&etags[1]).build())
            .parts(CompletedPart::builder().part_number(1).e_tag(&etags[0]).build())
            .build();
        assert_eq!(
            error_code(
                s3.complete_multipart_upload()
                    .bucket("mpu")
                    .key("big")
                    .upload_id(&id)
                    .multipart_upload(disordered)
                    .send()
                    .await
            ),
            "InvalidPartOrder"
        );
        assert_eq!(error_code(s3.head_object().bucket("mpu").key("big").send().await), "NotFound");

        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(
                etags
                    .iter()
                    .enumerate()
                    .map(|(i, e)| CompletedPart::builder().part_number(i as i32 + 1).e_tag(e).build())
                    .collect(),
            ))
            .build();
        let completed = s3
            .complete_multipart_upload()
            .bucket("mpu")
            .key("big")
            .upload_id(&id)
            .multipart_upload(done)
            .send()
            .await
            .expect("complete");
        let etag = completed.e_tag().expect("etag");
        assert!(etag.ends_with("-3\""), "multipart etag {etag}");

        let mut expected = part1.clone();
        expected.extend_from_slice(&part2);
        expected.extend_from_slice(&part3);
        let head = s3.head_object().bucket("mpu").key("big").send().await.expect("head");
        assert_eq!(head.content_length(), Some(expected.len() as i64));
        assert_eq!(head.content_type(), Some("application/x-big"));
        assert_eq!(head.metadata().and_then(|m| m.get("kind")).map(String::as_str), Some("multipart"));
        assert_eq!(md5_hex(&get_bytes(&s3, "mpu", "big").await), md5_hex(&expected));
        // A range across the part boundary.
        let first = part_size as u64 - 10;
        let got = get_range(&s3, "mpu", "big", first, first + 19).await;
        assert_eq!(got, expected[first as usize..first as usize + 20]);

        assert_eq!(error_code(s3.list_parts().bucket("mpu").key("big").upload_id(&id).send().await), "NoSuchUpload");

        // Abort.
        let aborted = s3.create_multipart_upload().bucket("mpu").key("gone").send().await.expect("create");
        let aborted_id = aborted.upload_id().expect("id");
        s3.upload_part()
            .bucket("mpu")
            .key("gone")
            .upload_id(aborted_id)
            .part_number(1)
            .body(ByteStream::from(vec![1u8; 1000]))
            .send()
            .await
            .expect("part");
        s3.abort_multipart_upload().bucket("mpu").key("gone").upload_id(aborted_id).send().await.expect("abort");
        assert_eq!(
            error_code(
                s3.upload_part()
                    .bucket("mpu")
                    .key("gone")
                    .upload_id(aborted_id)
                    .part_number(2)
                    .body(ByteStream::from(vec![1u8; 10]))
                    .send()
                    .await
            ),
            "NoSuchUpload"
        );
        let listed = s3.list_multipart_uploads().bucket("mpu").send().await.expect("list uploads");
        assert!(listed.uploads().is_empty());
    });
}

#[test]
fn object_and_bucket_tagging() {
    use aws_sdk_s3::types::{Tag, Tagging, TaggingDirective};
    let server = Embedded::start(&[]);
    let client = server.client();
    let rt = runtime();
    rt.block_on(async {
        client.create_bucket().bucket("tags").send().await.expect("create bucket");
        let body = pattern(200 << 10, 1);
        client
            .put_object()
            .bucket("tags")
            .key("k")
            .tagging("project=coffer&owner=J%C3%BCrgen")
            .body(aws_sdk_s3::primitives::ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put with tags");
        let tags = |out: aws_sdk_s3::operation::get_object_tagging::GetObjectTaggingOutput| -> Vec<(String, String)> {
            out.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()
        };
        let got = client.get_object_tagging().bucket("tags").key("k").send().await.expect("get tags");
        assert_eq!(tags(got), [("owner".into(), "Jürgen".into()), ("project".into(), "coffer".into())]);
        let object = client.get_object().bucket("tags").key("k").send().await.expect("get");
        assert_eq!(object.tag_count(), Some(2));

        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
        let set = Tagging::builder().tag_set(tag("team", "storage")).build().unwrap();
        client.put_object_tagging().bucket("tags").key("k").tagging(set).send().await.expect("put tags");
        let got = client.get_object_tagging().bucket("tags").key("k").send().await.expect("get tags");
        assert_eq!(tags(got), [("team".into(), "storage".into())]);
        assert_eq!(get_bytes(&client, "tags", "k").await, body, "tagging leaves the data alone");

        // Copies keep the source's tags unless told to replace them.
        client.copy_object().bucket("tags").key("copy").copy_source("tags/k").send().await.expect("copy");
        let got = client.get_object_tagging().bucket("tags").key("copy").send().await.expect("tags of copy");
        assert_eq!(tags(got), [("team".into(), "storage".into())]);
        client
            .copy_object()
            .bucket("tags")
            .key("copy")
            .copy_source("tags/k")
            .tagging_directive(TaggingDirective::Replace)
            .tagging("a=1")
            .send()
            .await
            .expect("copy replacing tags");
        let got = client.get_object_tagging().bucket("tags").key("copy").send().await.expect("tags of copy");
        assert_eq!(tags(got), [("a".into(), "1".into())]);

        client.delete_object_tagging().bucket("tags").key("k").send().await.expect("delete tags");
        let got = client.get_object_tagging().bucket("tags").key("k").send().await.expect("get tags");
        assert!(got.tag_set().is_empty());
        assert_eq!(client.get_object().bucket("tags").key("k").send().await.unwrap().tag_count(), None);

        // S3's limits, and nothing stored when a PUT's tags are refused.
        let eleven: Vec<Tag> = (0..11).map(|i| tag(&format!("k{i}"), "v")).collect();
        let too_many = Tagging::builder().set_tag_set(Some(eleven)).build().unwrap();
        let result = client.put_object_tagging().bucket("tags").key("k").tagging(too_many).send().await;
        assert_eq!(error_code(result), "BadRequest");
        let long_key = Tagging::builder().tag_set(tag(&"k".repeat(129), "v")).build().unwrap();
        let result = client.put_object_tagging().bucket("tags").key("k").tagging(long_key).send().await;
        assert_eq!(error_code(result), "InvalidTag");
        let refused = client
            .put_object()
            .bucket("tags")
            .key("refused")
            .tagging("x=1&x=2")
            .body(aws_sdk_s3::primitives::ByteStream::from(vec![1u8; 10]))
            .send()
            .await;
        assert_eq!(error_code(refused), "InvalidTag");
        assert!(client.head_object().bucket("tags").key("refused").send().await.is_err());
        let missing = client.get_object_tagging().bucket("tags").key("nope").send().await;
        assert_eq!(error_code(missing), "NoSuchKey");

        // Bucket tags: none yet is NoSuchTagSet; up to 50; removable.
        let none = client.get_bucket_tagging().bucket("tags").send().await;
        assert_eq!(error_code(none), "NoSuchTagSet");
        let fifty: Vec<Tag> = (0..50).map(|i| tag(&format!("k{i:02}"), "v")).collect();
        let set = Tagging::builder().set_tag_set(Some(fifty)).build().unwrap();
        client.put_bucket_tagging().bucket("tags").tagging(set).send().await.expect("put bucket tags");
        let got = client.get_bucket_tagging().bucket("tags").send().await.expect("get bucket tags");
        assert_eq!(got.tag_set().len(), 50);
        assert_eq!(got.tag_set()[0].key(), "k00");
        let fifty_one: Vec<Tag> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
        let set = Tagging::builder().set_tag_set(Some(fifty_one)).build().unwrap();
        let result = client.put_bucket_tagging().bucket("tags").tagging(set).send().await;
        assert_eq!(error_code(result), "InvalidTag");
        client.delete_bucket_tagging().bucket("tags").send().await.expect("delete bucket tags");
        let none = client.get_bucket_tagging().bucket("tags").send().await;
        assert_eq!(error_code(none), "NoSuchTagSet");
        let nowhere = client.get_bucket_tagging().bucket("no-such-bucket").send().await;
        assert_eq!(error_code(nowhere), "NoSuchBucket");
    });
}

#[test]
fn sigterm_exits_cleanly() {
    let mut server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("term").send().await.expect("create");
    });
    assert_eq!(server.proc.terminate(), Some(0), "log:\n{}", server.proc.log());
}

#[test]
fn versioning() {
    use aws_sdk_s3::types::{BucketVersioningStatus, MfaDeleteStatus, VersioningConfiguration};
    let server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("ver").send().await.expect("create");
        let state = s3.get_bucket_versioning().bucket("ver").send().await.expect("get versioning");
        assert!(state.status().is_none() && state.mfa_delete().is_none(), "never versioned: empty");
        let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        let with_mfa = VersioningConfiguration::builder()
            .status(BucketVersioningStatus::Enabled)
            .mfa_delete(aws_sdk_s3::types::MfaDelete::Enabled)
            .build();
        let refused = s3.put_bucket_versioning().bucket("ver").versioning_configuration(with_mfa).send().await;
        assert_eq!(error_code(refused), "NotImplemented");
        s3.put_bucket_versioning().bucket("ver").versioning_configuration(enabled).send().await.expect("enable");
        let state = s3.get_bucket_versioning().bucket("ver").send().await.expect("get versioning");
        assert_eq!(state.status(), Some(&BucketVersioningStatus::Enabled));
        assert!(state.mfa_delete().is_none_or(|m| *m == MfaDeleteStatus::Disabled));

        // Two versions: both readable, the newest current.
        let put =
            |body: &'static [u8]| s3.put_object().bucket("ver").key("k").body(ByteStream::from_static(body)).send();
        let v1 = put(b"one").await.expect("put v1").version_id().expect("v1 id").to_string();
        let v2 = put(b"two").await.expect("put v2").version_id().expect("v2 id").to_string();
        assert_ne!(v1, v2);
        assert_eq!(get_bytes(&s3, "ver", "k").await, b"two");
        let old = s3.get_object().bucket("ver").key("k").version_id(&v1).send().await.expect("get v1");
        assert_eq!(old.version_id(), Some(v1.as_str()));
        assert_eq!(old.body.collect().await.expect("body").into_bytes().as_ref(), b"one");
        let head = s3.head_object().bucket("ver").key("k").version_id(&v1).send().await.expect("head v1");
        assert_eq!(head.content_length(), Some(3));
        let missing = s3.get_object().bucket("ver").key("k").version_id("00000000000000ff").send().await;
        assert_eq!(error_code(missing), "NoSuchVersion");

        // Tags of one version.
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .tag_set(aws_sdk_s3::types::Tag::builder().key("t").value("1").build().expect("tag"))
            .build()
            .expect("tagging");
        s3.put_object_tagging().bucket("ver").key("k").version_id(&v1).tagging(tagging).send().await.expect("tag v1");
        let tags = s3.get_object_tagging().bucket("ver").key("k").version_id(&v1).send().await.expect("tags v1");
        assert_eq!(tags.tag_set().len(), 1);
        let current_tags = s3.get_object_tagging().bucket("ver").key("k").send().await.expect("tags");
        assert!(current_tags.tag_set().is_empty());

        // Copy from an old version.
        let copied = s3
            .copy_object()
            .bucket("ver")
            .key("copy")
            .copy_source(format!("ver/k?versionId={v1}"))
            .send()
            .await
            .expect("copy v1");
        assert_eq!(copied.copy_source_version_id(), Some(v1.as_str()));
        assert!(copied.version_id().is_some());
        assert_eq!(get_bytes(&s3, "ver", "copy").await, b"one");

        // A delete marker hides the key; GET of the marker by id is 405.
        let deleted = s3.delete_object().bucket("ver").key("k").send().await.expect("delete");
        assert_eq!(deleted.delete_marker(), Some(true));
        let marker = deleted.version_id().expect("marker id").to_string();
        assert_eq!(error_code(s3.get_object().bucket("ver").key("k").send().await), "NoSuchKey");
        let by_id = s3.get_object().bucket("ver").key("k").version_id(&marker).send().await;
        assert_eq!(error_code(by_id), "MethodNotAllowed");
        let listed = s3.list_objects_v2().bucket("ver").send().await.expect("list");
        let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, ["copy"]);

        let versions = s3.list_object_versions().bucket("ver").prefix("k").send().await.expect("versions");
        let ids: Vec<_> = versions.versions().iter().map(|v| (v.version_id().unwrap_or(""), v.is_latest())).collect();
        assert_eq!(ids, [(v2.as_str(), Some(false)), (v1.as_str(), Some(false))]);
        let markers: Vec<_> =
            versions.delete_markers().iter().map(|m| (m.version_id().unwrap_or(""), m.is_latest())).collect();
        assert_eq!(markers, [(marker.as_str(), Some(true))]);
        // Paging one entry at a time.
        let mut seen = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = s3
                .list_object_versions()
                .bucket("ver")
                .max_keys(1)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .expect("page");
            seen.extend(page.versions().iter().filter_map(|v| v.version_id().map(str::to_string)));
            seen.extend(page.delete_markers().iter().filter_map(|m| m.version_id().map(str::to_string)));
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        }
        assert_eq!(seen.len(), 4, "{seen:?}");

        // DeleteObjects by version id: remove the marker and v1; v2 is current again.
        let ids = [&marker, &v1].map(|id| ObjectIdentifier::builder().key("k").version_id(id).build().expect("id"));
        let delete = Delete::builder().set_objects(Some(ids.to_vec())).build().expect("delete");
        let out = s3.delete_objects().bucket("ver").delete(delete).send().await.expect("delete objects");
        assert_eq!(out.deleted().len(), 2);
        assert!(out.deleted().iter().any(|d| d.delete_marker() == Some(true)));
        assert_eq!(get_bytes(&s3, "ver", "k").await, b"two");

        // Multipart completion makes a version too.
        let upload = s3.create_multipart_upload().bucket("ver").key("mp").send().await.expect("create upload");
        let upload_id = upload.upload_id().expect("upload id");
        let part = s3
            .upload_part()
            .bucket("ver")
            .key("mp")
            .upload_id(upload_id)
            .part_number(1)
            .body(ByteStream::from_static(b"part"))
            .send()
            .await
            .expect("part");
        let parts = CompletedMultipartUpload::builder()
            .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap_or_default()).build())
            .build();
        let done = s3
            .complete_multipart_upload()
            .bucket("ver")
            .key("mp")
            .upload_id(upload_id)
            .multipart_upload(parts)
            .send()
            .await
            .expect("complete");
        assert!(done.version_id().is_some());

        // Suspended: writes make the null version.
        let suspended = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
        s3.put_bucket_versioning().bucket("ver").versioning_configuration(suspended).send().await.expect("suspend");
        let null = put(b"three").await.expect("put null");
        assert_eq!(null.version_id(), Some("null"));
        let null = s3.get_object().bucket("ver").key("k").version_id("null").send().await.expect("get null");
        assert_eq!(null.body.collect().await.expect("body").into_bytes().as_ref(), b"three");

        // Everything must go, versions included, before the bucket can.
        assert_eq!(error_code(s3.delete_bucket().bucket("ver").send().await), "BucketNotEmpty");
        let all = s3.list_object_versions().bucket("ver").send().await.expect("versions");
        let mut ids: Vec<(String, String)> = all
            .versions()
            .iter()
            .map(|v| (v.key().unwrap_or_default().to_string(), v.version_id().unwrap_or_default().to_string()))
            .collect();
        ids.extend(
            all.delete_markers()
                .iter()
                .map(|m| (m.key().unwrap_or_default().to_string(), m.version_id().unwrap_or_default().to_string())),
        );
        for (key, id) in ids {
            s3.delete_object().bucket("ver").key(key).version_id(id).send().await.expect("delete version");
        }
        s3.delete_bucket().bucket("ver").send().await.expect("delete bucket");
    });
}
