"""The server's own lifecycle: clean exit on SIGTERM, and data that survives a restart on the same directory."""

from __future__ import annotations

import hashlib
import os
import urllib.request

from conftest import CofferServer, make_client


def test_health_endpoints(endpoint):
    for path in ("/health/live", "/health/ready"):
        with urllib.request.urlopen(endpoint + path, timeout=5) as r:
            assert r.status == 200, path


def test_restart_keeps_data(tmp_path):
    body = os.urandom(3 * 1024 * 1024 + 17)
    srv = CofferServer(tmp_path).start()
    try:
        s3 = make_client(srv.endpoint)
        s3.create_bucket(Bucket="persist")
        s3.put_object(Bucket="persist", Key="obj", Body=body, Metadata={"k": "v"})
        s3.put_object(Bucket="persist", Key="small", Body=b"tiny")
    finally:
        srv.stop_cleanly()

    srv = CofferServer(tmp_path).start()
    try:
        s3 = make_client(srv.endpoint)
        assert "persist" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        got = s3.get_object(Bucket="persist", Key="obj")
        assert hashlib.sha256(got["Body"].read()).hexdigest() == hashlib.sha256(body).hexdigest()
        assert got["Metadata"] == {"k": "v"}
        assert s3.get_object(Bucket="persist", Key="small")["Body"].read() == b"tiny"
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="persist")["Contents"]] == ["obj", "small"]
    finally:
        srv.discard()
