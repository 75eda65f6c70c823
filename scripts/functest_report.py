#!/usr/bin/env python3
"""Check a run of Swift's functional tests against the list of tests expected to pass.

Used by scripts/s3api-suite (test/functional/s3api) and scripts/swift-suite (the Swift API tests, test/functional).

Usage: functest_report.py [--suite NAME] [--prefix DIR/] [--partial] JUNIT_XML EXPECTED_PASS_FILE [PYTEST_EXIT_CODE]

JUNIT_XML is pytest's --junitxml output; EXPECTED_PASS_FILE has one test id a line (`#` comments, blank lines
ignored), as this report prints them: the pytest node id relative to --prefix (default test/functional/s3api/),
e.g. `test_bucket.py::TestS3ApiBucket::test_bucket`. --suite names the suite in the output (default s3api). With
--partial (a run of a selection of tests) expected tests that did not run are not checked.

Prints every test that did not pass with its first message line, the most common of those messages, the expected
tests that did not pass, the tests that passed but are not in the list (add them), and the counts. Exit status: 1
when an expected test did not pass, when pytest did not finish normally (exit code other than 0 or 1) or when
nothing ran; 0 otherwise; 2 for bad input.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import xml.etree.ElementTree as ET

RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def test_id(case: ET.Element, prefix: str) -> str:
    """pytest node id relative to prefix, from classname (module.Class) and name.

    Not from the `file` attribute: for methods wrapped by a decorator of s3api/__init__.py it names __init__.py."""
    parts = case.get("classname", "").split(".")
    idx = next((i for i, p in enumerate(parts) if p[:1].isupper()), len(parts))
    path = "/".join(parts[:idx]) + ".py"
    if path.startswith(prefix):
        path = path[len(prefix) :]
    return "::".join([path, *parts[idx:], case.get("name", "")])


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            return line[:300]
    return ""


def read_junit(path: str, prefix: str) -> dict[str, tuple[str, str]]:
    """test id -> (status, message) with status in passed/skipped/failed/error (the worst when repeated)."""
    results: dict[str, tuple[str, str]] = {}
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        tid = test_id(case, prefix)
        status, msg = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                st = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                m = child.get("message") or first_line(child.text)
                if child.tag == "error" and child.text and "teardown" in (child.get("message") or ""):
                    m = m or "error in teardown"
                if RANK[st] > RANK[status]:
                    status, msg = st, first_line(m) or first_line(child.text)
        old = results.get(tid)
        if old is None or RANK[status] > RANK[old[0]]:
            results[tid] = (status, msg)
    return results


def read_expected(path: str) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(line)
    return out


def message_key(msg: str) -> str:
    """A failure message with the parts that differ between runs (random names, ids, long numbers) masked."""
    msg = re.sub(r"[0-9a-f]{16,}|[0-9a-f]{8}-[0-9a-f-]{27}|tx[0-9A-Za-z-]{10,}|\d{4,}(\.\d+)?", "…", msg)
    return msg[:160]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--suite", default="s3api", help="name of the suite in the output")
    parser.add_argument("--prefix", default="test/functional/s3api/", help="test ids are relative to this")
    parser.add_argument("--partial", action="store_true", help="a selection ran: do not require every expected test")
    parser.add_argument("junit")
    parser.add_argument("expected_file")
    parser.add_argument("pytest_rc", nargs="?", type=int, default=0)
    try:
        ns = parser.parse_args(argv[1:])
    except SystemExit:
        return 2
    suite, partial, junit, expected_file, pytest_rc = ns.suite, ns.partial, ns.junit, ns.expected_file, ns.pytest_rc
    expected = read_expected(expected_file)
    if not os.path.exists(junit) or os.path.getsize(junit) == 0:
        print(f"{suite}: no junit XML at {junit} (pytest exit code {pytest_rc}): nothing ran")
        return 1
    try:
        results = read_junit(junit, ns.prefix)
    except ET.ParseError as e:
        print(f"{suite}: cannot parse {junit}: {e}", file=sys.stderr)
        return 2

    counts = {k: 0 for k in RANK}
    for status, _ in results.values():
        counts[status] += 1

    print("tests that did not pass:")
    for tid in sorted(results):
        status, msg = results[tid]
        if status != "passed":
            mark = " [EXPECTED TO PASS]" if tid in expected else ""
            print(f"  {status.upper():<7} {tid}{mark}")
            if msg:
                print(f"          {msg}")
    print()

    groups = collections.Counter(
        (status, message_key(msg)) for status, msg in results.values() if status in ("failed", "error")
    )
    if groups:
        print("most common failure messages (random names and long numbers masked):")
        for (status, key), n in groups.most_common(15):
            print(f"  {n:4}  {status}: {key}")
        print()

    dupes = sorted({t for t in expected if expected.count(t) > 1})
    regressions = []
    for tid in expected:
        if tid in results:
            if results[tid][0] != "passed":
                regressions.append(f"{tid} ({results[tid][0]}: {results[tid][1]})")
        elif not partial:
            regressions.append(f"{tid} (did not run: not in the junit XML)")
    newly = sorted(t for t, (s, _) in results.items() if s == "passed" and t not in expected)

    if newly:
        print(f"passing but not in {os.path.basename(expected_file)}, add them ({len(newly)}):")
        for t in newly:
            print(f"  {t}")
        print()
    if dupes:
        print(f"listed more than once in {os.path.basename(expected_file)}: {' '.join(dupes)}")
    total = sum(counts.values())
    print(
        f"{suite}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped, "
        f"{counts['error']} errors ({total} tests; {len(expected)} expected to pass)"
    )
    rc = 0
    if regressions:
        print(f"REGRESSIONS: {len(regressions)} expected-to-pass tests did not pass:")
        for r in regressions:
            print(f"  {r}")
        rc = 1
    if pytest_rc not in (0, 1):
        print(f"pytest did not finish normally (exit code {pytest_rc}; 124/137 = killed by the overall timeout)")
        rc = 1
    if total == 0:
        print("no test ran")
        rc = 1
    if rc == 0:
        print(f"{suite}: ok, every expected-to-pass test passed")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
