"""S3 object lock (WORM) with boto3: lock buckets, default retention, GOVERNANCE and COMPLIANCE
retention, legal holds, the governance bypass and its permission, and retention running out."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError
from conftest import unique_bucket
from test_iam import admin, new_user


def error_of(excinfo) -> tuple[str, int]:
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def from_now(**delta) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(**delta)


def retention(mode: str, until: dt.datetime) -> dict:
    return {"Mode": mode, "RetainUntilDate": until}


@pytest.fixture
def lock_bucket(s3):
    """A fresh bucket with object lock. Locked versions outlive the test (that is the point), so
    only what the test released is cleaned up; the session's server is thrown away anyway."""
    name = unique_bucket("lock")
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def test_lock_bucket_is_versioned_and_keeps_its_lock(s3, lock_bucket, bucket):
    assert s3.get_bucket_versioning(Bucket=lock_bucket)["Status"] == "Enabled"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=lock_bucket, VersioningConfiguration={"Status": "Suspended"})
    assert error_of(e) == ("InvalidBucketState", 409)
    config = s3.get_object_lock_configuration(Bucket=lock_bucket)["ObjectLockConfiguration"]
    assert config == {"ObjectLockEnabled": "Enabled"}

    # A bucket made without object lock has none and cannot get it; lock parameters are refused.
    with pytest.raises(ClientError) as e:
        s3.get_object_lock_configuration(Bucket=bucket)
    assert error_of(e) == ("ObjectLockConfigurationNotFoundError", 404)
    with pytest.raises(ClientError) as e:
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    assert error_of(e) == ("InvalidBucketState", 409)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=from_now(days=1))
    assert error_of(e) == ("InvalidRequest", 400)
    assert "missing Object Lock Configuration" in e.value.response["Error"]["Message"]


def test_default_retention_is_applied_and_the_version_cannot_be_deleted_even_by_root(s3, lock_bucket):
    s3.put_object_lock_configuration(
        Bucket=lock_bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    rule = s3.get_object_lock_configuration(Bucket=lock_bucket)["ObjectLockConfiguration"]["Rule"]
    assert rule == {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}
    with pytest.raises(ClientError) as e:
        s3.put_object_lock_configuration(
            Bucket=lock_bucket,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1, "Years": 1}},
            },
        )
    assert error_of(e)[0] == "MalformedXML"

    version = s3.put_object(Bucket=lock_bucket, Key="doc", Body=b"v1")["VersionId"]
    head = s3.head_object(Bucket=lock_bucket, Key="doc")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert abs((head["ObjectLockRetainUntilDate"] - from_now(days=1)).total_seconds()) < 120
    got = s3.get_object_retention(Bucket=lock_bucket, Key="doc", VersionId=version)["Retention"]
    assert got["Mode"] == "COMPLIANCE"

    # The root user cannot delete the version, alone or in a batch, bypass or not.
    for bypass in (False, True):
        with pytest.raises(ClientError) as e:
            s3.delete_object(Bucket=lock_bucket, Key="doc", VersionId=version, BypassGovernanceRetention=bypass)
        assert error_of(e) == ("AccessDenied", 403)
    batch = s3.delete_objects(Bucket=lock_bucket, Delete={"Objects": [{"Key": "doc", "VersionId": version}]})
    assert [(x["Key"], x["Code"]) for x in batch["Errors"]] == [("doc", "AccessDenied")]
    # Deleting without a version id only adds a delete marker.
    marker = s3.delete_object(Bucket=lock_bucket, Key="doc")
    assert marker["DeleteMarker"] is True
    assert s3.get_object(Bucket=lock_bucket, Key="doc", VersionId=version)["Body"].read() == b"v1"


def test_compliance_can_be_extended_but_never_shortened(s3, lock_bucket):
    until = from_now(days=2)
    version = s3.put_object(Bucket=lock_bucket, Key="law", Body=b"kept", ObjectLockMode="COMPLIANCE",
                            ObjectLockRetainUntilDate=until)["VersionId"]
    for change in (retention("COMPLIANCE", from_now(days=1)), retention("GOVERNANCE", from_now(days=5)), {}):
        with pytest.raises(ClientError) as e:
            s3.put_object_retention(Bucket=lock_bucket, Key="law", VersionId=version, Retention=change,
                                    BypassGovernanceRetention=True)
        assert error_of(e) == ("AccessDenied", 403), change
    s3.put_object_retention(Bucket=lock_bucket, Key="law", VersionId=version,
                            Retention=retention("COMPLIANCE", from_now(days=3)))
    got = s3.get_object_retention(Bucket=lock_bucket, Key="law", VersionId=version)["Retention"]
    assert abs((got["RetainUntilDate"] - from_now(days=3)).total_seconds()) < 120
    with pytest.raises(ClientError) as e:
        s3.put_object_retention(Bucket=lock_bucket, Key="law", VersionId=version,
                                Retention=retention("COMPLIANCE", from_now(days=-1)))
    assert error_of(e) == ("InvalidArgument", 400)


def test_governance_gives_way_only_to_the_bypass_with_its_permission(endpoint, s3, lock_bucket, tmp_path):
    version = s3.put_object(Bucket=lock_bucket, Key="gov", Body=b"g", ObjectLockMode="GOVERNANCE",
                            ObjectLockRetainUntilDate=from_now(days=1))["VersionId"]
    # A user allowed everything on the bucket except the bypass: the header changes nothing.
    policy_name = f"nobypass-{uuid.uuid4().hex[:6]}"
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:*",
             "Resource": [f"arn:aws:s3:::{lock_bucket}", f"arn:aws:s3:::{lock_bucket}/*"]},
            {"Effect": "Deny", "Action": ["s3:BypassGovernanceRetention", "s3:PutObjectLegalHold"],
             "Resource": f"arn:aws:s3:::{lock_bucket}/*"},
        ],
    }
    path = tmp_path / "nobypass.json"
    path.write_text(json.dumps(document))
    admin(endpoint, "policy", "create", policy_name, str(path))
    name, user = new_user(endpoint)
    admin(endpoint, "policy", "attach", policy_name, "--user", name)
    for client in (user, s3):
        with pytest.raises(ClientError) as e:
            client.delete_object(Bucket=lock_bucket, Key="gov", VersionId=version)
        assert error_of(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        user.delete_object(Bucket=lock_bucket, Key="gov", VersionId=version, BypassGovernanceRetention=True)
    assert error_of(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        user.put_object_retention(Bucket=lock_bucket, Key="gov", VersionId=version, Retention={},
                                  BypassGovernanceRetention=True)
    assert error_of(e) == ("AccessDenied", 403)
    # A write that sets a legal hold also needs s3:PutObjectLegalHold.
    with pytest.raises(ClientError) as e:
        user.put_object(Bucket=lock_bucket, Key="other", Body=b"o", ObjectLockLegalHoldStatus="ON")
    assert error_of(e) == ("AccessDenied", 403)
    user.put_object(Bucket=lock_bucket, Key="other", Body=b"o", ObjectLockMode="GOVERNANCE",
                    ObjectLockRetainUntilDate=from_now(days=1))
    # Extending needs no bypass.
    user.put_object_retention(Bucket=lock_bucket, Key="gov", VersionId=version,
                              Retention=retention("GOVERNANCE", from_now(days=2)))

    # With the permission (root has every one) and the header, the version goes.
    s3.delete_object(Bucket=lock_bucket, Key="gov", VersionId=version, BypassGovernanceRetention=True)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=lock_bucket, Key="gov", VersionId=version)
    assert error_of(e)[1] == 404


def test_legal_hold_on_and_off(s3, lock_bucket):
    version = s3.put_object(Bucket=lock_bucket, Key="held", Body=b"h", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.get_object_legal_hold(Bucket=lock_bucket, Key="held")["LegalHold"] == {"Status": "ON"}
    assert s3.get_object(Bucket=lock_bucket, Key="held")["ObjectLockLegalHoldStatus"] == "ON"
    with pytest.raises(ClientError) as e:
        s3.get_object_retention(Bucket=lock_bucket, Key="held")
    assert error_of(e) == ("NoSuchObjectLockConfiguration", 404)
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=lock_bucket, Key="held", VersionId=version, BypassGovernanceRetention=True)
    assert error_of(e) == ("AccessDenied", 403)

    s3.put_object_legal_hold(Bucket=lock_bucket, Key="held", VersionId=version, LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=lock_bucket, Key="held", VersionId=version)["LegalHold"] == {
        "Status": "OFF"
    }
    s3.delete_object(Bucket=lock_bucket, Key="held", VersionId=version)
    assert "Versions" not in s3.list_object_versions(Bucket=lock_bucket, Prefix="held")


def test_retention_runs_out_and_then_the_version_may_be_deleted(s3, lock_bucket):
    version = s3.put_object(Bucket=lock_bucket, Key="brief", Body=b"b", ObjectLockMode="COMPLIANCE",
                            ObjectLockRetainUntilDate=from_now(seconds=3))["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=lock_bucket, Key="brief", VersionId=version)
    assert error_of(e) == ("AccessDenied", 403)
    time.sleep(4)
    s3.delete_object(Bucket=lock_bucket, Key="brief", VersionId=version)
    s3.delete_bucket(Bucket=lock_bucket)
