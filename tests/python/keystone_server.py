"""A real Keystone (the `keystone` package from PyPI, sqlite, gunicorn) for the Swift tests, set up with
keystone-manage and driven through its REST API. The virtualenv comes from scripts/test
(${COFFER_KEYSTONE_VENV:-~/.cache/coffer/keystone-venv}, tests/python/keystone-requirements.txt)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ADMIN_PASSWORD = "adminpw"


def venv() -> Path:
    return Path(os.environ.get("COFFER_KEYSTONE_VENV", Path.home() / ".cache" / "coffer" / "keystone-venv"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KeystoneServer:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v3"
        self.proc: subprocess.Popen | None = None
        self._admin_token: str | None = None

    def start(self) -> KeystoneServer:
        d = self.dir
        for sub in ("etc", "fernet", "cred"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        conf = d / "etc" / "keystone.conf"
        conf.write_text(
            f"[DEFAULT]\nlog_file = {d}/keystone.log\n[database]\nconnection = sqlite:///{d}/keystone.db\n"
            # bcrypt's minimum cost: every token request checks a password, and the default cost (12) makes
            # each one take a quarter of a second of CPU here.
            "[identity]\npassword_hash_rounds = 4\n"
            f"[token]\nprovider = fernet\n[fernet_tokens]\nkey_repository = {d}/fernet\n"
            f"[fernet_receipts]\nkey_repository = {d}/fernet\n[credential]\nkey_repository = {d}/cred\n"
        )
        env = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=str(conf))
        manage = [str(venv() / "bin" / "keystone-manage"), "--config-file", str(conf)]
        for args in (
            ["db_sync"],
            ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
            ["credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
            ["bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-region-id", "RegionOne",
             "--bootstrap-admin-url", self.url + "/", "--bootstrap-internal-url", self.url + "/",
             "--bootstrap-public-url", self.url + "/"],
        ):
            subprocess.run(manage + args, check=True, env=env, capture_output=True, timeout=300)
        # Keystone parses the process arguments at import time, so gunicorn needs a wrapper module.
        (d / "ks_wsgi.py").write_text("import sys\nsys.argv = sys.argv[:1]\nfrom keystone.wsgi.api import application\n")
        log = open(d / "gunicorn.log", "ab")
        self.proc = subprocess.Popen(
            [str(venv() / "bin" / "gunicorn"), "--chdir", str(d), "--bind", f"127.0.0.1:{self.port}",
             "--workers", "1", "--threads", "4", "ks_wsgi:application"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url, timeout=2):
                    return self
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None:
                    break
                time.sleep(0.3)
        raise RuntimeError(f"keystone did not start: {(d / 'gunicorn.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def _call(self, method: str, path: str, body=None, token: str | None = None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"}
        if token or self._admin_token:
            headers["x-auth-token"] = token or self._admin_token
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.headers, (json.loads(text) if text else None)

    def token(self, user: str, password: str, project: str) -> tuple[str, str]:
        """A project-scoped token and the project's id."""
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        saved, self._admin_token = self._admin_token, None
        try:
            headers, answer = self._call("POST", "/auth/tokens", body)
        finally:
            self._admin_token = saved
        return headers["x-subject-token"], answer["token"]["project"]["id"]

    def admin(self) -> None:
        self._admin_token, _ = self.token("admin", ADMIN_PASSWORD, "admin")

    def role_id(self, name: str) -> str:
        _, answer = self._call("GET", f"/roles?name={name}")
        if answer["roles"]:
            return answer["roles"][0]["id"]
        _, created = self._call("POST", "/roles", {"role": {"name": name}})
        return created["role"]["id"]

    def project(self, name: str) -> str:
        _, answer = self._call("GET", f"/projects?name={name}")
        if answer["projects"]:
            return answer["projects"][0]["id"]
        _, created = self._call("POST", "/projects", {"project": {"name": name, "domain_id": "default"}})
        return created["project"]["id"]

    def user(self, name: str, password: str, project: str, role: str) -> str:
        _, created = self._call("POST", "/users", {"user": {"name": name, "password": password, "domain_id": "default"}})
        user_id = created["user"]["id"]
        self._call("PUT", f"/projects/{self.project(project)}/users/{user_id}/roles/{self.role_id(role)}")
        return user_id
