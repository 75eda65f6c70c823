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
        swift_id = keystone.user("swift", "swiftpw", "service", "service")
        # Reading users' EC2 credentials (S3 signatures) needs the admin role.
        keystone._call("PUT", f"/projects/{keystone.project('service')}/users/{swift_id}/roles/{keystone.role_id('admin')}")
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
            coffer.discard()
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


def ec2_credential(keystone, user, password, project):
    """An EC2 credential of the user on the project (made by the admin, as `openstack ec2 credentials create
    --user` does)."""
    _, project_id = keystone.token(user, password, project)
    _, users = keystone._call("GET", f"/users?name={user}")
    user_id = users["users"][0]["id"]
    _, created = keystone._call("POST", f"/users/{user_id}/credentials/OS-EC2", {"tenant_id": project_id})
    return created["credential"]["access"], created["credential"]["secret"], project_id


def test_keystone_ec2_credentials_sign_s3_requests_in_the_projects_account(stack):
    from botocore.exceptions import ClientError

    from conftest import client_for_keys

    keystone, coffer = stack
    access, secret, demo_id = ec2_credential(keystone, "alice", "alicepw", "demo")
    s3 = client_for_keys(coffer.endpoint, access, secret)
    name = f"ks-s3-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="via-s3.txt", Body=b"signed with an EC2 credential")
    # The same account through Swift with alice's token.
    alice = v3(keystone, "alice", "alicepw", "demo")
    assert name in [c["name"] for c in alice.get_account()[1]]
    assert alice.get_object(name, "via-s3.txt")[1] == b"signed with an EC2 credential"
    alice.put_object(name, "via-swift.txt", b"x")
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]) == ["via-s3.txt", "via-swift.txt"]
    # A reader's credential is not an operator of the account; another project's cannot see it.
    r_access, r_secret, _ = ec2_credential(keystone, "bob", "bobpw", "demo")
    with pytest.raises(ClientError) as e:
        client_for_keys(coffer.endpoint, r_access, r_secret).put_object(Bucket=name, Key="no", Body=b"")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    c_access, c_secret, _ = ec2_credential(keystone, "carol", "carolpw", "other")
    with pytest.raises(ClientError) as e:
        client_for_keys(coffer.endpoint, c_access, c_secret).get_object(Bucket=name, Key="via-s3.txt")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    # A wrong secret or an unknown key is refused as S3 refuses them.
    with pytest.raises(ClientError) as e:
        client_for_keys(coffer.endpoint, access, "wrong" + secret).list_objects_v2(Bucket=name)
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as e:
        client_for_keys(coffer.endpoint, "0" * 32, secret).list_buckets()
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
