#!/usr/bin/env bash
# Smoke run of coffer-loadtest against a fresh `coffer server` on a free loopback port (the `loadtest` step of
# scripts/test): a short mixed workload with --ceiling, then checks that the JSON has the contract's fields for the
# server and ceiling targets, that every measured operation is accounted for, and that there were no errors. It
# asserts no speed.
#
# Environment:
#   COFFER_BIN            server binary (default: $CARGO_TARGET_DIR/debug/coffer)
#   COFFER_LOADTEST_BIN   load generator (default: $CARGO_TARGET_DIR/debug/coffer-loadtest)
#   COFFER_KEEP_TMP=1     keep the temp dir (server data and log, results)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

COFFER_BIN="${COFFER_BIN:-$CARGO_TARGET_DIR/debug/coffer}"
LOADTEST_BIN="${COFFER_LOADTEST_BIN:-$CARGO_TARGET_DIR/debug/coffer-loadtest}"
[ -x "$COFFER_BIN" ] || die "no coffer binary at $COFFER_BIN (build the workspace first, or set COFFER_BIN)"
[ -x "$LOADTEST_BIN" ] || die "no coffer-loadtest binary at $LOADTEST_BIN (set COFFER_LOADTEST_BIN)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/coffer-loadtest.XXXXXX")"
server_pid=""
OPS=200

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local rc=$?
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 200); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$server_pid" 2>/dev/null && kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$tmp/server.log" ]; then
        log "last 40 lines of the server log ($tmp/server.log):"
        tail -n 40 "$tmp/server.log" >&2 || true
    fi
    if [ "${COFFER_KEEP_TMP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port="$(free_port)"
endpoint="http://127.0.0.1:$port"
log "starting $COFFER_BIN server $tmp/data --address 127.0.0.1:$port"
COFFER_ROOT_USER=loadtest-admin COFFER_ROOT_PASSWORD=loadtest-secret-key \
    "$COFFER_BIN" server "$tmp/data" --address "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null --max-time 2 "$endpoint/health/ready" 2>/dev/null; do
    kill -0 "$server_pid" 2>/dev/null || die "server exited before becoming ready"
    [ "$SECONDS" -lt "$deadline" ] || die "server not ready after 60 s"
    sleep 0.2
done
log "server ready at $endpoint"

# Endpoint and keys through their environment variables, the rest as flags.
COFFER_LOADTEST_ENDPOINT="$endpoint" AWS_ACCESS_KEY_ID=loadtest-admin AWS_SECRET_ACCESS_KEY=loadtest-secret-key \
    timeout -k 10 300 "$LOADTEST_BIN" mixed --ops "$OPS" --concurrency 4 --size 1KiB..256KiB --ceiling \
    --objects 64 --warmup 1s --verify-every 4 --quiet --json "$tmp/results.json" --plot "$tmp/results.png"

python3 - "$tmp/results.json" "$tmp/results.png" "$OPS" <<'EOF'
import json, sys

path, png, ops = sys.argv[1], sys.argv[2], int(sys.argv[3])
doc = json.load(open(path))
problems = []
for field in ("workload", "size", "concurrency", "duration", "endpoint", "timestamp", "results"):
    if field not in doc:
        problems.append(f"top level: no {field}")
row_fields = ("target", "op", "ops_per_s", "mib_per_s", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
              "errors", "ops", "bytes", "errors_by_code")
for target in ("server", "ceiling"):
    rows = [r for r in doc.get("results", []) if r.get("target") == target]
    if not rows:
        problems.append(f"no results for target {target}")
        continue
    seen_ops = {r.get("op") for r in rows}
    for op in ("GET", "PUT"):
        if op not in seen_ops:
            problems.append(f"{target}: no {op} row (ops: {sorted(seen_ops)})")
    for r in rows:
        where = f"{target} {r.get('op')}"
        for field in row_fields:
            if field not in r:
                problems.append(f"{where}: no {field}")
        if r.get("errors") != 0 or r.get("errors_by_code"):
            problems.append(f"{where}: errors {r.get('errors')} {r.get('errors_by_code')}")
        if target == "server" and not isinstance(r.get("ratio_to_ceiling"), (int, float)):
            problems.append(f"{where}: no ratio_to_ceiling")
    total = sum(r.get("ops", 0) + r.get("errors", 0) for r in rows)
    if total != ops:
        problems.append(f"{target}: {total} operations measured, expected {ops}")
    if not any(r.get("verified", 0) > 0 for r in rows):
        problems.append(f"{target}: no GET was verified byte for byte")
if not open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n":
    problems.append("the plot is not a PNG")
if problems:
    print("loadtest smoke: FAILED\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"loadtest smoke: ok ({len(doc['results'])} result rows, server and ceiling, no errors)")
EOF
