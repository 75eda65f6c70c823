"""Swift's bulk upload (`?extract-archive=tar|tar.gz|tar.bz2`) and FormPost (browser form uploads
signed with TempURL keys), with `requests` and python-swiftclient against a real `coffer server`
with tempauth; the objects they write are read back through Swift and through S3 (boto3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import tarfile
import time
import uuid
import xml.dom.minidom

import pytest
import requests
from swiftclient.exceptions import ClientException

from test_swift import ADMIN, READER, connect, s3_as, swift_server_in


@pytest.fixture(scope="module")
def swift_server(workdir):
    yield from swift_server_in(workdir / "swift-bulk-formpost-server")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_tar(members: dict[str, bytes], mode: str = "w", extra=None) -> bytes:
    """A tar archive (`mode` w, w:gz or w:bz2) of regular files, plus `extra(tar)` entries."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode, format=tarfile.PAX_FORMAT) as tar:
        if extra:
            extra(tar)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def extract(server, path: str, archive: bytes, kind: str = "tar", who=ADMIN, accept="application/json",
            headers=None) -> requests.Response:
    url, token = connect(server, who).get_auth()
    all_headers = {"X-Auth-Token": token, **(headers or {})}
    if accept:
        all_headers["Accept"] = accept
    return requests.put(f"{url}{path}?extract-archive={kind}", data=archive, headers=all_headers, timeout=60)


@pytest.mark.parametrize("kind,mode", [("tar", "w"), ("tar.gz", "w:gz"), ("tar.bz2", "w:bz2")])
def test_bulk_upload_at_the_account_creates_containers_and_objects(swift_server, kind, mode):
    first, second = unique("bulk-a"), unique("bulk-b")
    big = os.urandom(3 * 1024 * 1024 + 17)

    def extra(tar):
        # A directory, a symlink and a file at the account's top level: all skipped, as in Swift.
        directory = tarfile.TarInfo(f"{first}/empty-dir")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        link = tarfile.TarInfo(f"{first}/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "a.txt"
        tar.addfile(link)
        top = tarfile.TarInfo("top-level.txt")
        top.size = 3
        tar.addfile(top, io.BytesIO(b"top"))
        # Extended attributes (pax) become the content type and object metadata.
        tagged = tarfile.TarInfo(f"./{second}/tagged.dat")
        tagged.size = 6
        tagged.pax_headers = {"SCHILY.xattr.user.mime_type": "application/x-tagged",
                              "SCHILY.xattr.user.meta.color": "blue"}
        tar.addfile(tagged, io.BytesIO(b"tagged"))

    archive = make_tar({f"{first}/a.txt": b"hello", f"{first}/dir/big.bin": big, f"{second}/x.json": b"{}"},
                       mode, extra)
    r = extract(swift_server, "", archive, kind, headers={"X-Object-Meta-Batch": "7"})
    assert r.status_code == 200, r.text
    summary = json.loads(r.text)
    assert summary == {"Number Files Created": 4, "Response Status": "201 Created", "Response Body": "",
                       "Errors": []}, summary

    conn = connect(swift_server)
    headers, listing = conn.get_container(first)
    assert [o["name"] for o in listing] == ["a.txt", "dir/big.bin"]
    headers, body = conn.get_object(first, "a.txt")
    assert body == b"hello" and headers["content-type"] == "text/plain"
    assert headers["x-object-meta-batch"] == "7"
    assert conn.get_object(first, "dir/big.bin")[1] == big
    headers, body = conn.get_object(second, "tagged.dat")
    assert body == b"tagged" and headers["content-type"] == "application/x-tagged"
    assert headers["x-object-meta-color"] == "blue"
    s3 = s3_as(swift_server)
    got = s3.get_object(Bucket=first, Key="dir/big.bin")["Body"].read()
    assert hashlib.md5(got).hexdigest() == hashlib.md5(big).hexdigest()
    assert s3.get_object(Bucket=second, Key="x.json")["Body"].read() == b"{}"
    with pytest.raises(ClientException):
        conn.head_object(first, "link")


def test_bulk_upload_into_a_container_under_a_prefix_in_plain_text(swift_server):
    name = unique("bulk-prefix")
    archive = make_tar({"./a.txt": b"A", "sub/b.txt": b"B"})
    # The container need not exist: Swift creates it.
    r = extract(swift_server, f"/{name}/photos/", archive, accept=None)
    assert r.status_code == 200
    lines = r.text.strip().splitlines()
    assert lines == ["Number Files Created: 2", "Response Body: ", "Response Status: 201 Created", "Errors:"], r.text
    conn = connect(swift_server)
    assert [o["name"] for o in conn.get_container(name)[1]] == ["photos/a.txt", "photos/sub/b.txt"]
    assert s3_as(swift_server).get_object(Bucket=name, Key="photos/sub/b.txt")["Body"].read() == b"B"
    # Chunked, without a length.
    chunks = iter([archive[:700], archive[700:]])
    url, token = conn.get_auth()
    r = requests.put(f"{url}/{name}?extract-archive=tar", data=chunks, timeout=60,
                     headers={"X-Auth-Token": token, "Accept": "application/json"})
    assert json.loads(r.text)["Number Files Created"] == 2
    assert conn.get_object(name, "sub/b.txt")[1] == b"B"


def test_bulk_upload_writes_only_what_the_caller_may_write(swift_server):
    owner = connect(swift_server)
    name = unique("bulk-acl")
    owner.put_container(name)
    archive = make_tar({"a.txt": b"a", "b.txt": b"b"})
    r = extract(swift_server, f"/{name}", archive, who=READER)
    summary = json.loads(r.text)
    assert summary["Number Files Created"] == 0
    assert summary["Response Status"] == "400 Bad Request"
    assert summary["Errors"] == [[f"{name}/a.txt", "403 Forbidden"], [f"{name}/b.txt", "403 Forbidden"]]
    assert owner.get_container(name)[1] == []
    # At the account, a user who may not create containers is refused the container and its objects.
    new = unique("bulk-new")
    r = extract(swift_server, "", make_tar({f"{new}/a.txt": b"a"}), who=READER)
    summary = json.loads(r.text)
    assert summary["Errors"] == [[f"/v1/AUTH_test/{new}", "403 Forbidden"], [f"{new}/a.txt", "403 Forbidden"]]
    with pytest.raises(ClientException):
        owner.head_container(new)
    # A write ACL lets the same user extract into the container.
    owner.post_container(name, headers={"X-Container-Write": "test:tester3"})
    r = extract(swift_server, f"/{name}", archive, who=READER)
    assert json.loads(r.text)["Number Files Created"] == 2
    assert owner.get_object(name, "b.txt")[1] == b"b"
    # Without a token, nothing is written and the answer says 401.
    r = requests.put(f"{swift_server.swift_base}/v1/AUTH_test/{name}?extract-archive=tar",
                     data=make_tar({"anon.txt": b"x"}), headers={"Accept": "application/json"}, timeout=60)
    assert json.loads(r.text)["Response Status"] == "401 Unauthorized"
    with pytest.raises(ClientException):
        owner.head_object(name, "anon.txt")


def test_bulk_upload_reports_malformed_archives_as_swift_does(swift_server):
    name = unique("bulk-bad")
    connect(swift_server).put_container(name)
    for archive, kind in [(os.urandom(4096), "tar"), (make_tar({"a": b"a"}), "tar.gz"), (b"", "tar"),
                          (make_tar({}), "tar"), (make_tar({"a": b"x"})[:700], "tar")]:
        r = extract(swift_server, f"/{name}", archive, kind)
        assert r.status_code == 200
        summary = json.loads(r.text)
        assert summary["Response Status"] == "400 Bad Request", (kind, summary)
        assert summary["Response Body"].startswith("Invalid Tar File"), summary
    # A tar of directories only has no valid files.
    r = extract(swift_server, f"/{name}", make_tar({}, extra=lambda t: t.addfile(_directory("d"))))
    assert json.loads(r.text)["Response Body"] == "Invalid Tar File: No Valid Files"
    r = extract(swift_server, f"/{name}", make_tar({"a": b"a"}), "zip")
    assert r.status_code == 400 and r.text == "Unsupported archive format"
    # XML, as Swift writes it.
    r = extract(swift_server, f"/{name}", os.urandom(2048), accept="application/xml")
    tree = xml.dom.minidom.parseString(r.text.strip())
    assert tree.documentElement.tagName == "extract"
    assert tree.getElementsByTagName("response_status")[0].firstChild.data == "400 Bad Request"


def _directory(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def test_bulk_delete_works_at_an_object_path_in_xml(swift_server):
    """Swift's functional test_bulk_delete: `DELETE /v1/AUTH_test/c/o?bulk-delete` with a body."""
    conn = connect(swift_server)
    name = unique("bulk-xml")
    conn.put_container(name)
    conn.put_object(name, "o", b"x")
    url, token = conn.get_auth()
    r = requests.delete(f"{url}/{name}/o?bulk-delete", data=f"{name}/o", timeout=30,
                        headers={"X-Auth-Token": token, "Accept": "application/xml", "Content-Type": "text/plain"})
    tree = xml.dom.minidom.parseString(r.text.strip())
    assert tree.documentElement.tagName == "delete"
    assert tree.getElementsByTagName("response_status")[0].firstChild.data == "200 OK"
    assert tree.getElementsByTagName("number_deleted")[0].firstChild.data == "1"


# --- FormPost ---------------------------------------------------------------------------------------------------

def form_signature(path: str, redirect: str, max_size: int, max_count: int, expires: int, key: str,
                   digest=hashlib.sha1, prefixed: bool = False) -> str:
    body = f"{path}\n{redirect}\n{max_size}\n{max_count}\n{expires}".encode()
    mac = hmac.new(key.encode(), body, digest)
    if prefixed:
        return f"{mac.name.split('-')[-1]}:" + base64.b64encode(mac.digest()).decode()
    return mac.hexdigest()


def post_form(server, path: str, files: list[tuple[str, bytes]], key: str, redirect: str = "",
              max_size: int = 1 << 20, max_count: int = 10, expires: int | None = None, signature=None,
              extra: dict | None = None, digest=hashlib.sha1, prefixed=False) -> requests.Response:
    expires = int(time.time()) + 300 if expires is None else expires
    fields = {"max_file_size": str(max_size), "max_file_count": str(max_count), "expires": str(expires),
              "signature": signature or form_signature(path, redirect, max_size, max_count, expires, key, digest,
                                                       prefixed)}
    if redirect:
        fields["redirect"] = redirect
    fields.update(extra or {})
    parts = [(name, (None, value)) for name, value in fields.items()]
    parts += [(f"file{i}", (filename, data)) for i, (filename, data) in enumerate(files)]
    return requests.post(server.swift_base + path, files=parts, allow_redirects=False, timeout=60)


@pytest.fixture(scope="module")
def form_container(swift_server):
    conn = connect(swift_server)
    name = unique("form")
    conn.put_container(name, headers={"X-Container-Meta-Temp-URL-Key": "container-secret"})
    conn.post_account(headers={"X-Account-Meta-Temp-URL-Key-2": "account-secret"})
    return name


def test_formpost_uploads_files_with_a_redirect_or_a_status(swift_server, form_container):
    path = f"/v1/AUTH_test/{form_container}/uploads/"
    big = os.urandom((1 << 20) + 12345)  # held in a temporary file before its write
    r = post_form(swift_server, path, [("one.txt", b"first"), ("two.bin", big)], "container-secret",
                  redirect="https://example.com/done", max_size=2 << 20)
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == "https://example.com/done?status=201&message="
    assert "Click to continue..." in r.text
    conn = connect(swift_server)
    headers, body = conn.get_object(form_container, "uploads/one.txt")
    assert body == b"first" and headers["content-type"] == "text/plain"
    assert conn.get_object(form_container, "uploads/two.bin")[1] == big
    got = s3_as(swift_server).get_object(Bucket=form_container, Key="uploads/two.bin")["Body"].read()
    assert hashlib.md5(got).hexdigest() == hashlib.md5(big).hexdigest()

    # No redirect: the status as text. A prefix without a slash is the start of every name.
    path = f"/v1/AUTH_test/{form_container}/pre-"
    r = post_form(swift_server, path, [("x.txt", b"x")], "container-secret",
                  extra={"x_delete_after": "3600", "content-type": "application/x-form"})
    assert (r.status_code, r.text) == (201, "201 Created")
    headers = conn.head_object(form_container, "pre-x.txt")
    assert headers["content-type"] == "application/x-form" and int(headers["x-delete-at"]) > time.time()


def test_formpost_signatures_use_container_or_account_keys(swift_server, form_container):
    path = f"/v1/AUTH_test/{form_container}"
    for key, digest, prefixed in [("container-secret", hashlib.sha256, False),
                                  ("account-secret", hashlib.sha512, True),
                                  ("account-secret", hashlib.sha1, False)]:
        r = post_form(swift_server, path, [(f"by-{key}-{digest().name}", b"k")], key, digest=digest,
                      prefixed=prefixed)
        assert (r.status_code, r.text) == (201, "201 Created"), (key, digest, r.text)
    assert connect(swift_server).get_object(form_container, "by-account-secret-sha512")[1] == b"k"
    # Another container's key signs nothing here; the account's key signs for no other account.
    other = unique("form-other")
    connect(swift_server).put_container(other, headers={"X-Container-Meta-Temp-URL-Key": "other-secret"})
    r = post_form(swift_server, path, [("nope", b"n")], "other-secret")
    assert (r.status_code, r.text) == (401, "FormPost: Invalid Signature")
    r = post_form(swift_server, "/v1/AUTH_test2/whatever", [("nope", b"n")], "account-secret")
    assert (r.status_code, r.text) == (401, "FormPost: Invalid Signature")


def test_formpost_refusals_are_swifts(swift_server, form_container):
    path = f"/v1/AUTH_test/{form_container}/refused/"
    key = "container-secret"
    r = post_form(swift_server, path, [("a", b"a")], key, expires=int(time.time()) - 10)
    assert (r.status_code, r.text) == (401, "FormPost: Form Expired")
    r = post_form(swift_server, path, [("a", b"a")], key, signature="0" * 40)
    assert (r.status_code, r.text) == (401, "FormPost: Invalid Signature")
    r = post_form(swift_server, path, [("big", b"x" * 101)], key, max_size=100)
    assert (r.status_code, r.text) == (400, "FormPost: max_file_size exceeded")
    r = post_form(swift_server, path, [("f1", b"1"), ("f2", b"2"), ("f3", b"3")], key, max_count=2)
    assert (r.status_code, r.text) == (400, "400 Bad Request\r\nFormPost: Max File Count Exceeded")
    r = post_form(swift_server, path, [("g1", b"1"), ("g2", b"2")], key, max_count=1,
                  redirect="https://example.com/r?x=1")
    assert r.status_code == 303
    assert r.headers["Location"] == "https://example.com/r?x=1&status=400&message=max%20file%20count%20exceeded"
    r = post_form(swift_server, path, [], key)
    assert (r.status_code, r.text) == (400, "400 Bad Request\r\nFormPost: No Files To Process")
    r = post_form(swift_server, path, [("a", b"a")], key, extra={"x_delete_at": "soon"})
    assert (r.status_code, r.text) == (400, "FormPost: x_delete_at not an integer: Unix timestamp required.")
    r = requests.post(swift_server.swift_base + path, data=b"no boundary here", timeout=30,
                      headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert (r.status_code, r.text) == (400, "FormPost: invalid starting boundary")
    names = [o["name"] for o in connect(swift_server).get_container(form_container, prefix="refused/")[1]]
    # Only the files before the count was exceeded were written.
    assert names == ["refused/f1", "refused/f2", "refused/g1"]
