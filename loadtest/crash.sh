#!/usr/bin/env bash
# Crash-consistency run (the `crash` step of scripts/test): `coffer-loadtest crash` starts the split roles (metadata,
# 6 blobnodes, gateway) as processes in a temp dir, drives a mixed PUT/overwrite/multipart/DELETE/GET/HEAD/LIST
# workload while killing a random service with SIGKILL every few seconds and restarting it, then checks every key
# and the listing against its journal of acknowledged writes. Fails on any mismatch (exit 1) or when the harness
# itself fails (exit 2: a service that does not come back; its log tail is printed).
#
# Environment:
#   COFFER_BIN             coffer binary (default: $CARGO_TARGET_DIR/debug/coffer)
#   COFFER_LOADTEST_BIN    harness (default: $CARGO_TARGET_DIR/debug/coffer-loadtest)
#   COFFER_CRASH_DURATION  how long services are killed under load (default: 2m)
#   COFFER_CRASH_SEED      repeat a run (default: random, printed)
#   COFFER_KEEP_TMP=1      keep the temp dir (data, service logs, summary) even when the run passes
# Other COFFER_CRASH_* variables reach the harness as its flags (see `coffer-loadtest crash --help`).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

COFFER_BIN="${COFFER_BIN:-$CARGO_TARGET_DIR/debug/coffer}"
LOADTEST_BIN="${COFFER_LOADTEST_BIN:-$CARGO_TARGET_DIR/debug/coffer-loadtest}"
[ -x "$COFFER_BIN" ] || die "no coffer binary at $COFFER_BIN (build the workspace first, or set COFFER_BIN)"
[ -x "$LOADTEST_BIN" ] || die "no coffer-loadtest binary at $LOADTEST_BIN (set COFFER_LOADTEST_BIN)"
export COFFER_CRASH_DURATION="${COFFER_CRASH_DURATION:-2m}"

# Seconds in a duration like 90s, 2m, 2min, 1h or 120 (anything else: an hour), for the guard timeout below.
seconds_of() {
    if [[ $1 =~ ^([0-9]+)(s|m|min|h)?$ ]]; then
        case "${BASH_REMATCH[2]}" in
            m | min) echo $((BASH_REMATCH[1] * 60)) ;;
            h) echo $((BASH_REMATCH[1] * 3600)) ;;
            *) echo "${BASH_REMATCH[1]}" ;;
        esac
    else
        echo 3600
    fi
}

tmp="$(mktemp -d "${TMPDIR:-/tmp}/coffer-crash.XXXXXX")"
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local rc=$?
    if [ "$rc" -ne 0 ] || [ "${COFFER_KEEP_TMP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

keep=()
if [ "${COFFER_KEEP_TMP:-0}" = 1 ]; then keep=(--keep); fi
log "coffer-loadtest crash for $COFFER_CRASH_DURATION against $COFFER_BIN (work dir $tmp/run)"
# The harness removes its work dir after a clean run and keeps it (data and service logs) otherwise. The outer
# timeout only guards against a hung harness: the run itself is bounded by the duration plus the final checks.
rc=0
timeout -k 10 "$(($(seconds_of "$COFFER_CRASH_DURATION") + 600))" \
    "$LOADTEST_BIN" crash --coffer-bin "$COFFER_BIN" --dir "$tmp/run" --json "$tmp/crash.json" "${keep[@]}" || rc=$?
case "$rc" in
    0) log "crash: ok (summary in $tmp/crash.json)" ;;
    1) die "crash: mismatches between what was acknowledged and what the store returned (see above; data and logs in $tmp/run)" ;;
    *) die "crash: harness failure, exit $rc (see above; data and logs in $tmp/run)" ;;
esac
