#!/usr/bin/env python3
"""Turn an s3s-e2e run into a per-case pass/fail report and an exit status.

Usage: s3s_e2e_report.py LIST_FILE JSON_REPORT S3S_E2E_EXIT_CODE [KNOWN_FAILURES_FILE [OUTPUT_FILE]]

LIST_FILE is the output of `s3s-e2e --list` (every registered case, as suite/fixture/case), JSON_REPORT the file
written by `s3s-e2e --json` (may be missing when s3s-e2e crashed). Known failures come from KNOWN_FAILURES_FILE (one
entry a line, `#` comments) and from the env variable COFFER_E2E_ALLOW_FAIL (entries separated by spaces or commas);
an entry is a case path or a shell-style glob (`advanced/*`, `*/STS/*`). OUTPUT_FILE is what s3s-e2e printed: the
report only says PANICKED, so the panic messages are taken from there (cases run one at a time, in report order).

Why not just s3s-e2e's exit code: s3s-test 0.14.1 reports a suite or fixture whose *setup* failed as passed with no
cases (and ignores teardown failures), so a server that cannot even create the test bucket would pass. Here every
listed case that did not run counts as failed, and failed setups/teardowns show up as `suite/fixture/(setup)` and
`suite/fixture/(teardown)` pseudo-cases.

Exit status: 0 when every failure is a known failure, 1 otherwise (2 for bad input).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fn_result(summary):
    """Return (ok, message) for an FnSummary (or None)."""
    if summary is None:
        return True, ""
    result = summary.get("result")
    if result == "Ok":
        return True, ""
    if result == "Panicked":
        return False, "PANICKED"
    if isinstance(result, dict) and "Err" in result:
        return False, "ERROR " + str(result["Err"])
    return False, f"unknown result {result!r}"


def read_list(path):
    cases = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = ANSI.sub("", line).strip()
            if line.count("/") >= 2:
                cases.append(line)
    return cases


PANIC = re.compile(r"^thread '.*' (?:\(\d+\) )?panicked at (.*):$")


def read_panics(path):
    """The messages of the panics s3s-e2e printed, in order: ["file:line: message", ...]."""
    if not path or not os.path.exists(path):
        return []
    panics = []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [ANSI.sub("", line.rstrip("\n")) for line in f]
    for i, line in enumerate(lines):
        m = PANIC.match(line)
        if m:
            msg = lines[i + 1] if i + 1 < len(lines) else ""
            panics.append(f"{msg} ({m.group(1)})")
    return panics


def read_allow(path):
    entries = []
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    entries.append(line)
    env = os.environ.get("COFFER_E2E_ALLOW_FAIL", "")
    entries += [e for e in re.split(r"[\s,]+", env) if e]
    return entries


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    list_file, json_file, tool_rc = argv[1], argv[2], int(argv[3])
    allow = read_allow(argv[4] if len(argv) > 4 else None)

    def known(path):
        return any(fnmatch.fnmatchcase(path, pat) for pat in allow)

    panics = iter(read_panics(argv[5] if len(argv) > 5 else None))

    def result_of(summary):
        ok, msg = fn_result(summary)
        if msg == "PANICKED":
            msg = "PANICKED: " + next(panics, "(message not found in the output)")
        return ok, msg

    listed = read_list(list_file)
    # path -> (status, duration_ms, message); status in PASS, FAIL, IGNORED, NOTRUN
    results: dict[str, tuple[str, float, str]] = {}
    report = None
    if os.path.exists(json_file) and os.path.getsize(json_file) > 0:
        with open(json_file, encoding="utf-8") as f:
            report = json.load(f)

    blocked: dict[str, str] = {}  # suite or suite/fixture prefix -> why its cases did not run
    if report is None:
        blocked[""] = f"s3s-e2e wrote no report (exit code {tool_rc})"
    else:
        for suite in report.get("suites", []):  # in execution order, so panics match up
            sname = suite["name"]
            ok, msg = result_of(suite.get("setup"))
            if not ok:
                results[f"{sname}/(setup)"] = ("FAIL", suite["setup"].get("duration_ms", 0.0), msg)
                blocked[sname + "/"] = f"suite setup failed: {msg}"
            for fixture in suite.get("fixtures", []):
                fpath = f"{sname}/{fixture['name']}"
                ok, msg = result_of(fixture.get("setup"))
                if not ok:
                    results[f"{fpath}/(setup)"] = ("FAIL", fixture["setup"].get("duration_ms", 0.0), msg)
                    blocked[fpath + "/"] = f"fixture setup failed: {msg}"
                for case in fixture.get("cases", []):
                    path = f"{fpath}/{case['name']}"
                    if case.get("ignored"):
                        results[path] = ("IGNORED", 0.0, "")
                    elif case.get("passed"):
                        results[path] = ("PASS", case.get("duration_ms", 0.0), "")
                    else:
                        _, msg = result_of(case.get("run"))
                        results[path] = ("FAIL", case.get("duration_ms", 0.0), msg or "failed")
                ok, msg = result_of(fixture.get("teardown"))
                if not ok:
                    results[f"{fpath}/(teardown)"] = ("FAIL", fixture["teardown"].get("duration_ms", 0.0), msg)
            ok, msg = result_of(suite.get("teardown"))
            if not ok:
                results[f"{sname}/(teardown)"] = ("FAIL", suite["teardown"].get("duration_ms", 0.0), msg)

    for path in listed:
        if path not in results:
            why = next((v for k, v in blocked.items() if path.startswith(k)), "not in the report")
            results[path] = ("NOTRUN", 0.0, why)
    if not listed and report is None:
        results["(s3s-e2e)"] = ("NOTRUN", 0.0, f"no case list and no report (exit code {tool_rc})")

    passed = failed = skipped = 0
    unexpected, known_failed, xpassed = [], [], []
    print(f"{'result':<13} {'time':>10}  case")
    for path in sorted(results, key=lambda p: (listed.index(p) if p in listed else len(listed), p)):
        status, ms, msg = results[path]
        if status == "PASS":
            passed += 1
            label = "PASS"
            if known(path):
                label = "PASS (XPASS)"
                xpassed.append(path)
        elif status == "IGNORED":
            skipped += 1
            label = "IGNORED"
        elif known(path):
            skipped += 1
            label = "FAIL (known)"
            known_failed.append(path)
        else:
            failed += 1
            label = "FAIL" if status == "FAIL" else "NOT RUN"
            unexpected.append(path)
        print(f"{label:<13} {ms:>8.1f}ms  {path}")
        if msg and status != "PASS":
            for line in msg.splitlines()[:20]:
                print(f"{'':<26}{line}")

    print()
    if known_failed:
        print(f"known failures, allowed and counted as skipped ({len(known_failed)}): {' '.join(known_failed)}")
    if xpassed:
        print(f"listed as known failures but passed, remove them from the list: {' '.join(xpassed)}")
    if unexpected:
        print(f"unexpected failures ({len(unexpected)}): {' '.join(unexpected)}")
    if tool_rc not in (0, 1):
        print(f"s3s-e2e itself exited with code {tool_rc}")
    print(f"s3s-e2e: {passed} passed, {failed} failed, {skipped} skipped")
    if failed or tool_rc not in (0, 1) or passed + failed + skipped == 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
