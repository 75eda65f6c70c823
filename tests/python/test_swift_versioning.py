"""Swift's legacy container versioning (X-Versions-Location / X-History-Location) with
python-swiftclient, and the archived versions seen through S3 (boto3)."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest
import requests
import swiftclient
from swiftclient.exceptions import ClientException

from test_swift import OTHER, READER, connect, s3_as, swift_server_in


@pytest.fixture(scope="module")
def swift_server(workdir):
    yield from swift_server_in(workdir / "swift-versioning-server")

DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"


def names(prefix: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"{prefix}-{tag}", f"{prefix}-{tag}-archive"


def archived(conn, archive: str, obj: str) -> list[dict]:
    """The archive's listing of one object's versions, oldest first."""
    return conn.get_container(archive, prefix="%03x%s/" % (len(obj.encode()), obj))[1]


def versioned_pair(conn, header: str, prefix: str) -> tuple[str, str]:
    container, archive = names(prefix)
    conn.put_container(archive)
    conn.put_container(container, headers={header: quote(archive)})
    return container, archive


def test_info_advertises_versioned_writes(swift_server):
    info = connect(swift_server).get_capabilities()
    assert info["versioned_writes"] == {"allowed_flags": ["x-versions-location", "x-history-location"]}


def test_stack_mode_archives_overwrites_and_restores_them_newest_first(swift_server):
    conn = connect(swift_server)
    container, archive = versioned_pair(conn, "X-Versions-Location", "stack")
    assert conn.head_container(container)["x-versions-location"] == quote(archive)
    assert "x-history-location" not in conn.head_container(container)

    conn.put_object(container, "doc", b"one", content_type="text/one", headers={"X-Object-Meta-N": "1"})
    assert conn.head_container(archive)["x-container-object-count"] == "0"
    conn.put_object(container, "doc", b"two", content_type="text/two")
    # POST changes metadata only: no new version.
    conn.post_object(container, "doc", headers={"X-Object-Meta-Post": "yes"})
    conn.put_object(container, "doc", b"three", content_type="text/three")
    # A copy onto the object is a write too (COPY and X-Copy-From).
    conn.put_object(container, "src", b"four", content_type="text/four")
    conn.copy_object(container, "src", f"/{container}/doc")
    conn.put_object(container, "doc", b"", headers={"X-Copy-From": f"/{container}/src"})

    versions = archived(conn, archive, "doc")
    assert [v["content_type"] for v in versions] == ["text/one", "text/two", "text/three", "text/four"]
    # Swift's names: the name's length in hex, the name, the old version's internal timestamp.
    for v in versions:
        prefix, stamp = v["name"].rsplit("/", 1)
        assert prefix == "003doc" and len(stamp) == 16 and stamp[10] == "." and stamp.replace(".", "").isdigit()
    assert [v["name"] for v in versions] == sorted(v["name"] for v in versions)
    head, body = conn.get_object(archive, versions[0]["name"])
    assert (body, head["x-object-meta-n"]) == (b"one", "1")
    head = conn.head_object(archive, versions[1]["name"])
    assert head["x-object-meta-post"] == "yes" and head["content-type"] == "text/two"

    # Each DELETE brings the newest archived version back (and takes it out of the archive).
    expected = [b"four", b"three", b"two", b"one"]
    for i, body in enumerate(expected):
        conn.delete_object(container, "doc")
        assert conn.get_object(container, "doc")[1] == body
        assert len(archived(conn, archive, "doc")) == len(expected) - 1 - i
    head = conn.head_object(container, "doc")
    assert (head["content-type"], head["x-object-meta-n"]) == ("text/one", "1")
    conn.delete_object(container, "doc")
    with pytest.raises(ClientException) as e:
        conn.get_object(container, "doc")
    assert e.value.http_status == 404
    with pytest.raises(ClientException) as e:
        conn.delete_object(container, "doc")
    assert e.value.http_status == 404


def test_history_mode_writes_delete_markers(swift_server):
    conn = connect(swift_server)
    container, archive = versioned_pair(conn, "X-History-Location", "history")
    head = conn.head_container(container)
    assert head["x-history-location"] == quote(archive) and "x-versions-location" not in head

    conn.put_object(container, "obj", b"v1", content_type="text/v1")
    conn.put_object(container, "obj", b"v2", content_type="text/v2")
    conn.delete_object(container, "obj")
    with pytest.raises(ClientException) as e:
        conn.get_object(container, "obj")
    assert e.value.http_status == 404
    # Deleting again: 404, and one more marker.
    with pytest.raises(ClientException) as e:
        conn.delete_object(container, "obj")
    assert e.value.http_status == 404
    versions = archived(conn, archive, "obj")
    assert [v["content_type"] for v in versions] == ["text/v1", "text/v2", DELETE_MARKER, DELETE_MARKER]
    assert [v["bytes"] for v in versions] == [2, 2, 0, 0]
    assert conn.get_object(archive, versions[1]["name"])[1] == b"v2"

    # Switched to stack mode, a DELETE with no object takes the top marker away, then the one
    # below it together with the version under it, which comes back.
    conn.post_container(container, headers={"X-Versions-Location": archive})
    conn.delete_object(container, "obj")
    assert len(archived(conn, archive, "obj")) == 3
    assert conn.head_container(container)["x-container-object-count"] == "0"
    conn.delete_object(container, "obj")
    assert conn.get_object(container, "obj")[1] == b"v2"
    assert [v["content_type"] for v in archived(conn, archive, "obj")] == ["text/v1"]


def test_manifests_are_versioned_as_manifests(swift_server):
    conn = connect(swift_server)
    container, archive = versioned_pair(conn, "X-Versions-Location", "slo")
    segments = f"{container}-segments"
    conn.put_container(segments)
    etags = {letter: conn.put_object(segments, letter, letter.encode() * 1000) for letter in "ab"}

    def manifest(letter):
        body = [{"path": f"/{segments}/{letter}", "etag": etags[letter], "size_bytes": 1000}]
        conn.put_object(container, "big", json.dumps(body), query_string="multipart-manifest=put")

    manifest("a")
    manifest("b")
    (version,) = archived(conn, archive, "big")
    assert conn.get_object(archive, version["name"])[1] == b"a" * 1000
    assert "x-static-large-object" in conn.head_object(archive, version["name"])
    conn.delete_object(container, "big")
    assert conn.get_object(container, "big")[1] == b"a" * 1000
    # A DLO manifest put over an object archives it too.
    conn.put_object(container, "dlo", b"plain")
    conn.put_object(container, "dlo", b"", headers={"X-Object-Manifest": f"{segments}/"})
    assert conn.get_object(container, "dlo")[1] == b"a" * 1000 + b"b" * 1000
    (plain,) = archived(conn, archive, "dlo")
    assert conn.get_object(archive, plain["name"])[1] == b"plain"


def test_writers_version_into_an_archive_they_cannot_touch(swift_server):
    owner, writer, stranger = connect(swift_server), connect(swift_server, READER), connect(swift_server, OTHER)
    container, archive = versioned_pair(owner, "X-Versions-Location", "acl")
    owner.post_container(container, headers={"X-Container-Write": "test:tester3"})
    # Only the account's admins set the location.
    with pytest.raises(ClientException) as e:
        writer.post_container(container, headers={"X-Versions-Location": archive})
    assert e.value.http_status == 403

    writer.put_object(container, "o", b"first")
    writer.put_object(container, "o", b"second")
    (version,) = archived(owner, archive, "o")
    assert owner.get_object(archive, version["name"])[1] == b"first"
    for attempt in (lambda: writer.get_object(archive, version["name"]),
                    lambda: writer.delete_object(archive, version["name"]),
                    lambda: writer.put_object(archive, "x", b"x")):
        with pytest.raises(ClientException) as e:
            attempt()
        assert e.value.http_status == 403
    # Someone without write access to the container neither writes nor deletes (nor versions).
    url, _ = owner.get_auth()
    _, stranger_token = stranger.get_auth()
    for attempt in (lambda: swiftclient.put_object(url, stranger_token, container, "o", b"evil"),
                    lambda: swiftclient.delete_object(url, stranger_token, container, "o")):
        with pytest.raises(ClientException) as e:
            attempt()
        assert e.value.http_status == 403
    assert len(archived(owner, archive, "o")) == 1
    # The writer's DELETE restores from the archive all the same.
    writer.delete_object(container, "o")
    assert owner.get_object(container, "o")[1] == b"first"
    assert archived(owner, archive, "o") == []


def test_an_archive_that_is_missing_or_not_the_accounts_refuses_versioning_writes(swift_server):
    conn, other = connect(swift_server), connect(swift_server, OTHER)
    container, archive = names("missing")
    conn.put_container(container, headers={"X-Versions-Location": archive})
    conn.put_object(container, "o", b"first")  # nothing to version yet
    with pytest.raises(ClientException) as e:
        conn.put_object(container, "o", b"second")
    assert e.value.http_status == 412
    assert conn.get_object(container, "o")[1] == b"first"
    # Another account's container of that name is no archive of this one.
    other.put_container(archive)
    with pytest.raises(ClientException) as e:
        conn.put_object(container, "o", b"second")
    assert e.value.http_status == 412
    assert other.head_container(archive)["x-container-object-count"] == "0"
    # Stack mode with no archive: a plain delete.
    conn.delete_object(container, "o")
    with pytest.raises(ClientException) as e:
        conn.head_object(container, "o")
    assert e.value.http_status == 404
    # History mode with no archive: the marker cannot be written.
    conn.post_container(container, headers={"X-History-Location": archive})
    conn.put_object(container, "o", b"again")
    with pytest.raises(ClientException) as e:
        conn.delete_object(container, "o")
    assert e.value.http_status == 412
    assert conn.get_object(container, "o")[1] == b"again"


def test_the_setting_is_removed_and_refused_as_swift_does(swift_server):
    conn = connect(swift_server)
    container, archive = versioned_pair(conn, "X-Versions-Location", "setting")
    url, token = conn.get_auth()

    r = requests.post(f"{url}/{container}", headers={
        "X-Auth-Token": token, "X-Versions-Location": archive, "X-History-Location": archive})
    assert r.status_code == 400
    assert r.text == "Only one of x-versions-location or x-history-location may be specified"
    r = requests.post(f"{url}/{container}", headers={"X-Auth-Token": token, "X-Versions-Location": "a/b"})
    assert r.status_code == 412
    r = requests.put(f"{url}/{container}-new", headers={
        "X-Auth-Token": token, "X-Versions-Location": archive, "X-History-Location": archive})
    assert r.status_code == 400
    with pytest.raises(ClientException) as e:
        conn.head_container(f"{container}-new")
    assert e.value.http_status == 404
    assert conn.head_container(container)["x-versions-location"] == quote(archive)

    conn.post_container(container, headers={"X-Remove-Versions-Location": "x"})
    assert "x-versions-location" not in conn.head_container(container)
    conn.put_object(container, "o", b"1")
    conn.put_object(container, "o", b"2")
    assert archived(conn, archive, "o") == []

    # An empty value removes it as well; a quoted name is shown as given and used unquoted.
    spaced = f"{archive} 2"
    conn.put_container(spaced)
    conn.post_container(container, headers={"X-History-Location": quote(spaced)})
    # (swiftclient unquotes the headers it reads: look at the raw answer.)
    raw = requests.head(f"{url}/{container}", headers={"X-Auth-Token": token})
    assert raw.headers["x-history-location"] == quote(spaced)
    conn.put_object(container, "o", b"3")
    assert [conn.get_object(spaced, v["name"])[1] for v in archived(conn, spaced, "o")] == [b"2"]
    conn.post_container(container, headers={"X-History-Location": ""})
    head = conn.head_container(container)
    assert "x-history-location" not in head and "x-versions-location" not in head


def test_archived_versions_are_plain_objects_to_s3(swift_server):
    conn = connect(swift_server)
    container, archive = versioned_pair(conn, "X-Versions-Location", "s3")
    conn.put_object(container, "report.txt", b"draft", content_type="text/plain",
                    headers={"X-Object-Meta-Stage": "draft"})
    conn.put_object(container, "report.txt", b"final")
    (version,) = archived(conn, archive, "report.txt")
    s3 = s3_as(swift_server)
    got = s3.get_object(Bucket=archive, Key=version["name"])
    assert got["Body"].read() == b"draft"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"stage": "draft"}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=archive)["Contents"]]
    assert keys == [version["name"]] and keys[0].startswith("00areport.txt/")
