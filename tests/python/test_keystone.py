"""Swift with Keystone v3: a real Keystone issues tokens, Coffer validates them with its service user, and
python-swiftclient finds Coffer through Keystone's catalog (`auth_version=3`)."""

from __future__ import annotations

import uuid

import pytest
import swiftclient
from swiftclient.exceptions import ClientException

from conftest import CofferServer, free_port
from keystone_server import KeystoneServer


@pytest.fixture(scope="module")
def stack(workdir):
    keystone = KeystoneServer(workdir / "keystone").start()
    try:
        keystone.admin()
        keystone.project("service")
        keystone.user("swift", "swiftpw", "service", "service")
        keystone.project("demo")
        keystone.user("alice", "alicepw", "demo", "member")
        keystone.user("bob", "bobpw", "demo", "reader")
        keystone.project("other")
        keystone.user("carol", "carolpw", "other", "member")
        swift_port = free_port()
        _, service = keystone._call("POST", "/services", {"service": {"type": "object-store", "name": "swift"}})
        keystone._call("POST", "/endpoints", {"endpoint": {
            "service_id": service["service"]["id"], "interface": "public", "region_id": "RegionOne",
            "url": f"http://127.0.0.1:{swift_port}/v1/AUTH_%(project_id)s"}})
        d = workdir / "keystone-coffer"
        d.mkdir()
        import os

        saved = dict(os.environ)
        os.environ.update(COFFER_KEYSTONE_URL=keystone.url, COFFER_KEYSTONE_USER="swift",
                          COFFER_KEYSTONE_PASSWORD="swiftpw", COFFER_KEYSTONE_PROJECT="service")
        try:
            coffer = CofferServer(d, ["--swift-address", f"127.0.0.1:{swift_port}", "--console-address", "off"]).start()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        coffer.swift_url = f"http://127.0.0.1:{swift_port}/v1"
        try:
            yield keystone, coffer
        finally:
            coffer.stop_cleanly()
    finally:
        keystone.stop()


def v3(keystone, user, password, project):
    return swiftclient.Connection(
        authurl=keystone.url, user=user, key=password, auth_version="3", retries=0,
        os_options={"project_name": project, "user_domain_id": "default", "project_domain_id": "default"},
    )


def test_keystone_users_work_in_their_projects_account(stack):
    keystone, _ = stack
    alice = v3(keystone, "alice", "alicepw", "demo")
    name = f"ks-{uuid.uuid4().hex[:8]}"
    alice.put_container(name)
    alice.put_object(name, "doc.txt", b"from keystone", headers={"X-Object-Meta-Who": "alice"})
    headers, body = alice.get_object(name, "doc.txt")
    assert body == b"from keystone" and headers["x-object-meta-who"] == "alice"
    assert [c["name"] for c in alice.get_account()[1]] == [name]
    assert alice.head_container(name)["x-container-object-count"] == "1"
    url, _ = alice.get_auth()
    _, demo_id = keystone.token("alice", "alicepw", "demo")
    assert url.endswith(f"/v1/AUTH_{demo_id}")


def test_roles_and_projects_bound_what_a_token_may_do(stack):
    keystone, coffer = stack
    alice = v3(keystone, "alice", "alicepw", "demo")
    name = f"ks-{uuid.uuid4().hex[:8]}"
    alice.put_container(name)
    alice.put_object(name, "o", b"x")
    # A reader of the project is not an operator of its account.
    bob = v3(keystone, "bob", "bobpw", "demo")
    with pytest.raises(ClientException) as e:
        bob.get_object(name, "o")
    assert e.value.http_status == 403
    # Another project's member cannot reach this account at all.
    carol_token, _ = keystone.token("carol", "carolpw", "other")
    _, demo_id = keystone.token("alice", "alicepw", "demo")
    with pytest.raises(ClientException) as e:
        swiftclient.get_container(f"{coffer.swift_url}/AUTH_{demo_id}", carol_token, name)
    assert e.value.http_status == 403
    # A token Keystone never issued is refused.
    with pytest.raises(ClientException) as e:
        swiftclient.get_account(f"{coffer.swift_url}/AUTH_{demo_id}", "gAAAAAnot-a-token")
    assert e.value.http_status == 401
