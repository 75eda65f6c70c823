"""boto3's managed transfers (upload_file/download_file): multipart uploads and parallel ranged downloads."""

from __future__ import annotations

import hashlib
import os

import pytest
from boto3.s3.transfer import TransferConfig

MiB = 1024 * 1024
PART = 5 * MiB
CONFIG = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4)


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_random(path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n


@pytest.mark.parametrize("size", [0, 1024, 23 * MiB], ids=["0B", "1KiB", "23MiB"])
def test_upload_download_file(s3, bucket, tmp_path, size):
    src = tmp_path / "src.bin"
    dst = tmp_path / "dst.bin"
    write_random(src, size)
    key = f"transfer/{size}.bin"

    s3.upload_file(str(src), bucket, key, Config=CONFIG)

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == size
    etag = head["ETag"].strip('"')
    if size >= PART:
        # A multipart upload: ETag is md5-of-part-md5s followed by "-<number of parts>".
        assert etag.endswith(f"-{-(-size // PART)}"), etag
    else:
        assert etag == hashlib.md5(src.read_bytes()).hexdigest()

    s3.download_file(bucket, key, str(dst), Config=CONFIG)
    assert dst.stat().st_size == size
    assert sha256_file(dst) == sha256_file(src)


def test_multipart_upload_low_level(s3, bucket):
    """create/upload_part/list_parts/complete by hand, parts of different sizes, then a ranged read across parts."""
    key = "mpu/manual.bin"
    parts_data = [os.urandom(PART), os.urandom(PART + 12345), os.urandom(777)]
    mpu = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-test")
    upload_id = mpu["UploadId"]
    etags = []
    for i, data in enumerate(parts_data, start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=i, Body=data)
        assert r["ETag"].strip('"') == hashlib.md5(data).hexdigest()
        etags.append(r["ETag"])
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in listed["Parts"]] == [len(d) for d in parts_data]

    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": i, "ETag": e} for i, e in enumerate(etags, start=1)]},
    )
    whole = b"".join(parts_data)
    expected_etag = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest() + "-3"
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ETag"].strip('"') == expected_etag
    assert got["ContentType"] == "application/x-test"
    assert got["Body"].read() == whole

    start, end = PART - 100, 2 * PART + 100  # spans parts 1, 2
    r = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["Body"].read() == whole[start : end + 1]


def test_abort_multipart_upload(s3, bucket):
    key = "mpu/aborted.bin"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1000)
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert any(u["UploadId"] == upload_id for u in uploads)
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert not any(u["UploadId"] == upload_id for u in uploads)
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
