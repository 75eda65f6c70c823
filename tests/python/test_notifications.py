"""Bucket notifications through boto3: queue configurations naming the server's webhook targets,
S3 event JSON POSTed for puts and deletes (filters honoured), and events kept and retried while a
webhook is down."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.exceptions import ClientError

from conftest import CofferServer, free_port, make_client, unique_bucket


class Webhook:
    """A tiny HTTP endpoint on 127.0.0.1 that records the JSON bodies POSTed to it."""

    def __init__(self, port: int):
        self.port = port
        self.records: list[dict] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None

    def start(self) -> Webhook:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook.lock:
                    hook.paths.append(self.path)
                    hook.records.extend(json.loads(body)["Records"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    def wait_for(self, count: int, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.records) >= count:
                    return list(self.records)
            time.sleep(0.1)
        with self.lock:
            raise AssertionError(f"expected {count} events, got {self.records}")


@pytest.fixture(scope="module")
def hooks(workdir):
    up = Webhook(free_port()).start()
    down_port = free_port()
    d = workdir / "notify-server"
    d.mkdir()
    srv = CofferServer(d, [
        "--notify-webhook", f"hook=http://127.0.0.1:{up.port}/events",
        "--notify-webhook", f"late=http://127.0.0.1:{down_port}/later",
    ]).start()
    try:
        yield srv, up, down_port
    finally:
        srv.discard()
        up.stop()


def queue(arn: str, events: list[str], prefix: str | None = None, suffix: str | None = None, qid: str = "q1"):
    config = {"Id": qid, "QueueArn": arn, "Events": events}
    rules = []
    if prefix is not None:
        rules.append({"Name": "prefix", "Value": prefix})
    if suffix is not None:
        rules.append({"Name": "suffix", "Value": suffix})
    if rules:
        config["Filter"] = {"Key": {"FilterRules": rules}}
    return config


def test_configuration_round_trip_and_unknown_destinations(hooks):
    srv, _, _ = hooks
    s3 = make_client(srv.endpoint)
    name = unique_bucket("nc")
    s3.create_bucket(Bucket=name)
    assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(Bucket=name)

    config = {"QueueConfigurations": [
        queue("arn:coffer:sqs::hook:webhook", ["s3:ObjectCreated:*"], prefix="img/", suffix=".jpg"),
        queue("arn:minio:sqs::late:webhook", ["s3:ObjectRemoved:Delete"], qid="q2"),
    ]}
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=config)
    got = s3.get_bucket_notification_configuration(Bucket=name)
    assert got["QueueConfigurations"] == config["QueueConfigurations"]

    for arn in ["arn:coffer:sqs::nope:webhook", "arn:aws:sqs:us-east-1:123456789012:q"]:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={
                "QueueConfigurations": [queue(arn, ["s3:ObjectCreated:*"])]})
        err = e.value.response["Error"]
        assert (err["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidArgument", 400)
        assert "Unable to validate the following destination configurations" in err["Message"]
    assert s3.get_bucket_notification_configuration(Bucket=name)["QueueConfigurations"] == \
        config["QueueConfigurations"], "a refused configuration changes nothing"

    # An empty configuration turns notifications off.
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={})
    assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(Bucket=name)


def test_puts_and_deletes_are_posted_with_filters_honoured(hooks):
    srv, up, _ = hooks
    s3 = make_client(srv.endpoint)
    name = unique_bucket("ne")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={"QueueConfigurations": [
        queue("arn:coffer:sqs::hook:webhook", ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"], prefix="in/",
              suffix=".txt")]})
    before = len(up.records)
    put = s3.put_object(Bucket=name, Key="in/a b.txt", Body=b"hello")
    s3.put_object(Bucket=name, Key="out/x.txt", Body=b"ignored: prefix")
    s3.put_object(Bucket=name, Key="in/x.bin", Body=b"ignored: suffix")
    upload = s3.create_multipart_upload(Bucket=name, Key="in/multi.txt")
    part = s3.upload_part(Bucket=name, Key="in/multi.txt", UploadId=upload["UploadId"], PartNumber=1, Body=b"p")
    s3.complete_multipart_upload(Bucket=name, Key="in/multi.txt", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    s3.delete_object(Bucket=name, Key="in/a b.txt")

    records = [r for r in up.wait_for(before + 3) if r["s3"]["bucket"]["name"] == name]
    assert [(r["eventName"], r["s3"]["object"]["key"]) for r in records] == [
        ("ObjectCreated:Put", "in/a+b.txt"),
        ("ObjectCreated:CompleteMultipartUpload", "in/multi.txt"),
        ("ObjectRemoved:Delete", "in/a+b.txt"),
    ]
    first = records[0]
    assert first["eventVersion"] == "2.1"
    assert first["eventSource"] == "aws:s3"
    assert first["awsRegion"] == "us-east-1"
    assert first["eventTime"].endswith("Z")
    assert first["s3"]["configurationId"] == "q1"
    assert first["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{name}"
    assert first["s3"]["object"]["size"] == 5
    assert first["s3"]["object"]["eTag"] == put["ETag"].strip('"')
    sequencers = [r["s3"]["object"]["sequencer"] for r in records]
    assert sequencers == sorted(sequencers), "sequencers increase"
    assert set(up.paths) == {"/events"}

    # Versioned: a delete without a version id makes a delete marker.
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.delete_object(Bucket=name, Key="in/multi.txt")
    records = [r for r in up.wait_for(before + 4) if r["s3"]["bucket"]["name"] == name]
    assert records[-1]["eventName"] == "ObjectRemoved:DeleteMarkerCreated"
    assert records[-1]["s3"]["object"]["versionId"]


def test_events_survive_a_webhook_that_is_down_for_a_while(hooks):
    srv, _, down_port = hooks
    s3 = make_client(srv.endpoint)
    name = unique_bucket("nd")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={"QueueConfigurations": [
        queue("arn:coffer:sqs::late:webhook", ["s3:ObjectCreated:Put"])]})
    for key in ["one", "two"]:
        s3.put_object(Bucket=name, Key=key, Body=b"x")
    # Nothing listens yet: deliveries fail and are retried with backoff.
    time.sleep(3)
    late = Webhook(down_port).start()
    try:
        records = late.wait_for(2, timeout=60)
        assert [r["s3"]["object"]["key"] for r in records] == ["one", "two"], "delivered in order"
        assert set(late.paths) == {"/later"}
    finally:
        late.stop()


def test_copies_and_form_uploads_have_their_own_event_names(hooks):
    import requests

    srv, up, _ = hooks
    s3 = make_client(srv.endpoint)
    name = unique_bucket("nk")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="src", Body=b"source")
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={"QueueConfigurations": [
        queue("arn:coffer:sqs::hook:webhook", ["s3:ObjectCreated:Copy", "s3:ObjectCreated:Post"])]})
    before = len(up.records)
    s3.put_object(Bucket=name, Key="plain", Body=b"not subscribed")
    s3.copy_object(Bucket=name, Key="copied", CopySource={"Bucket": name, "Key": "src"})
    post = s3.generate_presigned_post(name, "posted", ExpiresIn=300)
    r = requests.post(post["url"], data=post["fields"], files={"file": ("f.txt", b"form body")}, timeout=30)
    assert r.status_code == 204, r.text
    records = [r for r in up.wait_for(before + 2) if r["s3"]["bucket"]["name"] == name]
    assert [(r["eventName"], r["s3"]["object"]["key"]) for r in records] == [
        ("ObjectCreated:Copy", "copied"),
        ("ObjectCreated:Post", "posted"),
    ]
    assert records[1]["s3"]["object"]["size"] == len(b"form body")
