"""CORS, canned ACLs, PublicAccessBlock and ownership controls with boto3, plus what a browser does:
a real preflight (OPTIONS with Origin and Access-Control-Request-Method) and an actual GET with an
Origin header, and anonymous (unsigned) access through public ACLs."""

from __future__ import annotations

import json

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import REGION, unique_bucket
from test_iam import admin, error_code, new_user

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
ORIGIN = "https://app.example.com"


def anonymous(endpoint: str):
    """An unsigned boto3 client: every request it sends is anonymous."""
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=REGION,
        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"},
                      retries={"max_attempts": 1, "mode": "standard"}))


def grants(acl: dict) -> list[tuple[str, str, str]]:
    out = []
    for g in acl["Grants"]:
        grantee = g["Grantee"]
        out.append((grantee["Type"], grantee.get("URI") or grantee.get("ID"), g["Permission"]))
    return out


def test_cors_configuration_round_trip_and_validation(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert error_code(e) == "NoSuchCORSConfiguration"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    rules = [{"AllowedOrigins": [ORIGIN], "AllowedMethods": ["GET", "PUT"], "AllowedHeaders": ["x-amz-*"],
              "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 300, "ID": "app"},
             {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]}]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == rules
    for bad, code in (
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}], "InvalidRequest"),
        ([{"AllowedOrigins": ["http://*.*.com"], "AllowedMethods": ["GET"]}], "InvalidRequest"),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["a*b*"]}], "InvalidRequest"),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}] * 101, "MalformedXML"),
    ):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": bad})
        assert error_code(e) == code
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == rules, "a refused configuration changes nothing"
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert error_code(e) == "NoSuchCORSConfiguration"


def test_browser_preflight_and_actual_request(endpoint, s3, bucket):
    url = f"{endpoint}/{bucket}/site/index.html"
    s3.put_object(Bucket=bucket, Key="site/index.html", Body=b"<h1>hi</h1>", ACL="public-read")
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
                 "Access-Control-Request-Headers": "Content-Type, X-Amz-Date"}

    r = requests.options(url, headers=preflight, timeout=10)
    assert r.status_code == 403
    assert "<Code>AccessForbidden</Code>" in r.text and "CORS is not enabled for this bucket" in r.text
    assert requests.options(url, headers={"Access-Control-Request-Method": "GET"}, timeout=10).status_code == 400

    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["GET", "PUT"],
         "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag", "x-amz-request-id"],
         "MaxAgeSeconds": 3000},
    ]})
    r = requests.options(url, headers=preflight, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Allow-Methods"] == "GET, PUT"
    assert r.headers["Access-Control-Allow-Headers"] == "content-type, x-amz-date"
    assert r.headers["Access-Control-Max-Age"] == "3000"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Vary"] == "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"

    for headers in ({**preflight, "Origin": "https://example.org"},
                    {**preflight, "Access-Control-Request-Method": "DELETE"},
                    {**preflight, "Access-Control-Request-Headers": "Authorization"}):
        r = requests.options(url, headers=headers, timeout=10)
        assert r.status_code == 403, headers
        assert "CORSResponse: This CORS request is not allowed" in r.text
        assert "Access-Control-Allow-Origin" not in r.headers

    # The actual request: a public object read by a browser on another origin.
    r = requests.get(url, headers={"Origin": ORIGIN}, timeout=10)
    assert r.status_code == 200 and r.content == b"<h1>hi</h1>"
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert "Access-Control-Allow-Headers" not in r.headers
    r = requests.get(url, headers={"Origin": "https://example.org"}, timeout=10)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    # Errors carry the headers too, so the page can read them.
    r = requests.get(f"{endpoint}/{bucket}/private", headers={"Origin": ORIGIN}, timeout=10)
    assert r.status_code == 403 and r.headers["Access-Control-Allow-Origin"] == ORIGIN

    # A signed request from the browser's page gets them as well.
    def add_origin(request, **_):
        request.headers["Origin"] = ORIGIN
    s3.meta.events.register("before-sign.s3.GetObject", add_origin)
    try:
        got = s3.get_object(Bucket=bucket, Key="site/index.html")
    finally:
        s3.meta.events.unregister("before-sign.s3.GetObject", add_origin)
    assert got["ResponseMetadata"]["HTTPHeaders"]["access-control-allow-origin"] == ORIGIN


def test_canned_acls_open_objects_and_listings_to_anonymous_callers(endpoint, s3):
    bucket = unique_bucket("acl")
    s3.create_bucket(Bucket=bucket, ACL="public-read")
    anon = anonymous(endpoint)
    acl = s3.get_bucket_acl(Bucket=bucket)
    owner = acl["Owner"]["ID"]
    assert grants(acl) == [("CanonicalUser", owner, "FULL_CONTROL"), ("Group", ALL_USERS, "READ")]

    s3.put_object(Bucket=bucket, Key="public.txt", Body=b"for everyone", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="private.txt", Body=b"mine")
    assert grants(s3.get_object_acl(Bucket=bucket, Key="public.txt")) == [
        ("CanonicalUser", owner, "FULL_CONTROL"), ("Group", ALL_USERS, "READ")]
    assert grants(s3.get_object_acl(Bucket=bucket, Key="private.txt")) == [("CanonicalUser", owner, "FULL_CONTROL")]

    assert anon.get_object(Bucket=bucket, Key="public.txt")["Body"].read() == b"for everyone"
    assert anon.head_object(Bucket=bucket, Key="public.txt")["ContentLength"] == 12
    assert {o["Key"] for o in anon.list_objects_v2(Bucket=bucket)["Contents"]} == {"public.txt", "private.txt"}
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="private.txt")
    assert error_code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        anon.put_object(Bucket=bucket, Key="graffiti", Body=b"x")
    assert error_code(e) == "AccessDenied"

    # public-read-write: anonymous writes; the new object is private (its writer's ACL is none).
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    assert grants(s3.get_bucket_acl(Bucket=bucket))[1:] == [("Group", ALL_USERS, "READ"), ("Group", ALL_USERS, "WRITE")]
    anon.put_object(Bucket=bucket, Key="drop.txt", Body=b"dropped")
    assert s3.get_object(Bucket=bucket, Key="drop.txt")["Body"].read() == b"dropped"
    anon.delete_object(Bucket=bucket, Key="drop.txt")

    # The AccessControlPolicy body, limited to what a canned ACL expresses.
    s3.put_object_acl(Bucket=bucket, Key="private.txt", AccessControlPolicy={
        "Owner": {"ID": owner},
        "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "FULL_CONTROL"},
                   {"Grantee": {"Type": "Group", "URI": AUTHENTICATED_USERS}, "Permission": "READ"}]})
    assert grants(s3.get_object_acl(Bucket=bucket, Key="private.txt"))[1] == ("Group", AUTHENTICATED_USERS, "READ")
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="private.txt")
    assert error_code(e) == "AccessDenied"
    # authenticated-read: any valid signer, even one without any policy.
    _, nobody = new_user(endpoint)
    assert nobody.get_object(Bucket=bucket, Key="private.txt")["Body"].read() == b"mine"
    with pytest.raises(ClientError) as e:
        nobody.get_object_acl(Bucket=bucket, Key="private.txt")
    assert error_code(e) == "AccessDenied"

    # CopyObject with x-amz-acl: the copy gets its own ACL, not the source's.
    s3.copy_object(Bucket=bucket, Key="copy.txt", CopySource={"Bucket": bucket, "Key": "public.txt"})
    assert len(s3.get_object_acl(Bucket=bucket, Key="copy.txt")["Grants"]) == 1
    s3.copy_object(Bucket=bucket, Key="copy2.txt", CopySource={"Bucket": bucket, "Key": "private.txt"},
                   ACL="public-read")
    assert anon.get_object(Bucket=bucket, Key="copy2.txt")["Body"].read() == b"mine"
    # Multipart uploads carry theirs to the completed object.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin", ACL="public-read")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=upload, PartNumber=1, Body=b"parts")
    s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert anon.get_object(Bucket=bucket, Key="mp.bin")["Body"].read() == b"parts"

    with pytest.raises(ClientError) as e:
        s3.put_object_acl(Bucket=bucket, Key="public.txt", ACL="everyone-please")
    assert error_code(e) == "InvalidArgument"


def test_public_access_block(endpoint, s3):
    bucket = unique_bucket("pab")
    s3.create_bucket(Bucket=bucket)
    anon = anonymous(endpoint)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="public-read")
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    with pytest.raises(ClientError) as e:
        s3.get_public_access_block(Bucket=bucket)
    assert error_code(e) == "NoSuchPublicAccessBlockConfiguration"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"IgnorePublicAcls": True})
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": False, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False}
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="k")
    assert error_code(e) == "AccessDenied"

    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "BlockPublicPolicy": True})
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    for refused in (
        lambda: s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read-write"),
        lambda: s3.put_object(Bucket=bucket, Key="k2", Body=b"v", ACL="public-read"),
        lambda: s3.put_bucket_acl(Bucket=bucket, ACL="public-read"),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="mp", ACL="authenticated-read"),
    ):
        with pytest.raises(ClientError) as e:
            refused()
        assert error_code(e) == "AccessDenied"
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                      "Action": "s3:GetObject",
                                                      "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert error_code(e) == "AccessDenied"

    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"RestrictPublicBuckets": True})
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="k")
    assert error_code(e) == "AccessDenied"
    s3.delete_public_access_block(Bucket=bucket)
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_ownership_controls_disable_acls(endpoint, s3, bucket):
    anon = anonymous(endpoint)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="public-read")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_ownership_controls(Bucket=bucket)
    assert error_code(e) == "OwnershipControlsNotFoundError"
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="k")
    assert error_code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    assert error_code(e) == "AccessControlListNotSupported"
    s3.put_object(Bucket=bucket, Key="k2", Body=b"v", ACL="bucket-owner-full-control")
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"

    # Set at creation.
    enforced = unique_bucket("own")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=enforced, ACL="public-read", ObjectOwnership="BucketOwnerEnforced")
    assert error_code(e) == "InvalidBucketAclWithObjectOwnership"
    s3.create_bucket(Bucket=enforced, ObjectOwnership="BucketOwnerEnforced")
    assert s3.get_bucket_ownership_controls(Bucket=enforced)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(Bucket=enforced, ACL="public-read")
    assert error_code(e) == "AccessControlListNotSupported"
    s3.delete_bucket(Bucket=enforced)


def test_setting_an_acl_while_writing_needs_put_object_acl(endpoint, s3, bucket, tmp_path):
    """As in AWS: PutObject with x-amz-acl is also s3:PutObjectAcl."""
    name = f"writer-{bucket[-8:]}"
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    path = tmp_path / "writer.json"
    path.write_text(json.dumps(document))
    admin(endpoint, "policy", "create", name, str(path))
    _, writer = new_user(endpoint, name)
    writer.put_object(Bucket=bucket, Key="plain", Body=b"x")
    with pytest.raises(ClientError) as e:
        writer.put_object(Bucket=bucket, Key="public", Body=b"x", ACL="public-read")
    assert error_code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        writer.put_object(Bucket=bucket, Key="grant", Body=b"x", GrantRead=f'uri="{ALL_USERS}"')
    assert error_code(e) == "AccessDenied"
    _, trusted = new_user(endpoint, "readwrite")
    trusted.put_object(Bucket=bucket, Key="grant", Body=b"x", GrantRead=f'uri="{ALL_USERS}"')
    assert anonymous(endpoint).get_object(Bucket=bucket, Key="grant")["Body"].read() == b"x"
    assert grants(s3.get_object_acl(Bucket=bucket, Key="grant"))[1] == ("Group", ALL_USERS, "READ")
