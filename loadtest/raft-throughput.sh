#!/usr/bin/env bash
# Metadata throughput with 1 vs 3 metadata replicas (issue 11's figures): the same split cluster (3 blobnodes, one
# gateway with --ec 2+1) with a lone metadata service, then with a 3-replica Raft group, each measured in the same
# invocation with `coffer-loadtest put` and `get` (4 KiB, so objects live in the metadata record: a GET is one
# linearizable metadata read, a PUT one replicated write; 32 concurrent, fixed duration) and `list` (ListObjectsV2
# pages of 100 keys through 20,000 keys, 4 concurrent). Prints each result and the 3/1 ratios. Not part of CI.
#
#   loadtest/raft-throughput.sh [DURATION]        # default 20s
# Environment: COFFER_BIN, COFFER_LOADTEST_BIN (default: the builds of PROFILE under $CARGO_TARGET_DIR); PROFILE
# (default release; `debug` compares debug builds, whose absolute figures mean little); OPS (default "put get list":
# the measurements to make, in this order).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

DURATION="${1:-20s}"
PROFILE="${PROFILE:-release}"
read -r -a OPS <<<"${OPS:-put get list}"
COFFER_BIN="${COFFER_BIN:-$CARGO_TARGET_DIR/$PROFILE/coffer}"
LOADTEST_BIN="${COFFER_LOADTEST_BIN:-$CARGO_TARGET_DIR/$PROFILE/coffer-loadtest}"
for op in "${OPS[@]}"; do
    case "$op" in put | get | list) ;; *) die "OPS: unknown measurement $op (put, get, list)" ;; esac
done
[ -x "$COFFER_BIN" ] || die "no coffer binary at $COFFER_BIN"
[ -x "$LOADTEST_BIN" ] || die "no coffer-loadtest binary at $LOADTEST_BIN"
export COFFER_ROOT_USER=raftbench COFFER_ROOT_PASSWORD=raftbench-secret-key
tmp="$(mktemp -d "${TMPDIR:-/tmp}/coffer-raft-bench.XXXXXX")"
pids=()

# shellcheck disable=SC2317  # called from the EXIT trap and between runs
stop_all() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; rm -rf "$tmp"' EXIT

start() {
    local name="$1"
    shift
    "$COFFER_BIN" "$@" >"$tmp/$name.log" 2>&1 &
    pids+=("$!")
}

# run REPLICAS: one cluster, one measurement; prints the result line.
run() {
    local replicas="$1" dir="$tmp/r$1" urls="" i port
    mkdir -p "$dir"
    local ports=()
    for ((i = 0; i < replicas; i++)); do ports+=("$(free_port)"); done
    for port in "${ports[@]}"; do urls="${urls:+$urls,}http://127.0.0.1:$port"; done
    for ((i = 0; i < replicas; i++)); do
        if [ "$replicas" -gt 1 ]; then
            start "r$replicas-meta$i" metadata --listen "127.0.0.1:${ports[$i]}" --db "$dir/meta$i" --peers "$urls"
        else
            start "r$replicas-meta$i" metadata --listen "127.0.0.1:${ports[$i]}" --db "$dir/meta$i"
        fi
    done
    for i in 0 1 2; do
        mkdir -p "$dir/disk$i"
        start "r$replicas-blobnode$i" blobnode --listen "127.0.0.1:$(free_port)" --disk "$dir/disk$i" \
            --metadata "$urls" --heartbeat-interval 500ms
    done
    local gw
    gw="$(free_port)"
    start "r$replicas-gateway" gateway --address "127.0.0.1:$gw" --metadata "$urls" --ec 2+1
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$gw/health/ready" >/dev/null 2>&1 && break
        sleep 0.1
    done
    sleep 3 # heartbeats reach the leader; the first election settles
    local op
    for op in "${OPS[@]}"; do
        local extra=(--size 4KiB --concurrency 32)
        [ "$op" = list ] && extra=(--size 1KiB --concurrency 4 --objects 20000)
        "$LOADTEST_BIN" "$op" --endpoint "http://127.0.0.1:$gw" --access-key "$COFFER_ROOT_USER" \
            --secret-key "$COFFER_ROOT_PASSWORD" "${extra[@]}" --duration "$DURATION" \
            --json "$tmp/r$replicas-$op.json" >"$tmp/r$replicas-$op.out" 2>&1 ||
            { cat "$tmp/r$replicas-$op.out"; die "loadtest $op failed"; }
    done
    stop_all
    for op in "${OPS[@]}"; do
        python3 -c 'import json,sys; r=[x for x in json.load(open(sys.argv[1]))["results"] if x["target"]=="server" and x["op"]==sys.argv[2]][0]; print(sys.argv[2], round(r["ops_per_s"]), round(r["p50_ms"],2), round(r["p99_ms"],2), r["errors"])' \
            "$tmp/r$replicas-$op.json" "${op^^}"
    done
}

one="$(run 1)"
three="$(run 3)"
printf 'coffer-loadtest (%s builds), %s per run (ops/s, p50 ms, p99 ms, errors)\n' "$PROFILE" "$DURATION"
paste <(echo "$one") <(echo "$three") | while read -r op ops1 p50_1 p99_1 e1 _ ops3 p50_3 p99_3 e3; do
    python3 -c 'import sys; a=sys.argv; print(f"  {a[1]:<4}  1 replica: {a[2]:>6} ops/s p50 {a[3]} p99 {a[4]} err {a[5]}   3 replicas: {a[6]:>6} ops/s p50 {a[7]} p99 {a[8]} err {a[9]}   ratio {float(a[6])/max(float(a[2]),1e-9):.2f}")' \
        "$op" "$ops1" "$p50_1" "$p99_1" "$e1" "$ops3" "$p50_3" "$p99_3" "$e3"
done
