"""Fixtures that run the real `coffer server` binary and point real S3 clients (boto3, aws cli) at it.

The binary comes from COFFER_BIN, else $CARGO_TARGET_DIR/debug/coffer, else <repo>/target/debug/coffer.
Every test gets clients for one shared server (session scope); tests use unique bucket names, so they do not
interfere. `CofferServer` can also be used directly by tests that need their own server (restart tests).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
ACCESS_KEY = "coffer-test-admin"
SECRET_KEY = "coffer-test-admin-secret"
REGION = "us-east-1"
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20


def coffer_bin() -> Path:
    candidates = []
    if os.environ.get("COFFER_BIN"):
        candidates.append(Path(os.environ["COFFER_BIN"]))
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "coffer")
    candidates.append(REPO / "target" / "debug" / "coffer")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    pytest.fail(
        "no coffer binary found (tried: " + ", ".join(map(str, candidates)) + "); build it with "
        "`cargo build -p coffer` or set COFFER_BIN",
        pytrace=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_aws_env(tmp: Path) -> dict[str, str]:
    """The process environment without any AWS_* variable of the host, plus throwaway config files and our keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    config = tmp / "aws-config"
    creds = tmp / "aws-credentials"
    config.write_text("[default]\nregion = us-east-1\n")
    creds.write_text("")
    env.update(
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(creds),
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
    )
    return env


class CofferServer:
    """One `coffer server DIR --address 127.0.0.1:PORT` process with its log in DIR/../server.log."""

    def __init__(self, workdir: Path, extra_args: list[str] | None = None):
        self.workdir = workdir
        self.data = workdir / "data"
        self.log_path = workdir / "server.log"
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no server log)"
        return "\n".join(text[-lines:])

    def start(self) -> CofferServer:
        binary = coffer_bin()
        env = dict(os.environ, COFFER_ROOT_USER=ACCESS_KEY, COFFER_ROOT_PASSWORD=SECRET_KEY)
        env.setdefault("RUST_LOG", "info")
        for attempt in range(3):  # a free port can be taken between free_port() and the server's bind
            self.port = free_port()
            cmd = [str(binary), "server", str(self.data), "--address", f"127.0.0.1:{self.port}", *self.extra_args]
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== {' '.join(cmd)}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=self.workdir
                )
            if self._wait_ready():
                return self
            if attempt < 2 and "in use" in self.log_tail(20).lower():
                continue
            break
        self.kill()
        pytest.fail(
            f"coffer server did not become ready on {self.endpoint} within {READY_TIMEOUT_S}s "
            f"(exit code {self.proc.returncode}); server log {self.log_path}:\n{self.log_tail()}",
            pytrace=False,
        )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint}/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> int:
        """SIGTERM, wait up to STOP_TIMEOUT_S, return the exit code (killing it and failing if it hangs)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"coffer server did not exit within {STOP_TIMEOUT_S}s of SIGTERM; log:\n{self.log_tail()}"
                )
        return self.proc.returncode

    def stop_cleanly(self) -> None:
        rc = self.stop()
        assert rc == 0, f"coffer server exited with code {rc} after SIGTERM; log:\n{self.log_tail()}"

    def discard(self) -> None:
        """`stop_cleanly`, then delete the data folder (kept with COFFER_KEEP_TMP=1; the log stays). A session
        starts over a dozen servers; each holds preallocated chunk space and RocksDB files until deleted, and
        together they filled a CI machine's disk before the session's end."""
        self.stop_cleanly()
        if os.environ.get("COFFER_KEEP_TMP") != "1":
            shutil.rmtree(self.data, ignore_errors=True)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="coffer-pytest-"))
    yield d
    if os.environ.get("COFFER_KEEP_TMP") == "1":
        print(f"\nkept {d}", file=sys.stderr)
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def aws_env(workdir) -> dict[str, str]:
    """Environment for aws cli subprocesses: isolated from the host's AWS config and credentials."""
    return clean_aws_env(workdir)


@pytest.fixture(scope="session", autouse=True)
def _isolate_boto3_from_host(aws_env):
    """boto3 in this process must not read ~/.aws either."""
    saved = dict(os.environ)
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[k]
    os.environ.update({k: v for k, v in aws_env.items() if k.startswith("AWS_")})
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def server(workdir):
    """The shared server; at the end of the session it must exit with code 0 within 20 s of SIGTERM."""
    d = workdir / "server"
    d.mkdir()
    srv = CofferServer(d).start()
    try:
        yield srv
    finally:
        srv.discard()


@pytest.fixture(scope="session")
def endpoint(server) -> str:
    return server.endpoint


def make_client(endpoint: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY,
                session_token: str | None = None, **config):
    config.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
    cfg = Config(
        region_name=REGION,
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        connect_timeout=5,
        read_timeout=120,
        **config,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        config=cfg,
    )


def client_for_keys(endpoint: str, access_key: str, secret_key: str, session_token: str | None = None):
    """A boto3 S3 client for another identity (an IAM user, STS session credentials, a Swift tempauth user)."""
    return make_client(endpoint, access_key=access_key, secret_key=secret_key, session_token=session_token,
                       retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="session")
def s3(endpoint):
    return make_client(endpoint)


def unique_bucket(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def empty_and_delete_bucket(s3, bucket: str) -> None:
    try:
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)
    except s3.exceptions.NoSuchBucket:
        pass


@pytest.fixture
def bucket(s3):
    """A fresh bucket, emptied and deleted after the test."""
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    yield name
    empty_and_delete_bucket(s3, name)


@pytest.fixture(scope="session")
def aws_bin() -> Path:
    """The aws cli v1 of the virtualenv running pytest (never the host's)."""
    p = Path(sys.executable).parent / "aws"
    if not p.exists():
        pytest.fail(f"no aws cli next to {sys.executable}: install tests/python/requirements.txt", pytrace=False)
    return p
