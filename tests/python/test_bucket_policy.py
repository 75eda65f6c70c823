"""Bucket policies with boto3: stored and returned as given, validated as AWS resource policies, and
evaluated with the signer's identity policies (explicit Deny wins, then any Allow), anonymous requests
included."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import unique_bucket
from test_iam import error_code, new_user


def public_read(bucket: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{bucket}/public/*"}],
    }


def test_policy_round_trip_and_validation(s3):
    bucket = unique_bucket("pol")
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert error_code(e) == "NoSuchBucketPolicy"
    document = json.dumps(public_read(bucket))
    s3.put_bucket_policy(Bucket=bucket, Policy=document)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == public_read(bucket)
    for bad in (
        "{not json",
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
                                                            "Resource": f"arn:aws:s3:::{bucket}/*"}]}),
        json.dumps(public_read("some-other-bucket")),
    ):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_policy(Bucket=bucket, Policy=bad)
        assert error_code(e) == "MalformedPolicy"
    s3.delete_bucket_policy(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert error_code(e) == "NoSuchBucketPolicy"


def test_anonymous_reads_where_the_policy_allows_them(endpoint, s3):
    bucket = unique_bucket("anon")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="public/logo.png", Body=b"png bytes")
    s3.put_object(Bucket=bucket, Key="private/key.pem", Body=b"secret")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{endpoint}/{bucket}/public/logo.png", timeout=10)
    assert e.value.code == 403
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read(bucket)))
    with urllib.request.urlopen(f"{endpoint}/{bucket}/public/logo.png", timeout=10) as r:
        assert r.read() == b"png bytes"
    for path in (f"/{bucket}/private/key.pem", f"/{bucket}?list-type=2"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(endpoint + path, timeout=10)
        assert e.value.code == 403
    req = urllib.request.Request(f"{endpoint}/{bucket}/public/new", data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403


def test_bucket_policy_grants_and_denies_named_users(endpoint, s3):
    bucket = unique_bucket("grant")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    guest, guest_client = new_user(endpoint)  # no identity policy at all
    writer, writer_client = new_user(endpoint, "readwrite")
    with pytest.raises(ClientError):
        guest_client.get_object(Bucket=bucket, Key="k")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam::000000000000:user/{guest}"]},
             "Action": ["s3:GetObject", "s3:ListBucket"],
             "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]},
            {"Effect": "Deny", "Principal": {"AWS": writer}, "Action": "s3:DeleteObject",
             "Resource": f"arn:aws:s3:::{bucket}/*"},
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert guest_client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    assert [o["Key"] for o in guest_client.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    with pytest.raises(ClientError) as e:
        guest_client.put_object(Bucket=bucket, Key="k2", Body=b"x")
    assert error_code(e) == "AccessDenied"
    # The bucket policy's explicit Deny beats the writer's readwrite identity policy.
    writer_client.put_object(Bucket=bucket, Key="w", Body=b"w")
    with pytest.raises(ClientError) as e:
        writer_client.delete_object(Bucket=bucket, Key="w")
    assert error_code(e) == "AccessDenied"
    # A different user gains nothing from this policy.
    _, stranger = new_user(endpoint)
    with pytest.raises(ClientError):
        stranger.get_object(Bucket=bucket, Key="k")
