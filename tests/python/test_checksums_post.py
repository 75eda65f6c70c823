"""Browser form uploads (POST object with boto3's generate_presigned_post and `requests`), flexible
checksums with x-amz-checksum-mode, multipart FULL_OBJECT checksums, and GetObjectAttributes.

botocore computes CRC32C and CRC64NVME only with awscrt, which the venv does not have: those
checksums are computed here (table-driven CRCs) and sent precomputed."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import xml.etree.ElementTree as ET

import pytest
import requests
from botocore.exceptions import ClientError
from conftest import make_client

MIB = 1024 * 1024


def _crc_table(poly: int) -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc_table(0x82F63B78)
CRC64NVME_TABLE = _crc_table(0x9A6C9329AC4BC9B5)


def _crc(data: bytes, table: list[int], width: int) -> str:
    mask = (1 << width) - 1
    c = mask
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return base64.b64encode((c ^ mask).to_bytes(width // 8, "big")).decode()


def crc32c(data: bytes) -> str:
    return _crc(data, CRC32C_TABLE, 32)


def crc64nvme(data: bytes) -> str:
    return _crc(data, CRC64NVME_TABLE, 64)


def sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_reference_crcs():
    # The catalogue check values of CRC-32C and CRC-64/NVME.
    assert base64.b64decode(crc32c(b"123456789")) == (0xE3069283).to_bytes(4, "big")
    assert base64.b64decode(crc64nvme(b"123456789")) == (0xAE8B14860A799888).to_bytes(8, "big")


def pattern(size: int, seed: int) -> bytes:
    block = hashlib.sha256(b"%d" % seed).digest()
    return (block * (size // len(block) + 1))[:size]


def code_of(response: requests.Response) -> str:
    return ET.fromstring(response.content).findtext("Code") or ""


def message_of(response: requests.Response) -> str:
    return ET.fromstring(response.content).findtext("Message") or ""


def post_form(post: dict, content: bytes, filename: str = "upload.txt", **kwargs) -> requests.Response:
    # The file must be the form's last field; `requests` puts `files` after `data`.
    return requests.post(post["url"], data=post["fields"], files={"file": (filename, content)}, timeout=30,
                         **kwargs)


# --- POST object -------------------------------------------------------------------------------


def test_post_201_answers_with_post_response_xml(s3, bucket):
    post = s3.generate_presigned_post(
        bucket,
        "uploads/${filename}",
        Fields={"success_action_status": "201", "Content-Type": "text/plain", "x-amz-meta-color": "blue"},
        Conditions=[
            {"success_action_status": "201"},
            {"Content-Type": "text/plain"},
            {"x-amz-meta-color": "blue"},
            ["content-length-range", 1, 1000],
        ],
        ExpiresIn=300,
    )
    body = b"hello from a browser form"
    r = post_form(post, body, filename="hello.txt")
    assert r.status_code == 201, r.text
    doc = ET.fromstring(r.content)
    assert doc.tag.endswith("PostResponse")
    assert doc.findtext("Bucket") == bucket
    assert doc.findtext("Key") == "uploads/hello.txt"
    assert doc.findtext("ETag").strip('"') == hashlib.md5(body).hexdigest()
    head = s3.head_object(Bucket=bucket, Key="uploads/hello.txt")
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"color": "blue"}
    assert s3.get_object(Bucket=bucket, Key="uploads/hello.txt")["Body"].read() == body


def test_post_default_is_204_with_etag(s3, bucket):
    post = s3.generate_presigned_post(bucket, "plain.bin", ExpiresIn=300)
    body = pattern(200_000, 1)
    r = post_form(post, body)
    assert r.status_code == 204, r.text
    assert r.headers["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    assert s3.get_object(Bucket=bucket, Key="plain.bin")["Body"].read() == body


def test_post_redirect_is_303_with_bucket_key_and_etag(s3, bucket):
    target = "http://example.com/uploaded"
    post = s3.generate_presigned_post(
        bucket, "redirected.txt", Fields={"success_action_redirect": target},
        Conditions=[{"success_action_redirect": target}], ExpiresIn=300,
    )
    r = post_form(post, b"redirect me", allow_redirects=False)
    assert r.status_code == 303, r.text
    location = r.headers["Location"]
    assert location.startswith(target + "?")
    query = requests.utils.urlparse(location).query
    params = dict(p.split("=", 1) for p in query.split("&"))
    assert params["bucket"] == bucket
    assert params["key"] == "redirected.txt"
    assert params["etag"].replace("%22", "").strip('"') == hashlib.md5(b"redirect me").hexdigest()


def test_post_policy_violations_are_access_denied(s3, bucket):
    post = s3.generate_presigned_post(bucket, "fixed.txt", ExpiresIn=300)
    # The key the policy allows is "fixed.txt" only.
    post["fields"]["key"] = "other.txt"
    r = post_form(post, b"x")
    assert r.status_code == 403, r.text
    assert code_of(r) == "AccessDenied"
    assert message_of(r).startswith("Invalid according to Policy: Policy Condition failed")
    # A field the policy does not mention.
    post = s3.generate_presigned_post(bucket, "fixed.txt", ExpiresIn=300)
    post["fields"]["x-amz-meta-sneaky"] = "1"
    r = post_form(post, b"x")
    assert r.status_code == 403, r.text
    assert code_of(r) == "AccessDenied"
    assert "Extra input fields" in message_of(r)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="other.txt")


def test_post_content_length_range_is_enforced(s3, bucket):
    post = s3.generate_presigned_post(bucket, "sized.bin", Conditions=[["content-length-range", 10, 20]],
                                      ExpiresIn=300)
    small = post_form(post, b"tiny")
    assert small.status_code == 400, small.text
    assert code_of(small) == "EntityTooSmall"
    large = post_form(post, b"x" * 100)
    assert large.status_code == 400, large.text
    assert code_of(large) == "EntityTooLarge"
    fits = post_form(post, b"just right!!")
    assert fits.status_code == 204, fits.text


def test_post_expired_policy_is_refused(s3, bucket):
    post = s3.generate_presigned_post(bucket, "late.txt", ExpiresIn=-60)
    r = post_form(post, b"too late")
    assert r.status_code == 403, r.text
    assert code_of(r) == "AccessDenied"
    assert message_of(r) == "Invalid according to Policy: Policy expired."


def test_post_without_a_key_is_invalid_argument(endpoint, bucket):
    r = requests.post(f"{endpoint}/{bucket}", data={"Content-Type": "text/plain"}, files={"file": ("f", b"no key")},
                      timeout=30)
    assert r.status_code == 400, r.text
    assert code_of(r) == "InvalidArgument"


def test_post_with_a_wrong_signature_is_refused(s3, bucket):
    post = s3.generate_presigned_post(bucket, "forged.txt", ExpiresIn=300)
    post["fields"]["x-amz-signature"] = "0" * 64
    r = post_form(post, b"forged")
    assert r.status_code == 403, r.text
    assert code_of(r) == "SignatureDoesNotMatch"


def test_post_is_put_object_for_the_forms_signer(endpoint, s3, bucket):
    from test_iam import new_user

    _, reader = new_user(endpoint, "readonly")
    _, writer = new_user(endpoint, "readwrite")
    refused = post_form(reader.generate_presigned_post(bucket, "by-reader.txt", ExpiresIn=300), b"r")
    assert refused.status_code == 403, refused.text
    assert code_of(refused) == "AccessDenied"
    allowed = post_form(writer.generate_presigned_post(bucket, "by-writer.txt", ExpiresIn=300), b"w")
    assert allowed.status_code == 204, allowed.text
    assert s3.get_object(Bucket=bucket, Key="by-writer.txt")["Body"].read() == b"w"


def test_post_with_session_credentials(endpoint, s3, bucket):
    from test_iam import ROLE_ARN, admin_json, client_for, sts_client

    user = admin_json(endpoint, "user", "add", f"u-{bucket[-8:]}", "--policy", "readwrite")
    creds = sts_client(endpoint, user["access_key"], user["secret_key"]).assume_role(
        RoleArn=ROLE_ARN, RoleSessionName="form", DurationSeconds=900)["Credentials"]
    session = client_for(endpoint, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    post = session.generate_presigned_post(bucket, "by-session.txt", ExpiresIn=300)
    assert post["fields"]["x-amz-security-token"] == creds["SessionToken"]
    r = post_form(post, b"session form")
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="by-session.txt")["Body"].read() == b"session form"
    # A tampered token is refused like any request with one.
    post = session.generate_presigned_post(bucket, "tampered.txt", ExpiresIn=300)
    post["fields"]["x-amz-security-token"] = creds["SessionToken"][:-4] + "AAAA"
    r = post_form(post, b"x")
    assert r.status_code == 403, r.text


def test_anonymous_post_needs_a_bucket_policy_for_the_key(endpoint, s3, bucket):
    def anonymous(key: str) -> requests.Response:
        return requests.post(f"{endpoint}/{bucket}", data={"key": key}, files={"file": ("f", b"anon")}, timeout=30)

    assert anonymous("drop/a.txt").status_code == 403
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
                       "Resource": f"arn:aws:s3:::{bucket}/drop/*"}],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    try:
        ok = anonymous("drop/a.txt")
        assert ok.status_code == 204, ok.text
        other = anonymous("elsewhere.txt")
        assert other.status_code == 403, other.text
        assert code_of(other) == "AccessDenied"
    finally:
        s3.delete_bucket_policy(Bucket=bucket)


def test_anonymous_post_where_a_public_read_write_acl_allows_it(endpoint, s3, bucket):
    s3.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]})
    s3.delete_public_access_block(Bucket=bucket)
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    r = requests.post(f"{endpoint}/{bucket}", data={"key": "by-anyone.txt"}, files={"file": ("f", b"acl")},
                      timeout=30)
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="by-anyone.txt")["Body"].read() == b"acl"


def test_post_signed_with_sigv2(endpoint, s3, bucket):
    from conftest import ACCESS_KEY, SECRET_KEY

    expiration = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
    policy = {
        "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [{"bucket": bucket}, ["starts-with", "$key", "v2/"], {"AWSAccessKeyId": ACCESS_KEY}],
    }
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    signature = base64.b64encode(hmac.new(SECRET_KEY.encode(), encoded.encode(), hashlib.sha1).digest()).decode()
    fields = {"key": "v2/${filename}", "AWSAccessKeyId": ACCESS_KEY, "policy": encoded, "signature": signature}
    r = requests.post(f"{endpoint}/{bucket}", data=fields, files={"file": ("two.txt", b"sigv2 form")}, timeout=30)
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="v2/two.txt")["Body"].read() == b"sigv2 form"
    fields["signature"] = base64.b64encode(b"\0" * 20).decode()
    r = requests.post(f"{endpoint}/{bucket}", data=fields, files={"file": ("two.txt", b"forged")}, timeout=30)
    assert r.status_code == 403, r.text
    assert code_of(r) == "SignatureDoesNotMatch"


# --- checksums -------------------------------------------------------------------------------------


def test_checksum_mode_returns_sha256_and_crc32c(endpoint, s3, bucket):
    body = pattern(100_000, 2)
    s3.put_object(Bucket=bucket, Key="sha", Body=body, ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=bucket, Key="crc", Body=body, ChecksumCRC32C=crc32c(body))
    asks_not = make_client(endpoint, response_checksum_validation="when_required")
    plain = asks_not.get_object(Bucket=bucket, Key="sha")
    assert "ChecksumSHA256" not in plain
    plain = asks_not.head_object(Bucket=bucket, Key="crc")
    assert "ChecksumCRC32C" not in plain

    got = s3.get_object(Bucket=bucket, Key="sha", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == sha256(body)
    assert got["ChecksumType"] == "FULL_OBJECT"
    assert got["Body"].read() == body
    head = s3.head_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == crc32c(body)

    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="bad", Body=body, ChecksumCRC32C=crc32c(b"other"))
    assert excinfo.value.response["Error"]["Code"] == "BadDigest"


def put_with_trailer(endpoint: str, bucket: str, key: str, data: bytes, trailer: str, value: str):
    """An unsigned-payload aws-chunked PUT whose checksum comes in the trailer, as SDKs send it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from conftest import ACCESS_KEY, REGION, SECRET_KEY

    body = b"%x\r\n" % len(data) + data + b"\r\n0\r\n" + f"{trailer}:{value}\r\n\r\n".encode()
    headers = {
        "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "X-Amz-Trailer": trailer,
        "Content-Length": str(len(body)),
    }
    request = AWSRequest(method="PUT", url=f"{endpoint}/{bucket}/{key}", data=body, headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    prepared = request.prepare()
    return requests.put(prepared.url, data=body, headers=dict(prepared.headers), timeout=30)


def test_trailing_checksums_in_aws_chunked_bodies(endpoint, s3, bucket):
    data = pattern(70_000, 8)
    r = put_with_trailer(endpoint, bucket, "trailed", data, "x-amz-checksum-crc32c", crc32c(data))
    assert r.status_code == 200, r.text
    assert r.headers["x-amz-checksum-crc32c"] == crc32c(data)
    head = s3.head_object(Bucket=bucket, Key="trailed", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == crc32c(data)
    assert s3.get_object(Bucket=bucket, Key="trailed")["Body"].read() == data
    r = put_with_trailer(endpoint, bucket, "wrong", data, "x-amz-checksum-sha256", sha256(b"other"))
    assert r.status_code == 400, r.text
    assert code_of(r) == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="wrong")


def test_full_object_crc64nvme_multipart(s3, bucket):
    parts = [pattern(5 * MIB, 3), pattern(300_000, 4)]
    whole = b"".join(parts)
    created = s3.create_multipart_upload(Bucket=bucket, Key="nvme", ChecksumAlgorithm="CRC64NVME",
                                         ChecksumType="FULL_OBJECT")
    assert created["ChecksumAlgorithm"] == "CRC64NVME"
    assert created["ChecksumType"] == "FULL_OBJECT"
    upload_id = created["UploadId"]
    completed = []
    for number, data in enumerate(parts, start=1):
        out = s3.upload_part(Bucket=bucket, Key="nvme", UploadId=upload_id, PartNumber=number, Body=data,
                             ChecksumCRC64NVME=crc64nvme(data))
        assert out["ChecksumCRC64NVME"] == crc64nvme(data)
        completed.append({"PartNumber": number, "ETag": out["ETag"], "ChecksumCRC64NVME": out["ChecksumCRC64NVME"]})
    listed = s3.list_parts(Bucket=bucket, Key="nvme", UploadId=upload_id)
    assert listed["ChecksumAlgorithm"] == "CRC64NVME"
    assert [p["ChecksumCRC64NVME"] for p in listed["Parts"]] == [crc64nvme(p) for p in parts]

    expected = crc64nvme(whole)
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(Bucket=bucket, Key="nvme", UploadId=upload_id,
                                     MultipartUpload={"Parts": completed}, ChecksumType="FULL_OBJECT",
                                     ChecksumCRC64NVME=crc64nvme(b"not the object"))
    assert excinfo.value.response["Error"]["Code"] == "BadDigest"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="nvme", UploadId=upload_id,
                                        MultipartUpload={"Parts": completed}, ChecksumType="FULL_OBJECT",
                                        ChecksumCRC64NVME=expected)
    assert done["ChecksumCRC64NVME"] == expected
    assert done["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key="nvme", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == expected
    assert head["ChecksumType"] == "FULL_OBJECT"


def test_composite_sha256_multipart_and_object_attributes(s3, bucket):
    parts = [pattern(5 * MIB, 5), pattern(5 * MIB, 6), pattern(1234, 7)]
    created = s3.create_multipart_upload(Bucket=bucket, Key="comp", ChecksumAlgorithm="SHA256")
    assert created["ChecksumType"] == "COMPOSITE"
    upload_id = created["UploadId"]
    completed = []
    for number, data in enumerate(parts, start=1):
        out = s3.upload_part(Bucket=bucket, Key="comp", UploadId=upload_id, PartNumber=number, Body=data,
                             ChecksumAlgorithm="SHA256")
        assert out["ChecksumSHA256"] == sha256(data)
        completed.append({"PartNumber": number, "ETag": out["ETag"], "ChecksumSHA256": out["ChecksumSHA256"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key="comp", UploadId=upload_id,
                                        MultipartUpload={"Parts": completed})
    joined = b"".join(hashlib.sha256(p).digest() for p in parts)
    expected = f"{base64.b64encode(hashlib.sha256(joined).digest()).decode()}-3"
    assert done["ChecksumSHA256"] == expected
    assert done["ChecksumType"] == "COMPOSITE"

    attrs = s3.get_object_attributes(Bucket=bucket, Key="comp",
                                     ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass",
                                                       "ObjectSize"], MaxParts=2)
    assert attrs["ObjectSize"] == sum(len(p) for p in parts)
    assert attrs["StorageClass"] == "STANDARD"
    assert attrs["ETag"].strip('"').endswith("-3")
    assert attrs["Checksum"]["ChecksumSHA256"] == expected
    assert attrs["Checksum"]["ChecksumType"] == "COMPOSITE"
    object_parts = attrs["ObjectParts"]
    assert object_parts["TotalPartsCount"] == 3
    assert object_parts["IsTruncated"] is True
    assert [p["PartNumber"] for p in object_parts["Parts"]] == [1, 2]
    assert object_parts["Parts"][0]["ChecksumSHA256"] == sha256(parts[0])
    rest = s3.get_object_attributes(Bucket=bucket, Key="comp", ObjectAttributes=["ObjectParts"],
                                    PartNumberMarker=object_parts["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in rest["ObjectParts"]["Parts"]] == [3]
    assert rest["ObjectParts"]["IsTruncated"] is False
    assert "ObjectSize" not in rest

    part = s3.head_object(Bucket=bucket, Key="comp", PartNumber=3, ChecksumMode="ENABLED")
    assert part["ChecksumSHA256"] == sha256(parts[2])

    with pytest.raises(ClientError) as excinfo:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])
    assert excinfo.value.response["Error"]["Code"] == "NoSuchKey"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def unknown_version(version_id: str) -> str:
    """A version id of the same form as `version_id` that names no version."""
    last = version_id[-1]
    other = "0" if last != "0" else "1"
    return version_id[:-1] + other


def test_object_attributes_of_versions(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="v", Body=b"one")["VersionId"]
    s3.put_object(Bucket=bucket, Key="v", Body=b"second")
    old = s3.get_object_attributes(Bucket=bucket, Key="v", VersionId=first, ObjectAttributes=["ObjectSize"])
    assert old["ObjectSize"] == 3
    assert old["VersionId"] == first
    with pytest.raises(ClientError) as excinfo:
        s3.get_object_attributes(Bucket=bucket, Key="v", VersionId=unknown_version(first),
                                 ObjectAttributes=["ObjectSize"])
    assert excinfo.value.response["Error"]["Code"] == "NoSuchVersion"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.delete_object(Bucket=bucket, Key="v")
    with pytest.raises(ClientError) as excinfo:
        s3.get_object_attributes(Bucket=bucket, Key="v", ObjectAttributes=["ObjectSize"])
    assert excinfo.value.response["Error"]["Code"] == "NoSuchKey"
    # Delete every version so the fixture can remove the bucket.
    for version in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        s3.delete_object(Bucket=bucket, Key="v", VersionId=version["VersionId"])
    for marker in s3.list_object_versions(Bucket=bucket).get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket, Key="v", VersionId=marker["VersionId"])


def test_upload_part_copy_gets_the_uploads_checksum(s3, bucket):
    source = pattern(40_000, 9)
    s3.put_object(Bucket=bucket, Key="source", Body=source)
    created = s3.create_multipart_upload(Bucket=bucket, Key="copied", ChecksumAlgorithm="CRC32C",
                                         ChecksumType="FULL_OBJECT")
    upload_id = created["UploadId"]
    out = s3.upload_part_copy(Bucket=bucket, Key="copied", UploadId=upload_id, PartNumber=1,
                              CopySource={"Bucket": bucket, "Key": "source"}, CopySourceRange="bytes=0-19999")
    assert out["CopyPartResult"]["ChecksumCRC32C"] == crc32c(source[:20000])
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="copied", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": out["CopyPartResult"]["ETag"]}]})
    assert done["ChecksumCRC32C"] == crc32c(source[:20000])
    assert done["ChecksumType"] == "FULL_OBJECT"
