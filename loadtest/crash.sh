#!/usr/bin/env bash
# Crash-consistency run (the `crash` step of scripts/test): `coffer-loadtest crash` starts the split roles (metadata,
# 6 blobnodes, gateway, repair) as processes in a temp dir, drives a mixed PUT/overwrite/multipart/DELETE/GET/HEAD/LIST
# workload while killing a random service with SIGKILL every few seconds and restarting it, then checks every key
# and the listing against its journal of acknowledged writes. It runs twice, each for half the duration: with one
# metadata service, then with a Raft group of 3 metadata replicas (each one a victim). Both must pass; any mismatch
# or harness failure (a service that does not come back; its log tail is printed) fails the script.
#
# Environment:
#   COFFER_BIN             coffer binary (default: $CARGO_TARGET_DIR/debug/coffer)
#   COFFER_LOADTEST_BIN    harness (default: $CARGO_TARGET_DIR/debug/coffer-loadtest)
#   COFFER_CRASH_DURATION  how long services are killed under load, both runs together (default: 2m; s, m, h)
#   COFFER_CRASH_SEED      repeat a run (default: random, printed)
#   COFFER_KEEP_TMP=1      keep the temp dir (data, service logs, summary) even when the run passes
# Other COFFER_CRASH_* variables reach the harness as its flags (see `coffer-loadtest crash --help`), except
# COFFER_CRASH_METADATA_REPLICAS, COFFER_CRASH_DIR and COFFER_CRASH_JSON, which this script sets per run.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

COFFER_BIN="${COFFER_BIN:-$CARGO_TARGET_DIR/debug/coffer}"
LOADTEST_BIN="${COFFER_LOADTEST_BIN:-$CARGO_TARGET_DIR/debug/coffer-loadtest}"
[ -x "$COFFER_BIN" ] || die "no coffer binary at $COFFER_BIN (build the workspace first, or set COFFER_BIN)"
[ -x "$LOADTEST_BIN" ] || die "no coffer-loadtest binary at $LOADTEST_BIN (set COFFER_LOADTEST_BIN)"
export COFFER_CRASH_DURATION="${COFFER_CRASH_DURATION:-2m}"

# Seconds in a duration like 90s, 2m, 2min, 1h, 1m30s or 120; fails on anything else.
seconds_of() {
    local rest=$1 total=0
    [[ $rest =~ ^[0-9]+$ ]] && rest="${rest}s"
    while [[ $rest =~ ^([0-9]+)(s|sec|m|min|h)([0-9].*)?$ ]]; do
        case "${BASH_REMATCH[2]}" in
            m | min) total=$((total + BASH_REMATCH[1] * 60)) ;;
            h) total=$((total + BASH_REMATCH[1] * 3600)) ;;
            *) total=$((total + BASH_REMATCH[1])) ;;
        esac
        rest="${BASH_REMATCH[3]}"
    done
    [ -z "$rest" ] && [ "$total" -gt 0 ] && echo "$total"
}
total="$(seconds_of "$COFFER_CRASH_DURATION")" ||
    die "COFFER_CRASH_DURATION=$COFFER_CRASH_DURATION: expected a duration such as 2m, 90s or 1m30s"
# Each run gets half (at least a second), so that CI takes as long as with one run.
half=$(((total + 1) / 2))

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

# One run with $1 metadata services (1: no replication); returns non-zero when it fails, having logged why.
# The harness removes its work dir after a clean run and keeps it (data and service logs) otherwise. The outer
# timeout only guards against a hung harness: the run itself is bounded by the duration plus the final checks.
crash_run() {
    local replicas=$1 name="meta$1" rc=0
    log "coffer-loadtest crash for ${half}s, $replicas metadata replica(s), $COFFER_BIN (work dir $tmp/$name)"
    timeout -k 10 "$((half + 600))" \
        "$LOADTEST_BIN" crash --coffer-bin "$COFFER_BIN" --duration "${half}s" --metadata-replicas "$replicas" \
        --dir "$tmp/$name" --json "$tmp/$name.json" "${keep[@]}" || rc=$?
    case "$rc" in
        0) log "crash ($name): ok (summary in $tmp/$name.json)" ;;
        1) log "crash ($name): FAILED: mismatches between what was acknowledged and what the store returned" \
            "(see above; data and logs in $tmp/$name)" ;;
        *) log "crash ($name): FAILED: harness failure, exit $rc (see above; data and logs in $tmp/$name)" ;;
    esac
    [ "$rc" -eq 0 ]
}

# Both runs, even when the first fails: each says something different.
failed=""
crash_run 1 || failed="one metadata service"
crash_run 3 || failed="${failed:+$failed and }3 metadata replicas"
[ -z "$failed" ] || die "crash: failed with $failed (see above)"
log "crash: ok with one metadata service and with 3 replicas"

