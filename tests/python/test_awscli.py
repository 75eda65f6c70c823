"""The aws cli (v1, from the virtualenv) against coffer: mb, cp (incl. multipart), ls, sync, rm --recursive, rb."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

import pytest
from conftest import unique_bucket

MiB = 1024 * 1024


@pytest.fixture
def aws(aws_bin, aws_env, endpoint):
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(aws_bin), "--endpoint-url", endpoint, *args]
        p = subprocess.run(
            cmd, check=False, env=aws_env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
        )
        if check and p.returncode != 0:
            pytest.fail(
                f"`aws {' '.join(args)}` exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}", pytrace=False
            )
        return p

    return run


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(root) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = sha256(p)
    return out


def test_awscli_s3_workflow(aws, tmp_path):
    bucket = unique_bucket("cli")
    url = f"s3://{bucket}"

    out = aws("s3", "mb", url).stdout
    assert f"make_bucket: {bucket}" in out
    try:
        assert bucket in aws("s3", "ls").stdout

        # cp up: a small file and a 20 MiB one (above the cli's 8 MiB multipart threshold: 3 parts).
        small = tmp_path / "small.txt"
        small.write_text("hello from the aws cli\n")
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(20 * MiB))
        aws("s3", "cp", str(small), f"{url}/small.txt")
        aws("s3", "cp", str(big), f"{url}/dir/big.bin")

        listing = aws("s3", "ls", f"{url}/").stdout
        assert "small.txt" in listing
        assert "PRE dir/" in listing
        listing = aws("s3", "ls", "--recursive", url).stdout
        assert "dir/big.bin" in listing
        assert str(20 * MiB) in listing

        head = aws("s3api", "head-object", "--bucket", bucket, "--key", "dir/big.bin").stdout
        assert '"ContentLength": 20971520' in head
        assert '-3\\""' in head, head  # multipart ETag: "<md5>-3"

        # cp down and compare.
        down = tmp_path / "down"
        down.mkdir()
        aws("s3", "cp", f"{url}/small.txt", str(down / "small.txt"))
        aws("s3", "cp", f"{url}/dir/big.bin", str(down / "big.bin"))
        assert sha256(down / "small.txt") == sha256(small)
        assert sha256(down / "big.bin") == sha256(big)

        # sync a small tree up and back.
        tree = tmp_path / "tree"
        for rel, size in [("a.txt", 10), ("sub/b.bin", 70_000), ("sub/deeper/c.bin", 1), ("empty.dat", 0)]:
            p = tree / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(os.urandom(size))
            past = time.time() - 3600  # older than the uploads, so a second sync sees nothing to do
            os.utime(p, (past, past))
        aws("s3", "sync", str(tree), f"{url}/tree")
        back = tmp_path / "back"
        aws("s3", "sync", f"{url}/tree", str(back))
        assert tree_digest(back) == tree_digest(tree)
        # A second sync has nothing to do.
        assert aws("s3", "sync", str(tree), f"{url}/tree").stdout.strip() == ""

        # rm --recursive empties the bucket, then rb removes it.
        out = aws("s3", "rm", "--recursive", url).stdout
        assert out.count("delete:") == 2 + 4
        assert aws("s3", "ls", "--recursive", url, check=False).stdout.strip() == ""
        out = aws("s3", "rb", url).stdout
        assert f"remove_bucket: {bucket}" in out
        assert bucket not in aws("s3", "ls").stdout
    finally:
        aws("s3", "rb", "--force", url, check=False)  # cleanup after a failure; fails harmlessly otherwise


def test_awscli_errors(aws):
    missing = unique_bucket("nope")
    p = aws("s3", "ls", f"s3://{missing}", check=False)
    assert p.returncode != 0
    assert "NoSuchBucket" in p.stderr
    p = aws("s3", "mb", "s3://Invalid_Name", check=False)
    assert p.returncode != 0
    assert "InvalidBucketName" in p.stderr
