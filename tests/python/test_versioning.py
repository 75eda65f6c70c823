"""S3 object versioning with boto3: bucket state, version ids, delete markers, reads and deletes by version id,
ListObjectVersions paging, and the null version of Suspended buckets."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from conftest import unique_bucket


def error_of(excinfo) -> tuple[str, int]:
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def all_versions(s3, bucket: str, **kwargs) -> list[dict]:
    """Every version and delete marker, one page of `MaxKeys` at a time, in listing order."""
    out: list[dict] = []
    params = dict(kwargs)
    while True:
        page = s3.list_object_versions(Bucket=bucket, **params)
        entries = [dict(v, Marker=False) for v in page.get("Versions", [])]
        entries += [dict(m, Marker=True) for m in page.get("DeleteMarkers", [])]
        # Within a page, versions and markers are listed apart; restore key order, newest first.
        out += sorted(entries, key=lambda e: (e["Key"], e["VersionId"] != "null" and e["VersionId"] or ""))
        if not page.get("IsTruncated"):
            return out
        params["KeyMarker"] = page["NextKeyMarker"]
        params["VersionIdMarker"] = page.get("NextVersionIdMarker", "")


@pytest.fixture
def vbucket(s3):
    """A fresh versioned bucket; every version is deleted afterwards so the bucket can go."""
    name = unique_bucket("v")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    for entry in all_versions(s3, name):
        s3.delete_object(Bucket=name, Key=entry["Key"], VersionId=entry["VersionId"])
    s3.delete_bucket(Bucket=name)


def test_versioning_configuration(s3, vbucket):
    assert s3.get_bucket_versioning(Bucket=vbucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=vbucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=vbucket)["Status"] == "Suspended"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=vbucket, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"})
    assert error_of(e) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket="no-such-bucket-for-versioning", VersioningConfiguration={"Status": "Enabled"})
    assert error_of(e) == ("NoSuchBucket", 404)


def test_versions_delete_markers_and_reads_by_id(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=vbucket, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2
    assert s3.get_object(Bucket=vbucket, Key="k")["Body"].read() == b"two"
    got = s3.get_object(Bucket=vbucket, Key="k", VersionId=v1)
    assert (got["Body"].read(), got["VersionId"]) == (b"one", v1)
    assert s3.head_object(Bucket=vbucket, Key="k", VersionId=v1)["ContentLength"] == 3
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k", VersionId="00000000000000ff")
    assert error_of(e) == ("NoSuchVersion", 404)

    deleted = s3.delete_object(Bucket=vbucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k")
    assert error_of(e) == ("NoSuchKey", 404)
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=vbucket, Key="k")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k", VersionId=marker)
    assert error_of(e) == ("MethodNotAllowed", 405)
    assert "Contents" not in s3.list_objects_v2(Bucket=vbucket)

    listed = s3.list_object_versions(Bucket=vbucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(v2, False), (v1, False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [(marker, True)]

    # Removing the marker brings v2 back; deleting v2 by id makes v1 current.
    assert s3.delete_object(Bucket=vbucket, Key="k", VersionId=marker)["DeleteMarker"] is True
    assert s3.get_object(Bucket=vbucket, Key="k")["Body"].read() == b"two"
    s3.delete_object(Bucket=vbucket, Key="k", VersionId=v2)
    assert s3.get_object(Bucket=vbucket, Key="k")["Body"].read() == b"one"


def test_copy_tagging_and_delete_objects_by_version(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="src", Body=b"first")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="src", Body=b"second")
    copied = s3.copy_object(Bucket=vbucket, Key="dst", CopySource={"Bucket": vbucket, "Key": "src", "VersionId": v1})
    assert copied["CopySourceVersionId"] == v1
    assert s3.get_object(Bucket=vbucket, Key="dst")["Body"].read() == b"first"

    s3.put_object_tagging(Bucket=vbucket, Key="src", VersionId=v1, Tagging={"TagSet": [{"Key": "a", "Value": "1"}]})
    assert s3.get_object_tagging(Bucket=vbucket, Key="src", VersionId=v1)["TagSet"] == [{"Key": "a", "Value": "1"}]
    assert s3.get_object_tagging(Bucket=vbucket, Key="src")["TagSet"] == []
    with pytest.raises(ClientError) as e:
        s3.get_object_tagging(Bucket=vbucket, Key="src", VersionId="00000000000000ff")
    assert error_of(e) == ("NoSuchVersion", 404)

    out = s3.delete_objects(
        Bucket=vbucket, Delete={"Objects": [{"Key": "src", "VersionId": v1}, {"Key": "dst"}]}
    )
    by_key = {d["Key"]: d for d in out["Deleted"]}
    assert by_key["src"]["VersionId"] == v1
    assert by_key["dst"]["DeleteMarker"] is True and by_key["dst"]["DeleteMarkerVersionId"]
    assert s3.get_object(Bucket=vbucket, Key="src")["Body"].read() == b"second"
    assert [v["Key"] for v in s3.list_object_versions(Bucket=vbucket, Prefix="src")["Versions"]] == ["src"]


def test_list_object_versions_pages_and_prefixes(s3, vbucket):
    for key in ["a/1", "a/2", "b", "c"]:
        for i in range(3):
            s3.put_object(Bucket=vbucket, Key=key, Body=f"{key}{i}".encode())
    s3.delete_object(Bucket=vbucket, Key="c")
    full = all_versions(s3, vbucket)
    assert len(full) == 13
    for max_keys in (1, 2, 5):
        assert all_versions(s3, vbucket, MaxKeys=max_keys) == full
    latest = [(e["Key"], e["Marker"]) for e in full if e["IsLatest"]]
    assert latest == [("a/1", False), ("a/2", False), ("b", False), ("c", True)]
    page = s3.list_object_versions(Bucket=vbucket, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/"]
    assert {v["Key"] for v in page["Versions"]} == {"b", "c"}
    with pytest.raises(ClientError) as e:
        s3.list_object_versions(Bucket=vbucket, VersionIdMarker="null")
    assert error_of(e) == ("InvalidArgument", 400)


def test_suspended_writes_replace_the_null_version(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"before")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"before"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"null-1")["VersionId"] == "null"
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"null-2")["VersionId"] == "null"
    ids = [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]]
    assert ids == ["null", v1]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"null-2"
    for version in ("null", v1):
        s3.delete_object(Bucket=bucket, Key="k", VersionId=version)
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)
