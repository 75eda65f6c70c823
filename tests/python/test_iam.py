"""IAM end to end with boto3 and the real `coffer admin` CLI: users, keys, policies, groups, tenants.

Every identity is created with `coffer admin ... --json` against the shared server, so the CLI's JSON
contract is tested too.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY, client_for_keys, coffer_bin, make_client, unique_bucket


def admin(endpoint: str, *args: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY, check=True):
    env = dict(os.environ, COFFER_ENDPOINT=endpoint, COFFER_ACCESS_KEY=access_key, COFFER_SECRET_KEY=secret_key)
    proc = subprocess.run(
        [str(coffer_bin()), "admin", *args], capture_output=True, text=True, env=env, timeout=60
    )
    if check:
        assert proc.returncode == 0, f"coffer admin {' '.join(args)} failed: {proc.stderr}{proc.stdout}"
    return proc


def admin_json(endpoint: str, *args: str, **kw):
    return json.loads(admin(endpoint, *args, "--json", **kw).stdout)


def client_for(endpoint: str, access_key: str, secret_key: str, session_token: str | None = None):
    return client_for_keys(endpoint, access_key, secret_key, session_token)


def new_user(endpoint: str, *policies: str) -> tuple[str, object]:
    name = f"u-{uuid.uuid4().hex[:10]}"
    args = ["user", "add", name]
    for p in policies:
        args += ["--policy", p]
    created = admin_json(endpoint, *args)
    assert set(created) == {"user", "access_key", "secret_key"}, created
    assert created["user"] == name
    return name, client_for(endpoint, created["access_key"], created["secret_key"])


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_readonly_user_reads_and_lists_but_cannot_write(endpoint, s3):
    bucket = unique_bucket("ro")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"hello")
    _, ro = new_user(endpoint, "readonly")

    assert ro.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"hello"
    assert [o["Key"] for o in ro.list_objects_v2(Bucket=bucket)["Contents"]] == ["doc.txt"]
    assert bucket in [b["Name"] for b in ro.list_buckets()["Buckets"]]
    writes = [
        lambda: ro.put_object(Bucket=bucket, Key="new.txt", Body=b"x"),
        lambda: ro.delete_object(Bucket=bucket, Key="doc.txt"),
        lambda: ro.create_bucket(Bucket=unique_bucket("ro2")),
        lambda: ro.copy_object(Bucket=bucket, Key="copy.txt", CopySource={"Bucket": bucket, "Key": "doc.txt"}),
        lambda: ro.create_multipart_upload(Bucket=bucket, Key="mp"),
        lambda: ro.put_object_tagging(Bucket=bucket, Key="doc.txt", Tagging={"TagSet": []}),
        lambda: ro.delete_bucket(Bucket=bucket),
    ]
    for write in writes:
        with pytest.raises(ClientError) as e:
            write()
        assert error_code(e) == "AccessDenied"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert s3.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"hello"


def test_home_folder_policy_confines_a_user(endpoint, s3, tmp_path):
    bucket = f"team-a-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="shared/readme", Body=b"team")
    policy_name = f"home-{uuid.uuid4().hex[:6]}"
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/home/${{aws:username}}/*"],
            },
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}},
            },
        ],
    }
    path = tmp_path / "home.json"
    path.write_text(json.dumps(document))
    admin(endpoint, "policy", "create", policy_name, str(path))
    name, alice = new_user(endpoint)
    admin(endpoint, "policy", "attach", policy_name, "--user", name)

    home = f"home/{name}/"
    alice.put_object(Bucket=bucket, Key=home + "notes.txt", Body=b"mine")
    assert alice.get_object(Bucket=bucket, Key=home + "notes.txt")["Body"].read() == b"mine"
    listed = alice.list_objects_v2(Bucket=bucket, Prefix=home + "n")
    assert [o["Key"] for o in listed["Contents"]] == [home + "notes.txt"]
    for denied in [
        lambda: alice.get_object(Bucket=bucket, Key="shared/readme"),
        lambda: alice.put_object(Bucket=bucket, Key="home/someone-else/x", Body=b"x"),
        lambda: alice.put_object(Bucket=bucket, Key="top.txt", Body=b"x"),
        lambda: alice.list_objects_v2(Bucket=bucket),
        lambda: alice.list_objects_v2(Bucket=bucket, Prefix="shared/"),
        lambda: alice.copy_object(
            Bucket=bucket, Key=home + "stolen", CopySource={"Bucket": bucket, "Key": "shared/readme"}
        ),
    ]:
        with pytest.raises(ClientError) as e:
            denied()
        assert error_code(e) == "AccessDenied"
    alice.delete_object(Bucket=bucket, Key=home + "notes.txt")

    # An attached policy cannot be deleted; detached, it can.
    assert admin(endpoint, "policy", "remove", policy_name, check=False).returncode != 0
    admin(endpoint, "policy", "detach", policy_name, "--user", name)
    admin(endpoint, "policy", "remove", policy_name)


def test_disabled_key_and_user_are_rejected_at_once(endpoint, s3):
    name, client = new_user(endpoint, "readwrite")
    client.list_buckets()
    admin(endpoint, "user", "disable", name)
    with pytest.raises(ClientError) as e:
        client.list_buckets()
    assert error_code(e) == "InvalidAccessKeyId"
    admin(endpoint, "user", "enable", name)
    client.list_buckets()

    extra = admin_json(endpoint, "key", "create", name)
    other = client_for(endpoint, extra["access_key"], extra["secret_key"])
    other.list_buckets()
    admin(endpoint, "key", "disable", extra["access_key"])
    with pytest.raises(ClientError) as e:
        other.list_buckets()
    assert error_code(e) == "InvalidAccessKeyId"
    client.list_buckets()  # the user's other key still works
    keys = admin_json(endpoint, "key", "list", name)
    assert {k["access_key"]: k["status"] for k in keys}[extra["access_key"]] == "disabled"
    admin(endpoint, "key", "delete", extra["access_key"])
    admin(endpoint, "user", "remove", name)
    with pytest.raises(ClientError) as e:
        client.list_buckets()
    assert error_code(e) == "InvalidAccessKeyId"


def test_tenants_do_not_see_each_other(endpoint, tmp_path):
    tenants = {}
    for tenant in ("ta", "tb"):
        prefix = f"{tenant}-{uuid.uuid4().hex[:6]}"
        document = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{prefix}-*", f"arn:aws:s3:::{prefix}-*/*"]},
                {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
            ],
        }
        path = tmp_path / f"{tenant}.json"
        path.write_text(json.dumps(document))
        admin(endpoint, "policy", "create", f"tenant-{prefix}", str(path))
        _, client = new_user(endpoint, f"tenant-{prefix}")
        bucket = f"{prefix}-data"
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="k", Body=tenant.encode())
        tenants[tenant] = (client, bucket)

    (a, a_bucket), (b, b_bucket) = tenants["ta"], tenants["tb"]
    assert [x["Name"] for x in a.list_buckets()["Buckets"]] == [a_bucket]
    assert [x["Name"] for x in b.list_buckets()["Buckets"]] == [b_bucket]
    for call in [
        lambda: b.head_bucket(Bucket=a_bucket),
        lambda: b.get_object(Bucket=a_bucket, Key="k"),
        lambda: b.list_objects_v2(Bucket=a_bucket),
        # A bucket that does not exist answers the same way: existence does not leak.
        lambda: b.head_bucket(Bucket=a_bucket + "-nope"),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_admin_api_needs_admin_rights(endpoint):
    name, _ = new_user(endpoint, "readwrite")
    key = admin_json(endpoint, "user", "info", name)["access_keys"][0]["access_key"]
    assert key
    created = admin_json(endpoint, "key", "create", name)
    for args in (["user", "list"], ["user", "add", "mallory"], ["policy", "list"], ["group", "list"], ["info"],
                 ["user", "disable", name], ["policy", "attach", "consoleAdmin", "--user", name]):
        proc = admin(endpoint, *args, access_key=created["access_key"], secret_key=created["secret_key"], check=False)
        assert proc.returncode != 0, args
        assert "AccessDenied" in proc.stderr, proc.stderr
    # Granted consoleAdmin, the same key may administer.
    admin(endpoint, "policy", "attach", "consoleAdmin", "--user", name)
    listed = admin_json(endpoint, "user", "list", access_key=created["access_key"], secret_key=created["secret_key"])
    assert name in [u["user"] for u in listed]


def test_groups_share_policies(endpoint, s3):
    bucket = unique_bucket("grp")
    s3.create_bucket(Bucket=bucket)
    name, client = new_user(endpoint)
    with pytest.raises(ClientError):
        client.list_objects_v2(Bucket=bucket)
    group = f"g-{uuid.uuid4().hex[:6]}"
    admin(endpoint, "group", "add", group, "--member", name)
    admin(endpoint, "policy", "attach", "readonly", "--group", group)
    client.list_objects_v2(Bucket=bucket)
    admin(endpoint, "group", "disable", group)
    with pytest.raises(ClientError):
        client.list_objects_v2(Bucket=bucket)
    admin(endpoint, "group", "remove", group)


@pytest.fixture(scope="module")
def sts_server(workdir):
    """A server whose shortest STS session is 2 s, so expiry can be watched."""
    from conftest import CofferServer

    d = workdir / "sts-server"
    d.mkdir()
    os.environ["COFFER_STS_MIN_DURATION"] = "2s"
    try:
        srv = CofferServer(d).start()
    finally:
        del os.environ["COFFER_STS_MIN_DURATION"]
    try:
        yield srv
    finally:
        srv.discard()


ROLE_ARN = "arn:aws:iam::000000000000:role/any"


def sts_client(endpoint: str, access_key: str, secret_key: str):
    return boto3.session.Session().client(
        "sts",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        # The test server allows sessions shorter than AWS's 900 s minimum, which boto3 checks locally.
        config=Config(parameter_validation=False),
    )


def test_session_credentials_work_until_expiry_and_session_policy_narrows(sts_server):
    import time

    endpoint = sts_server.endpoint
    root = make_client(endpoint)
    bucket = unique_bucket("sts")
    root.create_bucket(Bucket=bucket)
    root.put_object(Bucket=bucket, Key="public/a", Body=b"a")
    root.put_object(Bucket=bucket, Key="private/b", Body=b"b")
    name = f"u-{uuid.uuid4().hex[:8]}"
    user = admin_json(endpoint, "user", "add", name, "--policy", "readwrite")

    sts = sts_client(endpoint, user["access_key"], user["secret_key"])
    narrowing = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/public/*"}],
    }
    creds = sts.assume_role(
        RoleArn="arn:aws:iam::000000000000:role/any",
        RoleSessionName="narrow",
        DurationSeconds=3600,
        Policy=json.dumps(narrowing),
    )["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    session = client_for(endpoint, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert session.get_object(Bucket=bucket, Key="public/a")["Body"].read() == b"a"
    for call in [
        lambda: session.get_object(Bucket=bucket, Key="private/b"),
        lambda: session.put_object(Bucket=bucket, Key="public/new", Body=b"x"),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "AccessDenied"

    # Without the token, or with a tampered one, the session key is useless.
    with pytest.raises(ClientError):
        client_for(endpoint, creds["AccessKeyId"], creds["SecretAccessKey"]).get_object(Bucket=bucket, Key="public/a")
    with pytest.raises(ClientError) as e:
        client_for(endpoint, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"] + "x").get_object(
            Bucket=bucket, Key="public/a"
        )
    assert error_code(e) == "InvalidToken"

    # A short session works, then expires.
    short = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="short", DurationSeconds=2)["Credentials"]
    brief = client_for(endpoint, short["AccessKeyId"], short["SecretAccessKey"], short["SessionToken"])
    assert brief.get_object(Bucket=bucket, Key="private/b")["Body"].read() == b"b"
    time.sleep(3)
    with pytest.raises(ClientError) as e:
        brief.get_object(Bucket=bucket, Key="private/b")
    assert error_code(e) == "ExpiredToken"

    # A session policy can only narrow: one granting more than the user has grants nothing more.
    ro_name = f"u-{uuid.uuid4().hex[:8]}"
    ro = admin_json(endpoint, "user", "add", ro_name, "--policy", "readonly")
    wide = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    ro_creds = sts_client(endpoint, ro["access_key"], ro["secret_key"]).assume_role(
        RoleArn=ROLE_ARN, RoleSessionName="wide", Policy=json.dumps(wide)
    )["Credentials"]
    ro_session = client_for(endpoint, ro_creds["AccessKeyId"], ro_creds["SecretAccessKey"], ro_creds["SessionToken"])
    assert ro_session.get_object(Bucket=bucket, Key="private/b")["Body"].read() == b"b"
    with pytest.raises(ClientError) as e:
        ro_session.put_object(Bucket=bucket, Key="x", Body=b"x")
    assert error_code(e) == "AccessDenied"

    # Disabling the user ends its sessions too.
    admin(endpoint, "user", "disable", ro_name)
    with pytest.raises(ClientError):
        ro_session.get_object(Bucket=bucket, Key="private/b")

    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="bad", Policy="{not json")
    assert error_code(e) == "MalformedPolicyDocument"


def test_service_account_policy_narrows_its_parent(endpoint, s3, tmp_path):
    bucket = unique_bucket("sa")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    name, parent = new_user(endpoint, "readwrite")
    narrow = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}],
    }
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(narrow))
    key = admin_json(endpoint, "key", "create", name, "--service-account", "--policy", str(path), "--description", "backup")
    sa = client_for(endpoint, key["access_key"], key["secret_key"])
    assert sa.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    with pytest.raises(ClientError) as e:
        sa.put_object(Bucket=bucket, Key="k2", Body=b"x")
    assert error_code(e) == "AccessDenied"
    parent.put_object(Bucket=bucket, Key="k2", Body=b"x")  # the parent keeps its own rights
    listed = {k["access_key"]: k for k in admin_json(endpoint, "key", "list", name)}
    assert listed[key["access_key"]]["service_account"] is True
    assert "secret_key" not in listed[key["access_key"]], "secrets are never returned after creation"


@pytest.mark.parametrize(
    "condition,allowed",
    [
        ({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}, True),
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, False),
        ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, False),
        ({"StringEquals": {"aws:username": "${aws:username}"}}, True),
        ({"DateLessThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}}, False),
        ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, True),
    ],
)
def test_condition_keys_from_the_request(endpoint, s3, tmp_path, condition, allowed):
    bucket = unique_bucket("cond")
    s3.create_bucket(Bucket=bucket)
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}", "Condition": condition}],
    }
    path = tmp_path / "cond.json"
    path.write_text(json.dumps(document))
    policy = f"cond-{uuid.uuid4().hex[:8]}"
    admin(endpoint, "policy", "create", policy, str(path))
    _, client = new_user(endpoint, policy)
    if allowed:
        client.list_objects_v2(Bucket=bucket, MaxKeys=5)
    else:
        with pytest.raises(ClientError) as e:
            client.list_objects_v2(Bucket=bucket, MaxKeys=5)
        assert error_code(e) == "AccessDenied"


ADMIN_CALLS = [
    ("GET", "users", None), ("POST", "users", {"name": "x"}), ("GET", "users/x", None), ("DELETE", "users/x", None),
    ("POST", "users/x/enable", None), ("POST", "users/x/disable", None), ("GET", "users/x/keys", None),
    ("POST", "users/x/keys", None), ("POST", "users/x/service-accounts", {}), ("DELETE", "keys/AK", None),
    ("POST", "keys/AK/enable", None), ("POST", "keys/AK/disable", None), ("GET", "policies", None),
    ("POST", "policies", {"name": "p", "document": {"Version": "2012-10-17", "Statement": []}}),
    ("GET", "policies/readonly", None), ("DELETE", "policies/p", None),
    ("POST", "policies/readonly/attach", {"user": "x"}), ("POST", "policies/readonly/detach", {"user": "x"}),
    ("GET", "groups", None), ("POST", "groups", {"name": "g"}), ("GET", "groups/g", None), ("DELETE", "groups/g", None),
    ("POST", "groups/g/members", {"add": ["x"]}), ("POST", "groups/g/enable", None), ("POST", "groups/g/disable", None),
    ("GET", "info", None),
]


def signed_admin_call(endpoint: str, access_key: str, secret_key: str, method: str, path: str, body,
                      prefix: str = "/coffer/admin/v1/"):
    """(status, parsed JSON answer, or {"Code": ...} from an S3 XML error)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    request = AWSRequest(method=method, url=f"{endpoint}{prefix}{path}", data=data,
                         headers={"content-type": "application/json"})
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", REGION).add_auth(request)
    prepared = urllib.request.Request(request.url, data=data or None, method=method, headers=dict(request.headers))
    try:
        with urllib.request.urlopen(prepared, timeout=10) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    try:
        return status, json.loads(text or b"null")
    except ValueError:
        code = text.decode(errors="replace").split("<Code>")[-1].split("</Code>")[0]
        return status, {"Code": code}


def test_every_admin_endpoint_refuses_a_non_admin(endpoint):
    name = f"u-{uuid.uuid4().hex[:10]}"
    created = admin_json(endpoint, "user", "add", name, "--policy", "readwrite")
    for method, path, body in ADMIN_CALLS:
        status, answer = signed_admin_call(endpoint, created["access_key"], created["secret_key"], method, path, body)
        assert (status, answer["Code"]) == (403, "AccessDenied"), (method, path, status, answer)
    status, answer = signed_admin_call(endpoint, "nobody", "nothing-at-all", "GET", "users", None)
    assert (status, answer["Code"]) == (403, "InvalidAccessKeyId")


def test_minio_admin_api_for_users_policies_and_groups(endpoint, s3):
    """The plain-JSON calls `mc admin user|policy|group` makes, as madmin-go sends them."""

    def mc(method, path, body=None):
        return signed_admin_call(endpoint, ACCESS_KEY, SECRET_KEY, method, path, body, prefix="/minio/admin/v3/")

    name, client = new_user(endpoint)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}
    pname = f"mc-{uuid.uuid4().hex[:6]}"
    assert mc("PUT", f"add-canned-policy?name={pname}", json.dumps(policy).encode())[0] == 200
    status, listed = mc("GET", "list-canned-policies")
    assert status == 200 and listed[pname] == policy and "readonly" in listed
    status, info = mc("GET", f"info-canned-policy?name={pname}&v=2")
    assert (status, info["PolicyName"], info["Policy"]) == (200, pname, policy)
    assert mc("PUT", f"set-user-or-group-policy?policyName={pname}&userOrGroup={name}&isGroup=false")[0] == 200
    client.list_buckets()
    status, user = mc("GET", f"user-info?accessKey={name}")
    assert (status, user["policyName"], user["status"]) == (200, pname, "enabled")
    assert mc("PUT", f"set-user-status?accessKey={name}&status=disabled")[0] == 200
    with pytest.raises(ClientError):
        client.list_buckets()
    assert mc("PUT", f"set-user-status?accessKey={name}&status=enabled")[0] == 200

    group = f"mcg-{uuid.uuid4().hex[:6]}"
    assert mc("PUT", "update-group-members", {"group": group, "members": [name], "isRemove": False})[0] == 200
    assert group in mc("GET", "groups")[1]
    status, desc = mc("GET", f"group?group={group}")
    assert (status, desc["name"], desc["members"], desc["status"]) == (200, group, [name], "enabled")
    assert mc("PUT", f"set-group-status?group={group}&status=disabled")[0] == 200
    assert mc("GET", f"group?group={group}")[1]["status"] == "disabled"
    assert mc("PUT", "update-group-members", {"group": group, "members": [name], "isRemove": True})[0] == 200
    assert mc("PUT", "update-group-members", {"group": group, "members": [], "isRemove": True})[0] == 200
    assert group not in mc("GET", "groups")[1]

    status, err = mc("PUT", "add-user?accessKey=x", b"encrypted")
    assert (status, err["Code"]) == (501, "NotImplemented")
    assert mc("PUT", f"set-user-or-group-policy?policyName=&userOrGroup={name}&isGroup=false")[0] == 400
    assert mc("PUT", f"set-user-or-group-policy?policyName=readonly&userOrGroup={name}&isGroup=false")[0] == 200
    assert mc("DELETE", f"remove-canned-policy?name={pname}")[0] == 200
    assert mc("DELETE", f"remove-user?accessKey={name}")[0] == 200
    assert mc("GET", f"user-info?accessKey={name}")[0] == 404
    _, reader = new_user(endpoint, "readonly")
    creds = reader._request_signer._credentials
    status, err = signed_admin_call(endpoint, creds.access_key, creds.secret_key, "GET", "groups", None,
                                    prefix="/minio/admin/v3/")
    assert (status, err["Code"]) == (403, "AccessDenied")


def test_coffer_admin_session_create_gives_working_narrowed_credentials(endpoint, s3, tmp_path):
    bucket = unique_bucket("sess")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    name = f"u-{uuid.uuid4().hex[:8]}"
    user = admin_json(endpoint, "user", "add", name, "--policy", "readwrite")
    narrow = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    path = tmp_path / "narrow.json"
    path.write_text(json.dumps(narrow))
    creds = admin_json(endpoint, "session", "create", "--duration", "15m", "--policy", str(path),
                       access_key=user["access_key"], secret_key=user["secret_key"])
    assert set(creds) == {"access_key", "secret_key", "session_token", "expiration"}
    session = client_for(endpoint, creds["access_key"], creds["secret_key"], creds["session_token"])
    assert session.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    with pytest.raises(ClientError) as e:
        session.put_object(Bucket=bucket, Key="k2", Body=b"x")
    assert error_code(e) == "AccessDenied"
