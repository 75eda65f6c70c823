"""Bucket lifecycle through boto3: the configuration round trip in every filter shape, S3's validation
errors, and an expiry end to end on a server whose lifecycle days last one second."""

from __future__ import annotations

import datetime
import time

import pytest
from botocore.exceptions import ClientError

from conftest import CofferServer, make_client, unique_bucket


def code_of(excinfo) -> tuple[str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


RULES = [
    {"ID": "prefix", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 3}},
    {"ID": "tag", "Status": "Disabled", "Filter": {"Tag": {"Key": "class", "Value": "tmp"}},
     "Expiration": {"Days": 1}},
    {"ID": "and", "Status": "Enabled",
     "Filter": {"And": {"Prefix": "data/", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}],
                        "ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 1000}},
     "NoncurrentVersionExpiration": {"NoncurrentDays": 5, "NewerNoncurrentVersions": 2}},
    {"ID": "size", "Status": "Enabled", "Filter": {"ObjectSizeGreaterThan": 1048576},
     "Expiration": {"Date": datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)}},
    {"ID": "legacy", "Status": "Enabled", "Prefix": "old/",
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
    {"ID": "markers", "Status": "Enabled", "Filter": {},
     "Expiration": {"ExpiredObjectDeleteMarker": True}},
]


def test_configuration_round_trips_in_its_shapes(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code_of(e) == ("NoSuchLifecycleConfiguration", 404)

    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": RULES})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert got == RULES

    # The legacy (rule-level Prefix) client call works too.
    s3.put_bucket_lifecycle(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "v1", "Status": "Enabled", "Prefix": "x/", "Expiration": {"Days": 2}}]})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert got == [{"ID": "v1", "Status": "Enabled", "Prefix": "x/", "Expiration": {"Days": 2}}]

    assert s3.delete_bucket_lifecycle(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code_of(e) == ("NoSuchLifecycleConfiguration", 404)


def test_an_id_is_given_to_rules_without_one(s3, bucket):
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]})
    rule = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]
    assert rule["ID"]


def rule(**fields):
    base = {"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize("rules,expected", [
    ([rule(), rule()], "InvalidArgument"),  # duplicate ids
    ([rule(ID="x" * 256)], "InvalidArgument"),
    ([rule(Status="On")], "MalformedXML"),
    ([rule(Prefix="a/")], "MalformedXML"),  # both Filter and Prefix
    ([rule(Filter=None)], "MalformedXML"),  # neither
    ([rule(Filter={"Prefix": "a", "ObjectSizeGreaterThan": 5})], "MalformedXML"),
    ([rule(Expiration={"Days": 0})], "InvalidArgument"),
    ([rule(Expiration={"Days": 1, "ExpiredObjectDeleteMarker": True})], "MalformedXML"),
    ([rule(Expiration={"Date": datetime.datetime(2030, 1, 1, 12, tzinfo=datetime.timezone.utc)})],
     "InvalidArgument"),
    ([rule(Expiration=None, NoncurrentVersionExpiration={"NoncurrentDays": 0})], "InvalidArgument"),
    ([rule(Expiration=None, NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 101})],
     "InvalidArgument"),
    ([rule(Expiration=None, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 0})], "InvalidArgument"),
    ([rule(Filter={"Tag": {"Key": "k", "Value": "v"}}, Expiration=None,
           AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1})], "InvalidArgument"),
    ([rule(Filter={"And": {"Prefix": "a", "ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 5}})],
     "InvalidArgument"),
    ([rule(Expiration=None)], "InvalidRequest"),  # no action
    ([rule(ID=str(i)) for i in range(1001)], "MalformedXML"),
])
def test_invalid_configurations_get_s3_errors(s3, bucket, rules, expected):
    with pytest.raises(ClientError) as e:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    assert code_of(e) == (expected, 400)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code_of(e)[0] == "NoSuchLifecycleConfiguration", "a refused configuration is not stored"


def test_a_thousand_rules_are_accepted(s3, bucket):
    rules = [rule(ID=f"r{i}", Filter={"Prefix": f"p{i}/"}) for i in range(1000)]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 1000


def test_no_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=unique_bucket("none"))
    assert code_of(e) == ("NoSuchBucket", 404)


@pytest.fixture(scope="module")
def fast_server(workdir):
    """A server whose lifecycle days last one second."""
    d = workdir / "lifecycle-server"
    d.mkdir()
    srv = CofferServer(d, ["--lifecycle-day-seconds", "1", "--lifecycle-interval", "200ms"]).start()
    try:
        yield srv
    finally:
        srv.discard()


def test_objects_expire_end_to_end(fast_server):
    s3 = make_client(fast_server.endpoint)
    name = unique_bucket("lc")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="tmp/a", Body=b"a")
    s3.put_object(Bucket=name, Key="keep/b", Body=b"b")
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}]})
    deadline = time.monotonic() + 20
    while True:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", [])]
        if keys == ["keep/b"]:
            break
        assert time.monotonic() < deadline, f"still there: {keys}\n{fast_server.log_tail()}"
        time.sleep(0.25)

    # A Date in the past means "expire now".
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [
        {"ID": "now", "Status": "Enabled", "Filter": {},
         "Expiration": {"Date": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)}}]})
    deadline = time.monotonic() + 20
    while s3.list_objects_v2(Bucket=name).get("KeyCount", 0):
        assert time.monotonic() < deadline, fast_server.log_tail()
        time.sleep(0.25)
