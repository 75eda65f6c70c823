"""Server-side encryption through boto3: SSE-S3, SSE-C, SSE-KMS (a local key file), bucket default
encryption, key rotation, and that no plaintext of an encrypted object reaches a disk."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from conftest import CofferServer, make_client, unique_bucket

MIB = 1024 * 1024
KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(100, 132))).decode()
KMS_KEY = base64.b64encode(bytes(range(50, 82))).decode()
CUSTOMER_KEY = bytes(range(1, 33))
OTHER_KEY = bytes(range(2, 34))


def pattern(marker: bytes, size: int) -> bytes:
    """`size` bytes of `marker` followed by a counter: recognisable anywhere a slice of it lands."""
    out = bytearray()
    n = 0
    while len(out) < size:
        out += marker + b"%010d|" % n
        n += 1
    return bytes(out[:size])


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def error_of(excinfo) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def start_server(workdir: Path, name: str, master_keys: str) -> CofferServer:
    d = workdir / name
    d.mkdir(exist_ok=True)
    (d / "master.keys").write_text(master_keys)
    (d / "kms.keys").write_text(f"k1:{KMS_KEY}\nk2:{KEY_B}\n")
    return CofferServer(
        d,
        [
            "--console-address", "off",
            "--swift-address", "off",
            "--sse-master-key-file", str(d / "master.keys"),
            "--kms-key-file", str(d / "kms.keys"),
        ],
    ).start()


@pytest.fixture(scope="module")
def sse_server(workdir):
    srv = start_server(workdir, "sse-server", f"A:{KEY_A}\n")
    try:
        yield srv
    finally:
        srv.discard()


@pytest.fixture(scope="module")
def s3e(sse_server):
    return make_client(sse_server.endpoint)


@pytest.fixture
def bkt(s3e):
    name = unique_bucket("sse")
    s3e.create_bucket(Bucket=name)
    return name


RANGES = [(0, 0), (0, 65535), (65535, 65536), (65536, 65536), (1, 200_000), (MIB - 1, MIB), (MIB + 5, MIB + 5)]


def check_ranges(s3e, bucket, key, body, **extra):
    for first, last in RANGES:
        if last >= len(body):
            continue
        got = s3e.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}", **extra)
        assert got["Body"].read() == body[first : last + 1], (first, last)
        assert got["ContentLength"] == last - first + 1
        assert got["ContentRange"] == f"bytes {first}-{last}/{len(body)}"
    got = s3e.get_object(Bucket=bucket, Key=key, Range="bytes=-100", **extra)
    assert got["Body"].read() == body[-100:]


def test_sse_s3_put_get_head_and_ranges(s3e, bkt):
    for key, size in [("small", 1000), ("empty", 0), ("big", 3 * MIB + 12345)]:
        body = pattern(b"s3-" + key.encode(), size)
        put = s3e.put_object(Bucket=bkt, Key=key, Body=body, ServerSideEncryption="AES256")
        assert put["ServerSideEncryption"] == "AES256"
        assert put["ETag"] == f'"{md5_hex(body)}"', "SSE-S3 ETags are the plaintext MD5, as AWS"
        got = s3e.get_object(Bucket=bkt, Key=key)
        assert got["Body"].read() == body
        assert got["ServerSideEncryption"] == "AES256"
        assert got["ContentLength"] == size
        assert got["ETag"] == put["ETag"]
        head = s3e.head_object(Bucket=bkt, Key=key)
        assert head["ContentLength"] == size
        assert head["ServerSideEncryption"] == "AES256"
        if size:
            check_ranges(s3e, bkt, key, body)
    listed = {o["Key"]: o for o in s3e.list_objects_v2(Bucket=bkt)["Contents"]}
    assert listed["big"]["Size"] == 3 * MIB + 12345


def test_sse_s3_rejects_unknown_algorithms(s3e, bkt):
    with pytest.raises(ClientError) as e:
        s3e.put_object(Bucket=bkt, Key="k", Body=b"x", ServerSideEncryption="aws:kms:dsse")
    assert error_of(e) == ("InvalidArgument", 400)


def test_sse_s3_multipart(s3e, bkt):
    parts = [pattern(b"part1-", 5 * MIB), pattern(b"part2-", 5 * MIB + 7), pattern(b"part3-", 1234)]
    upload = s3e.create_multipart_upload(Bucket=bkt, Key="mp", ServerSideEncryption="AES256")
    assert upload["ServerSideEncryption"] == "AES256"
    done = []
    for n, data in enumerate(parts, 1):
        r = s3e.upload_part(Bucket=bkt, Key="mp", UploadId=upload["UploadId"], PartNumber=n, Body=data)
        assert r["ServerSideEncryption"] == "AES256"
        assert r["ETag"] == f'"{md5_hex(data)}"'
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    listed = s3e.list_parts(Bucket=bkt, Key="mp", UploadId=upload["UploadId"])
    assert [p["Size"] for p in listed["Parts"]] == [len(p) for p in parts]
    complete = s3e.complete_multipart_upload(
        Bucket=bkt, Key="mp", UploadId=upload["UploadId"], MultipartUpload={"Parts": done}
    )
    assert complete["ServerSideEncryption"] == "AES256"
    body = b"".join(parts)
    got = s3e.get_object(Bucket=bkt, Key="mp")
    assert got["Body"].read() == body
    assert got["ContentLength"] == len(body)
    assert got["ServerSideEncryption"] == "AES256"
    # Across the part boundaries.
    for first, last in [(5 * MIB - 10, 5 * MIB + 10), (10 * MIB, 10 * MIB + 100), (0, len(body) - 1)]:
        got = s3e.get_object(Bucket=bkt, Key="mp", Range=f"bytes={first}-{last}")
        assert got["Body"].read() == body[first : last + 1]
    part2 = s3e.get_object(Bucket=bkt, Key="mp", PartNumber=2)
    assert part2["Body"].read() == parts[1]


def test_sse_s3_copies(s3e, bkt):
    body = pattern(b"copy-", 700_000)
    s3e.put_object(Bucket=bkt, Key="plain", Body=body)
    copied = s3e.copy_object(
        Bucket=bkt, Key="enc", CopySource={"Bucket": bkt, "Key": "plain"}, ServerSideEncryption="AES256"
    )
    assert copied["ServerSideEncryption"] == "AES256"
    assert s3e.head_object(Bucket=bkt, Key="enc")["ServerSideEncryption"] == "AES256"
    assert s3e.get_object(Bucket=bkt, Key="enc")["Body"].read() == body
    # Encrypted to plain, and an object onto itself changing only its encryption (allowed, as AWS).
    s3e.copy_object(Bucket=bkt, Key="plain2", CopySource={"Bucket": bkt, "Key": "enc"})
    assert "ServerSideEncryption" not in s3e.head_object(Bucket=bkt, Key="plain2")
    assert s3e.get_object(Bucket=bkt, Key="plain2")["Body"].read() == body
    s3e.copy_object(Bucket=bkt, Key="plain", CopySource={"Bucket": bkt, "Key": "plain"}, ServerSideEncryption="AES256")
    assert s3e.head_object(Bucket=bkt, Key="plain")["ServerSideEncryption"] == "AES256"
    # UploadPartCopy from an encrypted source into an encrypted upload.
    upload = s3e.create_multipart_upload(Bucket=bkt, Key="mpcopy", ServerSideEncryption="AES256")
    part = s3e.upload_part_copy(
        Bucket=bkt, Key="mpcopy", UploadId=upload["UploadId"], PartNumber=1,
        CopySource={"Bucket": bkt, "Key": "enc"}, CopySourceRange="bytes=100-199999",
    )
    s3e.complete_multipart_upload(
        Bucket=bkt, Key="mpcopy", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]},
    )
    assert s3e.get_object(Bucket=bkt, Key="mpcopy")["Body"].read() == body[100:200000]


def customer(key: bytes = CUSTOMER_KEY, prefix: str = "SSECustomer") -> dict:
    return {f"{prefix}Algorithm": "AES256", f"{prefix}Key": key}


def test_sse_c_right_wrong_and_missing_keys(s3e, bkt):
    body = pattern(b"sse-c-", 2 * MIB + 3)
    put = s3e.put_object(Bucket=bkt, Key="c", Body=body, **customer())
    key_md5 = base64.b64encode(hashlib.md5(CUSTOMER_KEY).digest()).decode()
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert put["SSECustomerKeyMD5"] == key_md5
    assert "ServerSideEncryption" not in put
    assert put["ETag"] != f'"{md5_hex(body)}"', "SSE-C ETags are not the plaintext MD5"

    got = s3e.get_object(Bucket=bkt, Key="c", **customer())
    assert got["Body"].read() == body
    assert got["SSECustomerKeyMD5"] == key_md5
    check_ranges(s3e, bkt, "c", body, **customer())
    head = s3e.head_object(Bucket=bkt, Key="c", **customer())
    assert head["ContentLength"] == len(body)
    assert head["SSECustomerAlgorithm"] == "AES256"

    with pytest.raises(ClientError) as e:
        s3e.get_object(Bucket=bkt, Key="c")
    assert error_of(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        s3e.get_object(Bucket=bkt, Key="c", **customer(OTHER_KEY))
    assert error_of(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        s3e.head_object(Bucket=bkt, Key="c")
    assert error_of(e)[1] == 400
    with pytest.raises(ClientError) as e:
        s3e.head_object(Bucket=bkt, Key="c", **customer(OTHER_KEY))
    assert error_of(e)[1] == 403
    # A key for an object that is not SSE-C.
    s3e.put_object(Bucket=bkt, Key="plain", Body=b"plain")
    with pytest.raises(ClientError) as e:
        s3e.get_object(Bucket=bkt, Key="plain", **customer())
    assert error_of(e) == ("InvalidRequest", 400)


def test_sse_c_header_checks(s3e, bkt):
    def wrong_md5(request, **_):
        name = "x-amz-server-side-encryption-customer-key-MD5"
        request.headers.replace_header(name, base64.b64encode(b"0" * 16).decode())

    s3e.meta.events.register("before-sign.s3.PutObject", wrong_md5)
    try:
        with pytest.raises(ClientError) as e:
            s3e.put_object(Bucket=bkt, Key="k", Body=b"x", **customer())
        assert error_of(e) == ("InvalidArgument", 400)
    finally:
        s3e.meta.events.unregister("before-sign.s3.PutObject", wrong_md5)
    with pytest.raises(ClientError) as e:
        s3e.put_object(Bucket=bkt, Key="k", Body=b"x", **customer(b"short"))
    assert error_of(e) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as e:
        s3e.put_object(Bucket=bkt, Key="k", Body=b"x", SSECustomerAlgorithm="AES128", SSECustomerKey=CUSTOMER_KEY)
    assert error_of(e) == ("InvalidEncryptionAlgorithmError", 400)
    with pytest.raises(ClientError) as e:
        s3e.put_object(Bucket=bkt, Key="k", Body=b"x", ServerSideEncryption="AES256", **customer())
    assert error_of(e) == ("InvalidArgument", 400)


def test_sse_c_copy_and_multipart(s3e, bkt):
    body = pattern(b"sse-c-copy-", 300_000)
    s3e.put_object(Bucket=bkt, Key="src", Body=body, **customer())
    with pytest.raises(ClientError) as e:
        s3e.copy_object(Bucket=bkt, Key="dst", CopySource={"Bucket": bkt, "Key": "src"})
    assert error_of(e) == ("InvalidRequest", 400)
    # Re-keyed copy: source key in the copy-source headers, the new key in the usual ones.
    copied = s3e.copy_object(
        Bucket=bkt, Key="dst", CopySource={"Bucket": bkt, "Key": "src"},
        **customer(prefix="CopySourceSSECustomer"), **customer(OTHER_KEY),
    )
    assert copied["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(OTHER_KEY).digest()).decode()
    assert s3e.get_object(Bucket=bkt, Key="dst", **customer(OTHER_KEY))["Body"].read() == body
    with pytest.raises(ClientError) as e:
        s3e.get_object(Bucket=bkt, Key="dst", **customer())
    assert error_of(e) == ("AccessDenied", 403)

    upload = s3e.create_multipart_upload(Bucket=bkt, Key="mp", **customer())
    assert upload["SSECustomerAlgorithm"] == "AES256"
    with pytest.raises(ClientError) as e:
        s3e.upload_part(Bucket=bkt, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"x")
    assert error_of(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        s3e.upload_part(Bucket=bkt, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"x", **customer(OTHER_KEY))
    assert error_of(e) == ("AccessDenied", 403)
    parts = [pattern(b"c-part1-", 5 * MIB), pattern(b"c-part2-", 4321)]
    done = []
    for n, data in enumerate(parts, 1):
        r = s3e.upload_part(Bucket=bkt, Key="mp", UploadId=upload["UploadId"], PartNumber=n, Body=data, **customer())
        assert r["SSECustomerAlgorithm"] == "AES256"
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    s3e.complete_multipart_upload(Bucket=bkt, Key="mp", UploadId=upload["UploadId"], MultipartUpload={"Parts": done})
    whole = b"".join(parts)
    assert s3e.get_object(Bucket=bkt, Key="mp", **customer())["Body"].read() == whole
    got = s3e.get_object(Bucket=bkt, Key="mp", Range=f"bytes={5 * MIB - 3}-{5 * MIB + 3}", **customer())
    assert got["Body"].read() == whole[5 * MIB - 3 : 5 * MIB + 4]


def test_sse_kms_with_a_key_file(s3e, bkt):
    body = pattern(b"kms-", 400_000)
    put = s3e.put_object(Bucket=bkt, Key="k", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId="k2")
    assert put["ServerSideEncryption"] == "aws:kms"
    assert put["SSEKMSKeyId"] == "k2"
    got = s3e.get_object(Bucket=bkt, Key="k")
    assert got["Body"].read() == body
    assert got["ServerSideEncryption"] == "aws:kms"
    assert got["SSEKMSKeyId"] == "k2"
    check_ranges(s3e, bkt, "k", body)
    # No key id: the first key of the file. An ARN names its key id.
    default = s3e.put_object(Bucket=bkt, Key="d", Body=b"hello", ServerSideEncryption="aws:kms")
    assert default["SSEKMSKeyId"] == "k1"
    arn = "arn:aws:kms:us-east-1:123456789012:key/k2"
    assert s3e.put_object(Bucket=bkt, Key="a", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=arn)[
        "SSEKMSKeyId"
    ] == "k2"
    with pytest.raises(ClientError) as e:
        s3e.put_object(Bucket=bkt, Key="u", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="nope")
    assert error_of(e) == ("KMS.NotFoundException", 400)
    with pytest.raises(ClientError) as e:
        s3e.head_object(Bucket=bkt, Key="u")
    assert error_of(e)[1] == 404, "a refused PUT stores nothing"


def test_bucket_default_encryption(s3e, bkt):
    with pytest.raises(ClientError) as e:
        s3e.get_bucket_encryption(Bucket=bkt)
    assert error_of(e) == ("ServerSideEncryptionConfigurationNotFoundError", 404)
    config = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    s3e.put_bucket_encryption(Bucket=bkt, ServerSideEncryptionConfiguration=config)
    got = s3e.get_bucket_encryption(Bucket=bkt)["ServerSideEncryptionConfiguration"]
    assert got["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    body = pattern(b"default-", 200_000)
    put = s3e.put_object(Bucket=bkt, Key="d", Body=body)
    assert put["ServerSideEncryption"] == "AES256"
    assert s3e.head_object(Bucket=bkt, Key="d")["ServerSideEncryption"] == "AES256"
    assert s3e.get_object(Bucket=bkt, Key="d")["Body"].read() == body
    upload = s3e.create_multipart_upload(Bucket=bkt, Key="mp")
    assert upload["ServerSideEncryption"] == "AES256"
    s3e.abort_multipart_upload(Bucket=bkt, Key="mp", UploadId=upload["UploadId"])
    # Headers win over the default.
    kms = s3e.put_object(Bucket=bkt, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="k1")
    assert kms["ServerSideEncryption"] == "aws:kms"

    kms_config = {
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "k2"}}]
    }
    s3e.put_bucket_encryption(Bucket=bkt, ServerSideEncryptionConfiguration=kms_config)
    put = s3e.put_object(Bucket=bkt, Key="k2", Body=b"kms default")
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", "k2")
    bad = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": "k2"}}]}
    with pytest.raises(ClientError) as e:
        s3e.put_bucket_encryption(Bucket=bkt, ServerSideEncryptionConfiguration=bad)
    assert error_of(e)[1] == 400

    s3e.delete_bucket_encryption(Bucket=bkt)
    with pytest.raises(ClientError) as e:
        s3e.get_bucket_encryption(Bucket=bkt)
    assert error_of(e) == ("ServerSideEncryptionConfigurationNotFoundError", 404)
    assert "ServerSideEncryption" not in s3e.put_object(Bucket=bkt, Key="p", Body=b"plain")


def files_containing(root: Path, needle: bytes) -> list[Path]:
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            try:
                if needle in path.read_bytes():
                    found.append(path)
            except OSError:
                pass
    return found


def test_no_plaintext_reaches_the_disks(s3e, sse_server, bkt):
    s3e.put_object(Bucket=bkt, Key="s3", Body=pattern(b"SSE-S3-SECRET-", MIB), ServerSideEncryption="AES256")
    s3e.put_object(Bucket=bkt, Key="c", Body=pattern(b"SSE-C-SECRET-", MIB), **customer())
    s3e.put_object(Bucket=bkt, Key="kms", Body=pattern(b"SSE-KMS-SECRET-", MIB), ServerSideEncryption="aws:kms")
    s3e.put_object(Bucket=bkt, Key="small", Body=pattern(b"SSE-INLINE-SECRET-", 5000), ServerSideEncryption="AES256")
    s3e.put_object(Bucket=bkt, Key="plain", Body=pattern(b"PLAIN-CONTROL-", MIB))
    data = sse_server.data
    # The control proves the search sees shard bytes: the code is systematic, so plain data is on disk as is.
    assert files_containing(data, b"PLAIN-CONTROL-"), "the unencrypted control object should be found on disk"
    for marker in [b"SSE-S3-SECRET-", b"SSE-C-SECRET-", b"SSE-KMS-SECRET-", b"SSE-INLINE-SECRET-"]:
        assert files_containing(data, marker) == [], marker
    assert files_containing(data, CUSTOMER_KEY) == [], "the SSE-C key is never stored"
    assert files_containing(data, base64.b64encode(CUSTOMER_KEY)) == []


def test_master_key_rotation(workdir):
    srv = start_server(workdir, "sse-rotation", f"A:{KEY_A}\n")
    try:
        s3 = make_client(srv.endpoint)
        bucket = unique_bucket("rot")
        s3.create_bucket(Bucket=bucket)
        old = pattern(b"under-A-", 300_000)
        s3.put_object(Bucket=bucket, Key="old", Body=old, ServerSideEncryption="AES256")
        srv.stop_cleanly()
        # B is added as the newest key: it encrypts from now on, A still decrypts.
        (srv.workdir / "master.keys").write_text(f"A:{KEY_A}\nB:{KEY_B}\n")
        srv.start()
        s3 = make_client(srv.endpoint)
        assert s3.get_object(Bucket=bucket, Key="old")["Body"].read() == old
        new = pattern(b"under-B-", 100_000)
        s3.put_object(Bucket=bucket, Key="new", Body=new, ServerSideEncryption="AES256")
        srv.stop_cleanly()
        # Without A, the old object can no longer be read; B's still can.
        (srv.workdir / "master.keys").write_text(f"B:{KEY_B}\n")
        srv.start()
        s3 = make_client(srv.endpoint)
        assert s3.get_object(Bucket=bucket, Key="new")["Body"].read() == new
        with pytest.raises(Exception):
            s3.get_object(Bucket=bucket, Key="old")["Body"].read()
    finally:
        srv.kill()


def admin_call(endpoint: str, method: str, path: str, body=None):
    """A SigV4-signed call of the admin API as the root user: (status, JSON answer)."""
    import json
    import urllib.error
    import urllib.request

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from conftest import ACCESS_KEY, REGION, SECRET_KEY

    data = json.dumps(body).encode() if body is not None else b""
    request = AWSRequest(method=method, url=f"{endpoint}/coffer/admin/v1/{path}", data=data,
                         headers={"content-type": "application/json"})
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    prepared = urllib.request.Request(request.url, data=data or None, method=method, headers=dict(request.headers))
    try:
        with urllib.request.urlopen(prepared, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def stored_bytes(data: Path) -> int:
    """Bytes of records in the blobnode chunk files: their non-zero 4 KiB blocks (a chunk file's size also covers
    zeros written ahead of the write position, and punched holes read as zeros)."""
    zero = bytes(4096)
    total = 0
    for path in data.glob("disk*/chunks/*.chunk"):
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                view = memoryview(chunk)
                total += sum(len(view[i:i + 4096]) for i in range(0, len(view), 4096)
                             if view[i:i + 4096] != zero[:len(view[i:i + 4096])])
    return total


def text(size: int, seed: str) -> bytes:
    return b"".join(f"{seed} line {i}: the quick brown fox jumps over the lazy dog\n".encode()
                    for i in range(size // 40 + 1))[:size]


def test_transparent_compression(s3e, sse_server, bkt):
    endpoint = sse_server.endpoint
    status, config = admin_call(endpoint, "GET", f"buckets/{bkt}/compression")
    assert (status, config["enabled"]) == (200, False)
    status, _ = admin_call(endpoint, "PUT", f"buckets/{bkt}/compression", {"enabled": True})
    assert status == 200
    status, _ = admin_call(endpoint, "PUT", f"buckets/{bkt}/compression", {"enabled": True, "content_types": ["x"]})
    assert status == 400
    assert admin_call(endpoint, "GET", f"buckets/{bkt}/compression")[1]["enabled"] is True

    body = text(4 * MIB + 321, "plain")
    before = stored_bytes(sse_server.data)
    put = s3e.put_object(Bucket=bkt, Key="t.txt", Body=body, ContentType="text/plain")
    grown = stored_bytes(sse_server.data) - before
    assert grown < MIB, f"4 MiB of text took {grown} bytes on disk: not compressed"
    assert put["ETag"] == f'"{md5_hex(body)}"'
    got = s3e.get_object(Bucket=bkt, Key="t.txt")
    assert got["ContentLength"] == len(body)
    assert got["Body"].read() == body
    assert s3e.head_object(Bucket=bkt, Key="t.txt")["ContentLength"] == len(body)
    check_ranges(s3e, bkt, "t.txt", body)
    assert s3e.list_objects_v2(Bucket=bkt, Prefix="t.txt")["Contents"][0]["Size"] == len(body)

    # Compression then encryption.
    enc = text(3 * MIB, "secret")
    s3e.put_object(Bucket=bkt, Key="e.json", Body=enc, ContentType="application/json", ServerSideEncryption="AES256")
    assert s3e.get_object(Bucket=bkt, Key="e.json")["Body"].read() == enc
    check_ranges(s3e, bkt, "e.json", enc)
    s3e.put_object(Bucket=bkt, Key="c.txt", Body=enc, ContentType="text/plain", **customer())
    check_ranges(s3e, bkt, "c.txt", enc, **customer())

    # Not a compressible type: stored as is.
    binary = pattern(b"bin-", 2 * MIB)
    before = stored_bytes(sse_server.data)
    s3e.put_object(Bucket=bkt, Key="b.bin", Body=binary, ContentType="application/octet-stream")
    assert stored_bytes(sse_server.data) - before >= 2 * MIB
    assert s3e.get_object(Bucket=bkt, Key="b.bin")["Body"].read() == binary

    # Multipart parts are compressed on their own; ranges cross them.
    upload = s3e.create_multipart_upload(Bucket=bkt, Key="mp.txt", ContentType="text/plain")
    parts = [text(5 * MIB, "p1"), text(MIB + 1, "p2")]
    done = []
    for n, data in enumerate(parts, 1):
        r = s3e.upload_part(Bucket=bkt, Key="mp.txt", UploadId=upload["UploadId"], PartNumber=n, Body=data)
        assert r["ETag"] == f'"{md5_hex(data)}"'
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    s3e.complete_multipart_upload(Bucket=bkt, Key="mp.txt", UploadId=upload["UploadId"],
                                  MultipartUpload={"Parts": done})
    whole = b"".join(parts)
    assert s3e.get_object(Bucket=bkt, Key="mp.txt")["Body"].read() == whole
    got = s3e.get_object(Bucket=bkt, Key="mp.txt", Range=f"bytes={5 * MIB - 100}-{5 * MIB + 100}")
    assert got["Body"].read() == whole[5 * MIB - 100 : 5 * MIB + 101]
    # Copies decompress and recompress; UploadPartCopy too.
    s3e.copy_object(Bucket=bkt, Key="copy.txt", CopySource={"Bucket": bkt, "Key": "t.txt"})
    assert s3e.get_object(Bucket=bkt, Key="copy.txt")["Body"].read() == body

    # Turned off: new objects are stored plain, old ones still read.
    assert admin_call(endpoint, "DELETE", f"buckets/{bkt}/compression")[0] == 200
    before = stored_bytes(sse_server.data)
    s3e.put_object(Bucket=bkt, Key="after.txt", Body=body, ContentType="text/plain")
    assert stored_bytes(sse_server.data) - before >= len(body)
    assert s3e.get_object(Bucket=bkt, Key="t.txt")["Body"].read() == body


def test_part_copy_from_encrypted_source_keeps_the_upload_checksum(s3e, bkt):
    body = pattern(b"ck-", 300_000)
    s3e.put_object(Bucket=bkt, Key="enc", Body=body, ServerSideEncryption="AES256")
    upload = s3e.create_multipart_upload(Bucket=bkt, Key="mp", ChecksumAlgorithm="SHA256",
                                         ServerSideEncryption="AES256")
    part = s3e.upload_part_copy(Bucket=bkt, Key="mp", UploadId=upload["UploadId"], PartNumber=1,
                                CopySource={"Bucket": bkt, "Key": "enc"})["CopyPartResult"]
    assert part["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    s3e.complete_multipart_upload(
        Bucket=bkt, Key="mp", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumSHA256": part["ChecksumSHA256"]}]},
    )
    assert s3e.get_object(Bucket=bkt, Key="mp")["Body"].read() == body
