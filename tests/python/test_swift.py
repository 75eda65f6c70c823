"""The Swift API with python-swiftclient (its Python API and the `swift` CLI) and tempauth, and the
same objects seen through S3 (boto3): containers are buckets."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import swiftclient
from botocore.exceptions import ClientError
from swiftclient.exceptions import ClientException

from conftest import CofferServer, client_for_keys, free_port

ADMIN = ("test:tester", "testing")
READER = ("test:tester3", "testing3")
OTHER = ("test2:tester2", "testing2")


def swift_server_in(d: Path):
    """A `coffer server` in `d` with the Swift API and the tempauth users of these tests; yields it, then stops it.
    Each test module that needs one has its own (module-scoped) fixture over this."""
    d.mkdir()
    port = free_port()
    srv = CofferServer(
        d,
        [
            "--swift-address", f"127.0.0.1:{port}",
            "--console-address", "off",
            "--tempauth-user", "test:tester:testing:admin",
            "--tempauth-user", "test:tester3:testing3",
            "--tempauth-user", "test2:tester2:testing2:admin",
        ],
    ).start()
    srv.swift_base = f"http://127.0.0.1:{port}"
    srv.swift_auth = f"{srv.swift_base}/auth/v1.0"
    try:
        yield srv
    finally:
        srv.discard()


@pytest.fixture(scope="module")
def swift_server(workdir):
    yield from swift_server_in(workdir / "swift-server")


def connect(server, who=ADMIN) -> swiftclient.Connection:
    return swiftclient.Connection(authurl=server.swift_auth, user=who[0], key=who[1], retries=0)


def s3_as(server, who=ADMIN):
    return client_for_keys(server.endpoint, who[0], who[1])


def test_tempauth_issues_tokens_and_refuses_bad_keys(swift_server):
    url, token = connect(swift_server).get_auth()
    assert url.endswith("/v1/AUTH_test") and token.startswith("AUTH_tk")
    with pytest.raises(ClientException) as e:
        swiftclient.Connection(authurl=swift_server.swift_auth, user="test:tester", key="wrong", retries=0).get_auth()
    assert e.value.http_status == 401
    with pytest.raises(ClientException) as e:
        swiftclient.get_account(url, "AUTH_tkforged.sig")
    assert e.value.http_status == 401


def test_containers_objects_metadata_and_listings(swift_server):
    conn = connect(swift_server)
    name = f"photos-{uuid.uuid4().hex[:8]}"
    conn.put_container(name, headers={"X-Container-Meta-Color": "blue"})
    assert conn.head_container(name)["x-container-meta-color"] == "blue"
    data = os.urandom(300_000)
    etag = conn.put_object(name, "2026/a.bin", data, etag=hashlib.md5(data).hexdigest(),
                           headers={"X-Object-Meta-Camera": "x100"})
    assert etag == hashlib.md5(data).hexdigest()
    conn.put_object(name, "2026/b.txt", b"hello")
    conn.put_object(name, "top.json", b"{}")
    headers, body = conn.get_object(name, "2026/a.bin")
    assert body == data and headers["x-object-meta-camera"] == "x100"
    assert headers["content-type"] == "application/octet-stream"
    assert conn.head_object(name, "2026/b.txt")["content-type"] == "text/plain"
    headers, part = conn.get_object(name, "2026/a.bin", headers={"Range": "bytes=10-19"})
    assert part == data[10:20] and headers["content-range"] == f"bytes 10-19/{len(data)}"

    head, listing = conn.get_container(name)
    assert [o["name"] for o in listing] == ["2026/a.bin", "2026/b.txt", "top.json"]
    assert (head["x-container-object-count"], head["x-container-bytes-used"]) == ("3", str(len(data) + 7))
    assert listing[0]["bytes"] == len(data) and listing[0]["hash"] == etag
    _, listing = conn.get_container(name, delimiter="/")
    assert [o.get("name", o.get("subdir")) for o in listing] == ["2026/", "top.json"]
    _, listing = conn.get_container(name, prefix="2026/", marker="2026/a.bin")
    assert [o["name"] for o in listing] == ["2026/b.txt"]
    _, listing = conn.get_container(name, end_marker="2026/b.txt")
    assert [o["name"] for o in listing] == ["2026/a.bin"]
    _, listing = conn.get_container(name, path="2026")
    assert [o["name"] for o in listing] == ["2026/a.bin", "2026/b.txt"]
    _, listing = conn.get_container(name, query_string="reverse=on")
    assert [o["name"] for o in listing] == ["top.json", "2026/b.txt", "2026/a.bin"]
    _, listing = conn.get_container(name, delimiter="/", query_string="reverse=true")
    assert [o.get("name", o.get("subdir")) for o in listing] == ["top.json", "2026/"]
    _, listing = conn.get_container(name, marker="top.json", query_string="reverse=true&limit=1")
    assert [o["name"] for o in listing] == ["2026/b.txt"]

    with pytest.raises(ClientException) as e:
        conn.put_object(name, "bad", b"data", etag="0" * 32)
    assert e.value.http_status == 422
    conn.post_object(name, "2026/b.txt", headers={"X-Object-Meta-New": "1"})
    meta = conn.head_object(name, "2026/b.txt")
    assert meta["x-object-meta-new"] == "1"
    conn.copy_object(name, "2026/b.txt", f"/{name}/copy.txt")
    assert conn.get_object(name, "copy.txt")[1] == b"hello"
    conn.put_object(name, "via-header", b"", headers={"X-Copy-From": f"/{name}/top.json"})
    assert conn.get_object(name, "via-header")[1] == b"{}"

    with pytest.raises(ClientException) as e:
        conn.delete_container(name)
    assert e.value.http_status == 409
    for obj in ["2026/a.bin", "2026/b.txt", "top.json", "copy.txt", "via-header"]:
        conn.delete_object(name, obj)
    with pytest.raises(ClientException) as e:
        conn.delete_object(name, "top.json")
    assert e.value.http_status == 404
    conn.delete_container(name)
    with pytest.raises(ClientException) as e:
        conn.head_container(name)
    assert e.value.http_status == 404


def test_account_listing_and_totals(swift_server):
    conn = connect(swift_server)
    names = [f"acct-{uuid.uuid4().hex[:8]}-{i}" for i in range(2)]
    for n in names:
        conn.put_container(n)
        conn.put_object(n, "o", b"12345")
    head, containers = conn.get_account(prefix="acct-")
    listed = {c["name"]: c for c in containers}
    for n in names:
        assert (listed[n]["count"], listed[n]["bytes"]) == (1, 5)
    assert int(head["x-account-container-count"]) >= 2


def test_swift_and_s3_see_the_same_objects(swift_server):
    conn = connect(swift_server)
    s3 = s3_as(swift_server)
    bucket = f"shared-{uuid.uuid4().hex[:8]}"
    conn.put_container(bucket)
    payload = os.urandom(70_000)
    conn.put_object(bucket, "from-swift", payload, content_type="image/png", headers={"X-Object-Meta-Origin": "swift"})
    got = s3.get_object(Bucket=bucket, Key="from-swift")
    assert got["Body"].read() == payload
    assert got["ContentType"] == "image/png" and got["Metadata"] == {"origin": "swift"}
    s3.put_object(Bucket=bucket, Key="from-s3", Body=b"s3 bytes", Metadata={"origin": "s3"}, ContentType="text/csv")
    headers, body = conn.get_object(bucket, "from-s3")
    assert body == b"s3 bytes" and headers["x-object-meta-origin"] == "s3" and headers["content-type"] == "text/csv"
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_chunked_uploads_of_unknown_length_are_stored_whole(swift_server):
    conn = connect(swift_server)
    container = f"chunked-{uuid.uuid4().hex[:8]}"
    conn.put_container(container)
    # A generator has no length: swiftclient sends it with Transfer-Encoding: chunked.
    pieces = [os.urandom(100_000), os.urandom(3), os.urandom(5 << 20)]
    etag = conn.put_object(container, "streamed", contents=(p for p in pieces))
    whole = b"".join(pieces)
    assert etag == hashlib.md5(whole).hexdigest()
    headers, body = conn.get_object(container, "streamed")
    assert body == whole and int(headers["content-length"]) == len(whole)
    small = conn.put_object(container, "tiny", contents=iter([b"abc", b"def"]))
    assert small == hashlib.md5(b"abcdef").hexdigest()
    assert conn.get_object(container, "tiny")[1] == b"abcdef"


def test_copy_needs_read_on_the_source_and_write_on_the_destination(swift_server):
    admin, reader = connect(swift_server), connect(swift_server, READER)
    tag = uuid.uuid4().hex[:8]
    source, dest = f"copy-src-{tag}", f"copy-dst-{tag}"
    admin.put_container(source, headers={"X-Container-Read": "test:tester3"})
    admin.put_container(dest)
    admin.put_object(source, "o", b"copied bytes")
    with pytest.raises(ClientException) as refused:
        reader.copy_object(source, "o", destination=f"/{dest}/o")
    assert refused.value.http_status == 403
    admin.post_container(dest, headers={"X-Container-Write": "test:tester3"})
    reader.copy_object(source, "o", destination=f"/{dest}/o")
    assert admin.get_object(dest, "o")[1] == b"copied bytes"


def test_accounts_are_isolated_and_non_admins_need_acls(swift_server):
    conn = connect(swift_server)
    name = f"private-{uuid.uuid4().hex[:8]}"
    conn.put_container(name)
    conn.put_object(name, "secret", b"s")
    other = connect(swift_server, OTHER)
    url, token = other.get_auth()
    test_url = url.replace("AUTH_test2", "AUTH_test")
    with pytest.raises(ClientException) as e:
        swiftclient.get_container(test_url, token, name)
    assert e.value.http_status == 403
    # In its own account, the other tenant has no container of that name.
    with pytest.raises(ClientException) as e:
        other.get_object(name, "secret")
    assert e.value.http_status == 404
    with pytest.raises(ClientError) as e:
        s3_as(swift_server, OTHER).get_object(Bucket=name, Key="secret")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert name not in [b["Name"] for b in s3_as(swift_server, OTHER).list_buckets()["Buckets"]]
    with pytest.raises(ClientException) as e:
        connect(swift_server, READER).get_object(name, "secret")
    assert e.value.http_status == 403


def swift_cli(server, cwd: Path):
    """Runs the `swift` CLI as the ADMIN tempauth user in `cwd`; returns a function of the arguments."""
    swift = Path(os.environ.get("COFFER_VENV", Path.home() / ".cache/coffer/venv")) / "bin" / "swift"
    env = dict(os.environ, ST_AUTH=server.swift_auth, ST_USER=ADMIN[0], ST_KEY=ADMIN[1])

    def run(*args):
        proc = subprocess.run([str(swift), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    return run


def test_swift_cli_upload_download_stat(swift_server, tmp_path: Path):
    source = tmp_path / "file.dat"
    source.write_bytes(os.urandom(50_000))
    container = f"cli-{uuid.uuid4().hex[:8]}"
    run = swift_cli(swift_server, tmp_path)

    run("upload", container, "file.dat")
    assert "file.dat" in run("list", container)
    assert "Objects: 1" in run("stat", container)
    run("download", container, "file.dat", "-o", str(tmp_path / "back.dat"))
    assert (tmp_path / "back.dat").read_bytes() == source.read_bytes()
    run("delete", container)


def test_info_advertises_the_limits(swift_server):
    info = connect(swift_server).get_capabilities()
    assert info["swift"]["max_object_name_length"] == 1024
    assert info["slo"]["max_manifest_segments"] == 1000 and "dlo" in info and "tempurl" in info


def test_container_acls_open_containers_to_other_users_and_referrers(swift_server):
    import urllib.error
    import urllib.request

    owner = connect(swift_server)
    name = f"shared-acl-{uuid.uuid4().hex[:8]}"
    owner.put_container(name)
    owner.put_object(name, "doc", b"shared doc")
    reader = connect(swift_server, READER)
    other = connect(swift_server, OTHER)
    url, _ = owner.get_auth()
    _, other_token = other.get_auth()
    _, reader_token = reader.get_auth()

    # Nothing is shared until the owner says so.
    with pytest.raises(ClientException) as e:
        swiftclient.get_object(url, other_token, name, "doc")
    assert e.value.http_status == 403

    owner.post_container(name, headers={"X-Container-Read": "test2:tester2,test:tester3",
                                        "X-Container-Write": "test:tester3"})
    assert owner.head_container(name)["x-container-read"] == "test2:tester2,test:tester3"
    assert swiftclient.get_object(url, other_token, name, "doc")[1] == b"shared doc"
    assert [o["name"] for o in swiftclient.get_container(url, other_token, name)[1]] == ["doc"]
    assert "x-container-read" not in swiftclient.head_container(url, other_token, name), "ACLs are the owner's"
    with pytest.raises(ClientException) as e:
        swiftclient.put_object(url, other_token, name, "nope", b"x")
    assert e.value.http_status == 403
    swiftclient.put_object(url, reader_token, name, "by-reader", b"written via ACL")
    assert owner.get_object(name, "by-reader")[1] == b"written via ACL"
    with pytest.raises(ClientException) as e:
        swiftclient.delete_container(url, reader_token, name)
    assert e.value.http_status == 403

    # Anonymous reads with a referrer ACL; listings only with .rlistings.
    public = f"{url}/{name}/doc"
    with pytest.raises(urllib.error.HTTPError) as anon:
        urllib.request.urlopen(public, timeout=10)
    assert anon.value.code == 401
    owner.post_container(name, headers={"X-Container-Read": ".r:*"})
    with urllib.request.urlopen(public, timeout=10) as r:
        assert r.read() == b"shared doc"
    with pytest.raises(urllib.error.HTTPError) as anon:
        urllib.request.urlopen(f"{url}/{name}?format=json", timeout=10)
    assert anon.value.code == 401
    owner.post_container(name, headers={"X-Container-Read": ".r:*,.rlistings"})
    with urllib.request.urlopen(f"{url}/{name}?format=json", timeout=10) as r:
        assert sorted(o["name"] for o in __import__("json").loads(r.read())) == ["by-reader", "doc"]
    owner.post_container(name, headers={"X-Remove-Container-Read": "x"})
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(public, timeout=10)


def test_tempurl_grants_one_method_on_one_object_until_it_expires(swift_server):
    import time
    import urllib.error
    import urllib.request

    from swiftclient.utils import generate_temp_url

    owner = connect(swift_server)
    name = f"tempurl-{uuid.uuid4().hex[:8]}"
    owner.put_container(name, headers={"X-Container-Meta-Temp-URL-Key": "s3cr3t"})
    owner.put_object(name, "report.pdf", b"%PDF quarterly")
    url, _ = owner.get_auth()
    base = url.split("/v1/")[0]
    path = f"/v1/{url.split('/v1/')[1]}/{name}/report.pdf"

    get = generate_temp_url(path, 60, "s3cr3t", "GET")
    with urllib.request.urlopen(base + get, timeout=10) as r:
        assert r.read() == b"%PDF quarterly"
    sha512 = generate_temp_url(path, 60, "s3cr3t", "GET", digest="sha512")
    with urllib.request.urlopen(base + sha512, timeout=10) as r:
        assert r.status == 200
    for bad in (
        generate_temp_url(path, 60, "wrong-key", "GET"),
        generate_temp_url(path.replace("report.pdf", "other"), 60, "s3cr3t", "GET"),
    ):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + bad, timeout=10)
        assert e.value.code in (401, 404)
    # A GET link does not allow a PUT; a PUT link does.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(base + get, data=b"x", method="PUT"), timeout=10)
    assert e.value.code == 401
    put_path = path.replace("report.pdf", "upload.bin")
    put = generate_temp_url(put_path, 60, "s3cr3t", "PUT")
    urllib.request.urlopen(urllib.request.Request(base + put, data=b"uploaded", method="PUT"), timeout=10)
    assert owner.get_object(name, "upload.bin")[1] == b"uploaded"
    # Expired.
    soon = generate_temp_url(path, int(time.time()) + 1, "s3cr3t", "GET", absolute=True)
    time.sleep(2)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + soon, timeout=10)
    assert e.value.code == 401


def test_bulk_delete_removes_objects_and_empty_containers_with_the_callers_rights(swift_server):
    import json
    import urllib.request

    owner = connect(swift_server)
    name = f"bulk-{uuid.uuid4().hex[:8]}"
    owner.put_container(name)
    for i in range(3):
        owner.put_object(name, f"o{i} x", b"x")
    url, token = owner.get_auth()
    body = "\n".join([f"/{name}/o0%20x", f"/{name}/o1 x", f"/{name}/o2%20x", f"/{name}/missing", f"/{name}"])
    req = urllib.request.Request(f"{url}?bulk-delete", data=body.encode(), method="POST",
                                 headers={"X-Auth-Token": token, "Accept": "application/json",
                                          "Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=30) as r:
        summary = json.loads(r.read())
    assert (summary["Number Deleted"], summary["Number Not Found"], summary["Errors"]) == (4, 1, [])
    with pytest.raises(ClientException) as e:
        owner.head_container(name)
    assert e.value.http_status == 404
    # Someone without rights on a container deletes nothing in it.
    owner.put_container(name)
    owner.put_object(name, "keep", b"k")
    _, reader_token = connect(swift_server, READER).get_auth()
    req = urllib.request.Request(f"{url}?bulk-delete", data=f"/{name}/keep".encode(), method="POST",
                                 headers={"X-Auth-Token": reader_token, "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        summary = json.loads(r.read())
    assert summary["Number Deleted"] == 0 and summary["Errors"][0][1].startswith("403")
    assert owner.get_object(name, "keep")[1] == b"k"


def test_account_metadata_and_account_tempurl_keys(swift_server):
    import urllib.request

    from swiftclient.utils import generate_temp_url

    owner = connect(swift_server)
    owner.post_account(headers={"X-Account-Meta-Team": "storage", "X-Account-Meta-Temp-URL-Key": "acct-key"})
    head = owner.head_account()
    assert head["x-account-meta-team"] == "storage"
    owner.post_account(headers={"X-Remove-Account-Meta-Team": "x"})
    assert "x-account-meta-team" not in owner.head_account()
    with pytest.raises(ClientException) as e:
        connect(swift_server, READER).post_account(headers={"X-Account-Meta-Team": "no"})
    assert e.value.http_status == 403
    name = f"acct-tempurl-{uuid.uuid4().hex[:8]}"
    owner.put_container(name)
    owner.put_object(name, "o", b"via account key")
    url, _ = owner.get_auth()
    base, rest = url.split("/v1/")
    link = generate_temp_url(f"/v1/{rest}/{name}/o", 60, "acct-key", "GET")
    with urllib.request.urlopen(base + link, timeout=10) as r:
        assert r.read() == b"via account key"


def test_static_large_objects_put_get_ranges_manifest_and_delete(swift_server):
    """SLO: a manifest checked against its segments, read back whole and by ranges across segment
    boundaries, its stored manifest, S3's view of the same bytes, and `multipart-manifest=delete`."""
    import json

    conn = connect(swift_server)
    name = f"slo-{uuid.uuid4().hex[:8]}"
    conn.put_container(name)
    parts = [os.urandom(200_000), os.urandom(150_001), os.urandom(7)]
    manifest = []
    for i, part in enumerate(parts):
        etag = conn.put_object(name, f"segments/{i:03d}", part)
        manifest.append({"path": f"/{name}/segments/{i:03d}", "etag": etag, "size_bytes": len(part)})
    whole = b"".join(parts)
    slo_etag = hashlib.md5("".join(m["etag"] for m in manifest).encode()).hexdigest()
    conn.put_object(name, "big.bin", json.dumps(manifest), query_string="multipart-manifest=put",
                    headers={"Content-Type": "application/x-big", "X-Object-Meta-Kind": "slo"})

    head = conn.head_object(name, "big.bin")
    assert head["x-static-large-object"].lower() == "true"
    assert int(head["content-length"]) == len(whole)
    assert head["etag"].strip('"') == slo_etag
    assert head["x-object-meta-kind"] == "slo" and "x-object-meta-x-slo-size" not in head
    headers, body = conn.get_object(name, "big.bin")
    assert body == whole and headers["content-type"] == "application/x-big"
    for first, last in [(0, 9), (199_995, 200_010), (349_990, len(whole) - 1), (5, 350_003)]:
        headers, body = conn.get_object(name, "big.bin", headers={"Range": f"bytes={first}-{last}"})
        assert body == whole[first:last + 1], (first, last)
        assert headers["content-range"] == f"bytes {first}-{last}/{len(whole)}"
    _, body = conn.get_object(name, "big.bin", headers={"Range": "bytes=-5"})
    assert body == whole[-5:]

    _, stored = conn.get_object(name, "big.bin", query_string="multipart-manifest=get")
    stored = json.loads(stored)
    assert [s["name"] for s in stored] == [m["path"] for m in manifest]
    assert [s["bytes"] for s in stored] == [len(p) for p in parts]

    # A wrong size or a missing segment refuses the manifest.
    bad = [dict(manifest[0], size_bytes=1)]
    with pytest.raises(ClientException) as e:
        conn.put_object(name, "bad.bin", json.dumps(bad), query_string="multipart-manifest=put")
    assert e.value.http_status == 400
    with pytest.raises(ClientException) as e:
        conn.put_object(name, "bad.bin", json.dumps([{"path": f"/{name}/nope"}]),
                        query_string="multipart-manifest=put")
    assert e.value.http_status == 400

    # Nested: a manifest of a manifest and one more segment.
    conn.put_object(name, "nested.bin", json.dumps([{"path": f"/{name}/big.bin"}, manifest[2]]),
                    query_string="multipart-manifest=put")
    assert conn.get_object(name, "nested.bin")[1] == whole + parts[2]

    # Segment ranges: only those bytes, and the ETag covers them as Swift computes it.
    ranged = [dict(manifest[0], range="10-19"), dict(manifest[1], range="-5")]
    etag = conn.put_object(name, "ranged.bin", json.dumps(ranged), query_string="multipart-manifest=put")
    parts_etag = f"{manifest[0]['etag']}:10-19;{manifest[1]['etag']}:149996-150000;"
    assert etag.strip('"') == hashlib.md5(parts_etag.encode()).hexdigest()
    assert conn.get_object(name, "ranged.bin")[1] == parts[0][10:20] + parts[1][-5:]
    conn.delete_object(name, "ranged.bin")

    # Inline data segments between object segments.
    import base64
    mixed = [{"data": base64.b64encode(b"head:").decode()}, manifest[2], {"data": base64.b64encode(b":tail").decode()}]
    conn.put_object(name, "mixed.bin", json.dumps(mixed), query_string="multipart-manifest=put")
    assert conn.get_object(name, "mixed.bin")[1] == b"head:" + parts[2] + b":tail"
    _, raw = conn.get_object(name, "mixed.bin", query_string="multipart-manifest=get&format=raw")
    assert json.loads(raw)[0] == mixed[0]
    conn.delete_object(name, "mixed.bin")

    # Deleting with multipart-manifest=delete removes the segments too.
    conn.delete_object(name, "nested.bin")
    conn.delete_object(name, "big.bin", query_string="multipart-manifest=delete")
    _, listing = conn.get_container(name)
    assert listing == []


def test_dynamic_large_objects_follow_their_prefix(swift_server):
    conn = connect(swift_server)
    name = f"dlo-{uuid.uuid4().hex[:8]}"
    conn.put_container(name)
    conn.put_container(f"{name}-segs")
    parts = [os.urandom(70_000) for _ in range(3)]
    for i, part in enumerate(parts):
        conn.put_object(f"{name}-segs", f"movie/{i:02d}", part)
    conn.put_object(name, "movie.mp4", b"", headers={"X-Object-Manifest": f"{name}-segs/movie/"})
    head = conn.head_object(name, "movie.mp4")
    assert head["x-object-manifest"] == f"{name}-segs/movie/"
    assert int(head["content-length"]) == 210_000
    assert conn.get_object(name, "movie.mp4")[1] == b"".join(parts)
    # A segment added later is part of the object at once.
    extra = os.urandom(10)
    conn.put_object(f"{name}-segs", "movie/03", extra)
    _, body = conn.get_object(name, "movie.mp4", headers={"Range": "bytes=139990-"})
    assert body == (b"".join(parts) + extra)[139_990:]


def test_swift_cli_segmented_uploads_slo_and_dlo(swift_server, tmp_path: Path):
    source = tmp_path / "large.dat"
    source.write_bytes(os.urandom(1_000_000))
    container = f"seg-{uuid.uuid4().hex[:8]}"
    run = swift_cli(swift_server, tmp_path)

    run("upload", container, "large.dat", "--segment-size", "300000", "--use-slo")
    assert "Content Length: 1000000" in run("stat", container, "large.dat")
    run("download", container, "large.dat", "-o", str(tmp_path / "slo.back"))
    assert (tmp_path / "slo.back").read_bytes() == source.read_bytes()
    run("upload", container, "large.dat", "--object-name", "dlo.dat", "--segment-size", "400000", "--use-dlo")
    run("download", container, "dlo.dat", "-o", str(tmp_path / "dlo.back"))
    assert (tmp_path / "dlo.back").read_bytes() == source.read_bytes()
    run("delete", container, "large.dat")
    run("delete", container, "dlo.dat")
    assert connect(swift_server).get_container(container + "_segments")[1] == []


def test_multi_range_gets_answer_multipart_byteranges(swift_server):
    import email.parser
    import email.policy

    conn = connect(swift_server)
    name = f"ranges-{uuid.uuid4().hex[:8]}"
    conn.put_container(name)
    data = os.urandom(300_000)
    conn.put_object(name, "r.bin", data, content_type="application/x-test")
    headers, body = conn.get_object(name, "r.bin", headers={"Range": "bytes=0-9,200000-200009,-3"})
    assert headers["content-type"].startswith("multipart/byteranges;boundary=")
    assert int(headers["content-length"]) == len(body)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + headers["content-type"].encode() + b"\r\n\r\n" + body)
    parts = [(p["Content-Range"], p.get_content_type(), p.get_payload(decode=True)) for p in message.iter_parts()]
    assert parts == [
        ("bytes 0-9/300000", "application/x-test", data[:10]),
        ("bytes 200000-200009/300000", "application/x-test", data[200_000:200_010]),
        ("bytes 299997-299999/300000", "application/x-test", data[-3:]),
    ]
    # One satisfiable range of several: a plain 206; none: 416.
    headers, body = conn.get_object(name, "r.bin", headers={"Range": "bytes=5-6,400000-"})
    assert body == data[5:7] and headers["content-range"] == "bytes 5-6/300000"
    with pytest.raises(ClientException) as e:
        conn.get_object(name, "r.bin", headers={"Range": "bytes=400000-,500000-"})
    assert e.value.http_status == 416


def test_objects_expire_at_x_delete_at_and_after(swift_server):
    import time

    conn = connect(swift_server)
    name = f"expiry-{uuid.uuid4().hex[:8]}"
    conn.put_container(name)
    conn.put_object(name, "soon", b"short-lived", headers={"X-Delete-After": "2"})
    at = int(time.time()) + 3600
    conn.put_object(name, "later", b"long-lived", headers={"X-Delete-At": str(at), "X-Object-Meta-Color": "red"})
    head = conn.head_object(name, "later")
    assert head["x-delete-at"] == str(at) and head["x-object-meta-color"] == "red"
    assert "x-object-meta-x-delete-at" not in head
    assert conn.get_object(name, "soon")[1] == b"short-lived"
    # Malformed or past times are refused as Swift refuses them.
    for bad in ({"X-Delete-At": "soon"}, {"X-Delete-At": "1"}, {"X-Delete-After": "-1"}):
        with pytest.raises(ClientException) as e:
            conn.put_object(name, "bad", b"x", headers=bad)
        assert e.value.http_status == 400
    # POST replaces the expiry with the request's (none here: the object no longer expires).
    conn.post_object(name, "later", headers={"X-Object-Meta-Color": "blue"})
    assert "x-delete-at" not in conn.head_object(name, "later")
    # Once due, the object is gone for GET and HEAD at once, and soon from listings and S3 too.
    time.sleep(2.5)
    with pytest.raises(ClientException) as e:
        conn.get_object(name, "soon")
    assert e.value.http_status == 404
    deadline = time.time() + 20
    while time.time() < deadline and any(o["name"] == "soon" for o in conn.get_container(name)[1]):
        time.sleep(0.2)
    assert [o["name"] for o in conn.get_container(name)[1]] == ["later"]
    with pytest.raises(ClientError) as e:
        s3_as(swift_server).head_object(Bucket=name, Key="soon")
    assert e.value.response["Error"]["Code"] in ("404", "NoSuchKey")


def test_container_quotas_refuse_writes_past_them(swift_server):
    conn = connect(swift_server)
    name = f"quota-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClientException) as e:
        conn.put_container(name, headers={"X-Container-Meta-Quota-Bytes": "lots"})
    assert e.value.http_status == 400
    conn.put_container(name, headers={"X-Container-Meta-Quota-Bytes": "100", "X-Container-Meta-Quota-Count": "2"})
    conn.put_object(name, "a", b"x" * 60)
    with pytest.raises(ClientException) as e:
        conn.put_object(name, "b", b"x" * 41)
    assert e.value.http_status == 413
    conn.put_object(name, "b", b"x" * 40)
    with pytest.raises(ClientException) as e:
        conn.put_object(name, "c", b"")
    assert e.value.http_status == 413
    with pytest.raises(ClientException) as e:
        conn.copy_object(name, "a", f"/{name}/d")
    assert e.value.http_status == 413
    # Raising (or removing) the quota lets writes in again.
    conn.post_container(name, headers={"X-Container-Meta-Quota-Count": ""})
    conn.put_object(name, "c", b"")
    assert conn.head_container(name)["x-container-object-count"] == "3"
