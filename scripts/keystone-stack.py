#!/usr/bin/env python3
"""A real Keystone set up for Swift's functional tests (scripts/swift-suite with COFFER_SWIFT_AUTH=keystone).

    keystone-stack.py WORKDIR SWIFT_PORT URL_FILE

Starts Keystone (tests/python/keystone_server.py, its virtualenv from scripts/test) and creates what the suite's
test.conf names: projects `test` and `test2`; `tester` (member of test, an operator of its account), `tester2`
(member of test2), `tester3` (reader of test, not an operator); the gateway's service user `swift` (service and
admin roles in project `service`); the object-store endpoint on SWIFT_PORT. Writes Keystone's v3 URL to URL_FILE,
then runs until SIGTERM, and stops Keystone."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from keystone_server import KeystoneServer  # noqa: E402


def main() -> None:
    workdir, swift_port, url_file = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    keystone = KeystoneServer(workdir).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    try:
        keystone.admin()
        keystone.project("service")
        swift_id = keystone.user("swift", "swiftpw", "service", "service")
        keystone._call("PUT", f"/projects/{keystone.project('service')}/users/{swift_id}/roles/{keystone.role_id('admin')}")
        keystone.project("test")
        keystone.project("test2")
        keystone.user("tester", "testing", "test", "member")
        keystone.user("tester2", "testing2", "test2", "member")
        keystone.user("tester3", "testing3", "test", "reader")
        _, service = keystone._call("POST", "/services", {"service": {"type": "object-store", "name": "swift"}})
        keystone._call("POST", "/endpoints", {"endpoint": {
            "service_id": service["service"]["id"], "interface": "public", "region_id": "RegionOne",
            "url": f"http://127.0.0.1:{swift_port}/v1/AUTH_%(project_id)s"}})
        url_file.write_text(keystone.url)
        stopped.wait()
    finally:
        keystone.stop()


if __name__ == "__main__":
    main()
