"""S3 conformance details found by Swift's s3api suite, checked with real clients: conditional writes, the SigV2
clock check, error messages, lenient date headers, DeleteObjects' Content-MD5, CopyObject arguments,
GetBucketVersioning, timestamps and ListMultipartUploads markers.

Requests whose exact headers matter (SigV2, raw Content-MD5, RFC 2822 dates) are signed here with SigV2, which
signs only Content-MD5, Content-Type, Date and x-amz-* headers, so the others reach the server as written."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import http.client
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError
from conftest import ACCESS_KEY, SECRET_KEY

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
SUBRESOURCES = {"delete", "partNumber", "uploadId", "uploads", "versionId", "versioning", "tagging"}


def error_of(excinfo) -> tuple[str, int]:
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def sigv2(
    endpoint: str,
    method: str,
    path: str,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    secret: str = SECRET_KEY,
    date: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One SigV2-signed request (path style); `date` overrides the Date header ("" sends it empty)."""
    headers = dict(headers or {})
    headers["Date"] = email.utils.formatdate(usegmt=True) if date is None else date
    lower = {k.lower(): v for k, v in headers.items()}
    amz = "".join(f"{k}:{v.strip()}\n" for k, v in sorted(lower.items()) if k.startswith("x-amz-"))
    date_line = "" if "x-amz-date" in lower else lower["date"]
    resource = path
    signed_query = []
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        if name in SUBRESOURCES:
            signed_query.append(f"{name}={urllib.parse.unquote(value)}" if value else name)
    if signed_query:
        resource += "?" + "&".join(sorted(signed_query))
    to_sign = f"{method}\n{lower.get('content-md5', '')}\n{lower.get('content-type', '')}\n{date_line}\n{amz}{resource}"
    signature = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    headers["Authorization"] = f"AWS {ACCESS_KEY}:{signature}"
    host = urllib.parse.urlparse(endpoint).netloc
    conn = http.client.HTTPConnection(host, timeout=30)
    try:
        conn.request(method, path + (f"?{query}" if query else ""), body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def code_and_message(body: bytes) -> tuple[str | None, str | None]:
    root = ET.fromstring(body)
    return root.findtext("Code"), root.findtext("Message")


# --- conditional writes -------------------------------------------------------------------------------------------


def test_put_if_none_match_creates_once(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert error_of(e) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


def test_put_if_match_compares_the_current_etag(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfMatch='"d41d8cd98f00b204e9800998ecf8427e"')
    assert error_of(e) == ("NoSuchKey", 404), "If-Match on a missing key: AWS answers 404"
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert error_of(e) == ("PreconditionFailed", 412)
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=first)["ETag"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=first)
    assert error_of(e) == ("PreconditionFailed", 412), "the old ETag no longer matches"
    assert s3.head_object(Bucket=bucket, Key="k")["ETag"] == second


def test_put_if_none_match_with_an_etag_is_not_implemented(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfNoneMatch='"0123456789abcdef0123456789abcdef"')
    assert error_of(e) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k")
    assert error_of(e)[1] == 404


def test_large_conditional_put_is_refused_before_its_body_is_stored(s3, bucket):
    """A striped (non-inline) body whose condition fails: refused, and the object is unchanged."""
    s3.put_object(Bucket=bucket, Key="big", Body=b"a" * 10)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="big", Body=b"b" * (1 << 20), IfNoneMatch="*")
    assert error_of(e) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"a" * 10


def test_concurrent_create_only_puts_have_one_winner(s3, bucket):
    """Striped bodies all pass the early check (the key is free when they start); the commit decides, atomically."""
    from concurrent.futures import ThreadPoolExecutor

    def put(i: int) -> str:
        try:
            s3.put_object(Bucket=bucket, Key="race", Body=bytes([i]) * (1 << 20), IfNoneMatch="*")
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(put, range(8)))
    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) == {"ok", "PreconditionFailed"}, outcomes
    winner = outcomes.index("ok")
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == bytes([winner]) * (1 << 20)


def test_complete_multipart_upload_conditions(s3, bucket):
    def start(body: bytes):
        upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
        etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=body)["ETag"]
        return upload, {"Parts": [{"PartNumber": 1, "ETag": etag}]}

    upload, parts = start(b"one")
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts, IfNoneMatch="*")
    current = s3.head_object(Bucket=bucket, Key="mp")["ETag"]

    upload, parts = start(b"two")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts, IfNoneMatch="*")
    assert error_of(e) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts, IfMatch='"0123456789abcdef0123456789abcdef"'
        )
    assert error_of(e) == ("PreconditionFailed", 412)
    # The refused completions left the upload intact: it can still be completed.
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]] == [1]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts, IfMatch=current)
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"two"


# --- SigV2 clock check --------------------------------------------------------------------------------------------


def test_sigv2_requests_need_a_current_date(endpoint):
    assert sigv2(endpoint, "GET", "/")[0] == 200
    stale = email.utils.formatdate(time.time() - 3600, usegmt=True)
    status, _, body = sigv2(endpoint, "GET", "/", date=stale)
    assert (status, code_and_message(body)[0]) == (403, "RequestTimeTooSkewed")
    future = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert sigv2(endpoint, "GET", "/", date=future)[0] == 403
    # x-amz-date wins over Date, and may be as stale.
    status, _, body = sigv2(endpoint, "GET", "/", headers={"x-amz-date": stale})
    assert (status, code_and_message(body)[0]) == (403, "RequestTimeTooSkewed")
    for date in ["", "garbage"]:
        status, _, body = sigv2(endpoint, "GET", "/", date=date)
        code, message = code_and_message(body)
        assert (status, code) == (403, "AccessDenied"), date
        assert message == "AWS authentication requires a valid Date or x-amz-date header"
    # RFC 2822's -0000 zone is a valid date.
    assert sigv2(endpoint, "GET", "/", date=email.utils.formatdate())[0] == 200


# --- error messages -----------------------------------------------------------------------------------------------


def test_every_error_document_has_a_message(endpoint, bucket):
    cases = [
        sigv2(endpoint, "GET", f"/{bucket}/k", secret="wrong"),  # SignatureDoesNotMatch
        sigv2(endpoint, "PUT", f"/{bucket}/" + "k" * 1025, body=b"x"),  # KeyTooLongError
        sigv2(endpoint, "PUT", "/Invalid_Bucket"),  # InvalidBucketName
        sigv2(endpoint, "POST", f"/{bucket}", query="delete", body=b"not xml"),  # MalformedXML
    ]
    sigv2(endpoint, "PUT", f"/{bucket}/small", body=b"abc")
    cases.append(sigv2(endpoint, "GET", f"/{bucket}/small", headers={"Range": "bytes=10-20"}))  # InvalidRange
    codes = []
    for status, _, body in cases:
        assert status >= 400
        code, message = code_and_message(body)
        codes.append(code)
        assert message, f"{code} without a Message: {body!r}"
        assert ET.fromstring(body).findtext("RequestId")
    assert codes == ["SignatureDoesNotMatch", "KeyTooLongError", "InvalidBucketName", "MalformedXML", "InvalidRange"]


# --- date headers -------------------------------------------------------------------------------------------------


def test_conditional_get_dates_in_any_http_date_form_and_garbage_ignored(endpoint, bucket):
    assert sigv2(endpoint, "PUT", f"/{bucket}/o", body=b"abc")[0] == 200
    day_ago = time.time() - 86400
    # RFC 2822 form with -0000, as Python's formatdate() writes it.
    status, _, _ = sigv2(endpoint, "GET", f"/{bucket}/o", headers={"If-Modified-Since": email.utils.formatdate(day_ago)})
    assert status == 200
    status, _, _ = sigv2(
        endpoint, "GET", f"/{bucket}/o", headers={"If-Unmodified-Since": email.utils.formatdate(day_ago)}
    )
    assert status == 412
    tomorrow = email.utils.formatdate(time.time() + 86400)
    assert sigv2(endpoint, "GET", f"/{bucket}/o", headers={"If-Modified-Since": tomorrow})[0] == 304
    # RFC 850 form.
    rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(day_ago))
    assert sigv2(endpoint, "HEAD", f"/{bucket}/o", headers={"If-Unmodified-Since": rfc850})[0] == 412
    # Not a date at all: ignored (RFC 9110), not 400.
    for name in ["If-Modified-Since", "If-Unmodified-Since"]:
        assert sigv2(endpoint, "GET", f"/{bucket}/o", headers={name: "garbage"})[0] == 200


def test_expires_that_is_not_a_date_is_stored_as_given(endpoint, bucket):
    status, _, _ = sigv2(endpoint, "PUT", f"/{bucket}/e", headers={"Expires": "a valid HTTP-date timestamp"}, body=b"x")
    assert status == 200
    for method in ["GET", "HEAD"]:
        status, headers, _ = sigv2(endpoint, method, f"/{bucket}/e")
        assert (status, headers.get("expires")) == (200, "a valid HTTP-date timestamp")
    good = "Thu, 01 Dec 2044 16:00:00 GMT"
    assert sigv2(endpoint, "PUT", f"/{bucket}/e2", headers={"Expires": good}, body=b"x")[0] == 200
    assert sigv2(endpoint, "HEAD", f"/{bucket}/e2")[1].get("expires") == good


# --- DeleteObjects ------------------------------------------------------------------------------------------------


def delete_xml(*keys: str) -> bytes:
    objects = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return f"<Delete>{objects}</Delete>".encode()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def test_delete_objects_checks_content_md5(endpoint, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    body = delete_xml("a")
    status, _, resp = sigv2(endpoint, "POST", f"/{bucket}", "delete", {"Content-MD5": "x"}, body)
    assert (status, code_and_message(resp)[0]) == (400, "InvalidDigest")
    status, _, resp = sigv2(endpoint, "POST", f"/{bucket}", "delete", {"Content-MD5": md5_b64(b"")}, body)
    assert (status, code_and_message(resp)[0]) == (400, "BadDigest")
    s3.head_object(Bucket=bucket, Key="a")  # still there
    status, _, resp = sigv2(endpoint, "POST", f"/{bucket}", "delete", {"Content-MD5": md5_b64(body)}, body)
    assert status == 200, resp
    assert [e.findtext(f"{NS}Key") for e in ET.fromstring(resp).iter(f"{NS}Deleted")] == ["a"]
    # boto3's own DeleteObjects (with its checksum header) works too.
    s3.put_object(Bucket=bucket, Key="b", Body=b"x")
    assert [d["Key"] for d in s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b"}]})["Deleted"]] == ["b"]


def test_delete_objects_on_a_missing_bucket_and_bad_lists(endpoint, s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket="no-such-bucket-for-delete", Delete={"Objects": [{"Key": "a"}]})
    assert error_of(e) == ("NoSuchBucket", 404)
    for body, code in [(b"<Delete></Delete>", "MalformedXML"), (delete_xml(""), "UserKeyMustBeSpecified")]:
        status, _, resp = sigv2(endpoint, "POST", f"/{bucket}", "delete", {"Content-MD5": md5_b64(body)}, body)
        assert (status, code_and_message(resp)[0]) == (400, code)


# --- CopyObject arguments, versioning, timestamps, ListMultipartUploads -------------------------------------------


def test_copy_object_argument_checks(endpoint, s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/src", MetadataDirective="BAD")
    assert error_of(e) == ("InvalidArgument", 400)
    status, _, body = sigv2(endpoint, "PUT", f"/{bucket}/dst", headers={"x-amz-copy-source": f"/{bucket}/src?nonsense"})
    assert (status, code_and_message(body)[0]) == (400, "InvalidArgument")
    # A literal (encoded) question mark is part of the key, and versionId=null is the only version there is.
    s3.put_object(Bucket=bucket, Key="q?x", Body=b"y")
    status, _, body = sigv2(endpoint, "PUT", f"/{bucket}/dst", headers={"x-amz-copy-source": f"/{bucket}/q%3Fx"})
    assert status == 200, body
    status, _, body = sigv2(
        endpoint, "PUT", f"/{bucket}/dst2", headers={"x-amz-copy-source": f"/{bucket}/src?versionId=null"}
    )
    assert status == 200, body


def test_get_bucket_versioning_reports_never_versioned(s3, bucket):
    resp = s3.get_bucket_versioning(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Status" not in resp and "MFADelete" not in resp
    with pytest.raises(ClientError) as e:
        s3.get_bucket_versioning(Bucket="no-such-bucket-for-versioning")
    assert error_of(e) == ("NoSuchBucket", 404)


def test_timestamps_are_whole_seconds_and_consistent(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"][0]["LastModified"]
    assert listed.microsecond == 0
    assert s3.head_object(Bucket=bucket, Key="src")["LastModified"] == listed
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    copied = s3.upload_part_copy(
        Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, CopySource=f"{bucket}/src", CopySourceRange="bytes=0-4"
    )["CopyPartResult"]
    part = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"][0]
    assert copied["LastModified"] == part["LastModified"]
    assert part["LastModified"].microsecond == 0
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload)


def test_list_multipart_uploads_sends_empty_markers(endpoint, bucket):
    status, _, body = sigv2(endpoint, "GET", f"/{bucket}", "uploads")
    assert status == 200
    root = ET.fromstring(body)
    for name in ["KeyMarker", "UploadIdMarker", "NextKeyMarker", "NextUploadIdMarker"]:
        element = root.find(f"{NS}{name}")
        assert element is not None, f"no <{name}> in {body!r}"
        assert not element.text
