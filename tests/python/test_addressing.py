"""Virtual-hosted-style addressing (with --domain) and SigV2 signatures, through boto3."""

from __future__ import annotations

import socket

import boto3
import pytest
from botocore.config import Config
from conftest import ACCESS_KEY, REGION, SECRET_KEY, CofferServer, make_client, unique_bucket


@pytest.fixture(scope="module")
def domain_server(workdir):
    d = workdir / "domain-server"
    d.mkdir()
    srv = CofferServer(d, ["--domain", "s3.coffer.test"]).start()
    try:
        yield srv
    finally:
        srv.discard()


@pytest.fixture
def resolve_test_domain(monkeypatch):
    """BUCKET.s3.coffer.test resolves to loopback, as wildcard DNS would in a deployment."""
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith("s3.coffer.test"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_virtual_hosted_style(domain_server, resolve_test_domain):
    virtual = boto3.session.Session().client(
        "s3",
        endpoint_url=f"http://s3.coffer.test:{domain_server.port}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(region_name=REGION, signature_version="s3v4", s3={"addressing_style": "virtual"}),
    )
    name = unique_bucket("vhost")
    # Path style keeps working next to virtual-hosted style on the same server.
    path = make_client(domain_server.endpoint)
    path.create_bucket(Bucket=name)
    virtual.put_object(Bucket=name, Key="dir/v.txt", Body=b"virtual")
    assert path.get_object(Bucket=name, Key="dir/v.txt")["Body"].read() == b"virtual"
    keys = [o["Key"] for o in virtual.list_objects_v2(Bucket=name)["Contents"]]
    assert keys == ["dir/v.txt"]
    virtual.delete_object(Bucket=name, Key="dir/v.txt")
    virtual.delete_bucket(Bucket=name)


def test_sigv2_signatures(endpoint, s3):
    """SigV2 as far as s3s 0.14.1 verifies it: service and object requests. Bucket-level requests
    (ListObjects, CreateBucket) fail there because s3s builds the V2 canonical resource without
    the trailing slash botocore signs; the bucket is therefore made with SigV4."""
    v2 = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(region_name=REGION, signature_version="s3", s3={"addressing_style": "path"}),
    )
    name = unique_bucket("sigv2")
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in v2.list_buckets()["Buckets"]]
    v2.put_object(Bucket=name, Key="k", Body=b"signed with v2")
    assert v2.get_object(Bucket=name, Key="k")["Body"].read() == b"signed with v2"
    v2.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
