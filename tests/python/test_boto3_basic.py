"""Basic S3 operations with boto3: buckets, objects with metadata, listings, and the error codes clients rely on."""

from __future__ import annotations

import hashlib

import pytest
from botocore.exceptions import ClientError
from conftest import empty_and_delete_bucket, unique_bucket


def error_of(excinfo) -> tuple[str, int]:
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_bucket_lifecycle(s3):
    name = unique_bucket("life")
    s3.create_bucket(Bucket=name)
    try:
        s3.head_bucket(Bucket=name)
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert name in names
    finally:
        s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert error_of(e)[1] == 404
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_create_existing_bucket(s3, bucket):
    """Creating a bucket you already own: 409 BucketAlreadyOwnedByYou (or 200 in us-east-1's legacy behaviour),
    never an emptied bucket."""
    s3.put_object(Bucket=bucket, Key="keep", Body=b"still here")
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as e:
        assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == (
            "BucketAlreadyOwnedByYou",
            409,
        )
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"still here"


def test_put_get_head_delete_object(s3, bucket):
    body = b"hello coffer\n" * 1000
    meta = {"color": "blue", "owner": "test-suite"}
    put = s3.put_object(
        Bucket=bucket, Key="dir/hello.txt", Body=body, ContentType="text/plain; charset=utf-8", Metadata=meta
    )
    md5 = hashlib.md5(body).hexdigest()
    assert put["ETag"] == f'"{md5}"'

    got = s3.get_object(Bucket=bucket, Key="dir/hello.txt")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain; charset=utf-8"
    assert got["ContentLength"] == len(body)
    assert got["Metadata"] == meta
    assert got["ETag"] == f'"{md5}"'
    assert got["LastModified"] is not None

    head = s3.head_object(Bucket=bucket, Key="dir/hello.txt")
    assert head["ContentLength"] == len(body)
    assert head["ContentType"] == "text/plain; charset=utf-8"
    assert head["Metadata"] == meta
    assert head["ETag"] == f'"{md5}"'

    ranged = s3.get_object(Bucket=bucket, Key="dir/hello.txt", Range="bytes=6-11")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == b"coffer"
    assert ranged["ContentRange"] == f"bytes 6-11/{len(body)}"

    s3.delete_object(Bucket=bucket, Key="dir/hello.txt")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="dir/hello.txt")
    assert error_of(e) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="dir/hello.txt")
    assert error_of(e)[1] == 404
    # Deleting a missing key succeeds, as in S3.
    s3.delete_object(Bucket=bucket, Key="dir/hello.txt")


def test_overwrite_and_empty_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first version")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second"
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["ContentLength"] == 0
    assert got["Body"].read() == b""
    assert got["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'


def test_unicode_and_special_keys(s3, bucket):
    keys = ["ünïcødé/文件.txt", "with space/and+plus", "a%2Fencoded", "dots/../not-a-path", "q?x=1&y=2"]
    for i, k in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=k, Body=str(i).encode())
    for i, k in enumerate(keys):
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == str(i).encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(keys)


def test_copy_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", Metadata={"a": "1"}, ContentType="text/x-src")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == b"copy me"
    assert got["Metadata"] == {"a": "1"}


def test_delete_objects(s3, bucket):
    keys = [f"multi/{i}" for i in range(5)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys + ["multi/missing"]]})
    assert sorted(d["Key"] for d in r.get("Deleted", [])) == sorted(keys + ["multi/missing"])
    assert not r.get("Errors")
    assert s3.list_objects_v2(Bucket=bucket, Prefix="multi/")["KeyCount"] == 0


KEYS = ["a/1", "a/2", "a/b/3", "a/b/4", "c/5", "top1", "top2"]


@pytest.fixture
def listing_bucket(s3, bucket):
    for k in KEYS:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    return bucket


def test_list_objects_v2_prefix(s3, listing_bucket):
    r = s3.list_objects_v2(Bucket=listing_bucket, Prefix="a/")
    assert [o["Key"] for o in r["Contents"]] == ["a/1", "a/2", "a/b/3", "a/b/4"]
    assert r["KeyCount"] == 4
    assert not r["IsTruncated"]
    assert all(o["Size"] == len(o["Key"]) for o in r["Contents"])
    r = s3.list_objects_v2(Bucket=listing_bucket, Prefix="nothing/")
    assert r["KeyCount"] == 0
    assert "Contents" not in r


def test_list_objects_v2_delimiter(s3, listing_bucket):
    r = s3.list_objects_v2(Bucket=listing_bucket, Delimiter="/")
    assert [o["Key"] for o in r.get("Contents", [])] == ["top1", "top2"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "c/"]

    r = s3.list_objects_v2(Bucket=listing_bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/b/"]


def test_list_objects_v2_pagination(s3, listing_bucket):
    seen, token, pages = [], None, 0
    while True:
        kw = {"Bucket": listing_bucket, "MaxKeys": 2}
        if token:
            kw["ContinuationToken"] = token
        r = s3.list_objects_v2(**kw)
        pages += 1
        assert r["KeyCount"] == len(r.get("Contents", [])) <= 2
        seen += [o["Key"] for o in r.get("Contents", [])]
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
        assert pages < 10, "pagination does not terminate"
    assert seen == sorted(KEYS)
    assert pages == 4

    r = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="a/b/4")
    assert [o["Key"] for o in r["Contents"]] == ["c/5", "top1", "top2"]

    # Pagination that also groups: common prefixes count towards MaxKeys and must not repeat across pages.
    paginator = s3.get_paginator("list_objects_v2")
    keys, prefixes = [], []
    for page in paginator.paginate(Bucket=listing_bucket, Delimiter="/", PaginationConfig={"PageSize": 1}):
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert keys == ["top1", "top2"]
    assert prefixes == ["a/", "c/"]


def test_list_objects_v1(s3, listing_bucket):
    r = s3.list_objects(Bucket=listing_bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/b/"]
    r = s3.list_objects(Bucket=listing_bucket, MaxKeys=3)
    assert r["IsTruncated"]
    assert [o["Key"] for o in r["Contents"]] == sorted(KEYS)[:3]
    r = s3.list_objects(Bucket=listing_bucket, Marker=sorted(KEYS)[2])
    assert [o["Key"] for o in r["Contents"]] == sorted(KEYS)[3:]


def test_error_no_such_key(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="does/not/exist")
    assert error_of(e) == ("NoSuchKey", 404)


def test_error_no_such_bucket(s3):
    missing = unique_bucket("missing")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=missing, Key="k")
    assert error_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=missing, Key="k", Body=b"x")
    assert error_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=missing)
    assert error_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=missing)
    assert error_of(e) == ("NoSuchBucket", 404)


def test_error_bucket_not_empty(s3):
    name = unique_bucket("full")
    s3.create_bucket(Bucket=name)
    try:
        s3.put_object(Bucket=name, Key="k", Body=b"x")
        with pytest.raises(ClientError) as e:
            s3.delete_bucket(Bucket=name)
        assert error_of(e) == ("BucketNotEmpty", 409)
        s3.head_bucket(Bucket=name)  # still there
    finally:
        empty_and_delete_bucket(s3, name)


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "Has_Upper_And_Underscore", "-leading-hyphen", "trailing-hyphen-", "double..dot", "192.168.5.4"],
)
def test_error_invalid_bucket_name(s3, name):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert error_of(e) == ("InvalidBucketName", 400)


def test_error_wrong_credentials(endpoint):
    import boto3
    from botocore.config import Config

    bad = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="no-such-access-key",
        aws_secret_access_key="wrong-secret",
        config=Config(region_name="us-east-1", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as e:
        bad.list_buckets()
    assert error_of(e) == ("InvalidAccessKeyId", 403)
