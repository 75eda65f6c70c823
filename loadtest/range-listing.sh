#!/usr/bin/env bash
# Listing throughput across metadata range groups (issue 11): the same split cluster (a 3-replica `coffer metadata`
# group, 3 blobnodes, one gateway given all three metadata URLs) measured twice with `coffer-loadtest list`, with
# 1-byte (inline) objects under one directory of one bucket: (a) with no range groups, (b) with the bucket's keys up to
# the end of the listed directory split into 3 range groups of about a third of the objects each (group 0 keeps the
# rest). The range groups are created before any object is written (CreateRangeGroup refuses a range over keys group 0
# holds); the objects are the list workload's own preparation, named `rl/list-nN/IIIIIIII-OFF-1` (--dir rl/), so the
# boundaries are `rl/list-nN/` + the zero-padded index N/3 and 2N/3. Each run lists the whole directory over and over
# in pages of --max-keys 1000 (CONCURRENCY walkers); keys/s = pages/s x 1000. Prints both and the ratio. Not part of
# CI.
#
#   loadtest/range-listing.sh [DURATION]        # default 20s
# Environment: COFFER_BIN, COFFER_LOADTEST_BIN (default: the builds of PROFILE under $CARGO_TARGET_DIR); PROFILE
# (default release); OBJECTS (default 200000); CONCURRENCY (walkers, and PUTs in flight while preparing; default 8);
# KEEP=1 keeps the logs (their directory is printed).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

DURATION="${1:-20s}"
PROFILE="${PROFILE:-release}"
OBJECTS="${OBJECTS:-200000}"
CONCURRENCY="${CONCURRENCY:-8}"
COFFER_BIN="${COFFER_BIN:-$CARGO_TARGET_DIR/$PROFILE/coffer}"
LOADTEST_BIN="${COFFER_LOADTEST_BIN:-$CARGO_TARGET_DIR/$PROFILE/coffer-loadtest}"
[ -x "$COFFER_BIN" ] || die "no coffer binary at $COFFER_BIN"
[ -x "$LOADTEST_BIN" ] || die "no coffer-loadtest binary at $LOADTEST_BIN"
[ "$OBJECTS" -ge 3 ] || die "OBJECTS: at least 3"
export COFFER_ROOT_USER=rangebench COFFER_ROOT_PASSWORD=rangebench-secret-key
BUCKET=ranges
DIR=rl/
LIST_DIR="${DIR}list-n$OBJECTS/"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/coffer-range-listing.XXXXXX")"
pids=()

# shellcheck disable=SC2317  # called from the EXIT trap and between runs
stop_all() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
# shellcheck disable=SC2317  # called from the EXIT trap
finish() {
    stop_all
    if [ "${KEEP:-0}" = 1 ]; then echo "logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap finish EXIT

start() {
    local name="$1"
    shift
    "$COFFER_BIN" "$@" >"$tmp/$name.log" 2>&1 &
    pids+=("$!")
}

loadtest() {
    "$LOADTEST_BIN" "$@" --endpoint "http://127.0.0.1:$gw" --access-key "$COFFER_ROOT_USER" \
        --secret-key "$COFFER_ROOT_PASSWORD" --bucket "$BUCKET" --quiet
}

# run GROUPS: one cluster with GROUPS range groups (0 or 3), one measurement; prints "keys/s p50_ms p99_ms errors".
gw=""
run() {
    local groups="$1" dir="$tmp/g$1" urls="" i port
    mkdir -p "$dir"
    local ports=()
    for i in 0 1 2; do ports+=("$(free_port)"); done
    for port in "${ports[@]}"; do urls="${urls:+$urls,}http://127.0.0.1:$port"; done
    for i in 0 1 2; do
        start "g$groups-meta$i" metadata --listen "127.0.0.1:${ports[$i]}" --db "$dir/meta$i" --peers "$urls"
    done
    for i in 0 1 2; do
        mkdir -p "$dir/disk$i"
        start "g$groups-blobnode$i" blobnode --listen "127.0.0.1:$(free_port)" --disk "$dir/disk$i" \
            --metadata "$urls" --heartbeat-interval 500ms
    done
    gw="$(free_port)"
    start "g$groups-gateway" gateway --address "127.0.0.1:$gw" --metadata "$urls" --ec 2+1
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$gw/health/ready" >/dev/null 2>&1 && break
        sleep 0.1
    done
    sleep 3 # heartbeats reach the leader; the first election settles
    if [ "$groups" -gt 0 ]; then
        local bounds=("$BUCKET") g
        for ((g = 1; g < groups; g++)); do bounds+=("$BUCKET/$LIST_DIR$(printf '%08d' $((OBJECTS * g / groups)))"); done
        bounds+=("$BUCKET/${LIST_DIR}~") # past every index (digits sort before ~); group 0 keeps the rest
        for ((g = 1; g <= groups; g++)); do
            "$COFFER_BIN" admin --metadata "$urls" meta create-group --group "$g" --start "${bounds[$((g - 1))]}" \
                --end "${bounds[$g]}" >>"$tmp/g$groups-admin.log" 2>&1 ||
                { cat "$tmp/g$groups-admin.log" >&2; die "create-group $g failed"; }
        done
        for _ in $(seq 1 300); do
            [ "$("$COFFER_BIN" admin --metadata "$urls" meta status 2>/dev/null | grep -cE '^  group [0-9]+ .*: leader ')" \
                -ge "$groups" ] && break
            sleep 0.1
        done
        "$COFFER_BIN" admin --metadata "$urls" meta status >>"$tmp/g$groups-admin.log" 2>&1 || true
    fi
    # The bucket (in group 0, delivered to the range groups) and one object outside the listed directory.
    loadtest put --size 1 --concurrency 1 --ops 1 --warmup 0s --dir warm/ --no-cleanup >"$tmp/g$groups-bucket.out" 2>&1 ||
        { cat "$tmp/g$groups-bucket.out" >&2; die "creating the bucket failed"; }
    sleep 2 # bucket state reaches the range groups
    loadtest list --size 1 --objects "$OBJECTS" --concurrency "$CONCURRENCY" --max-keys 1000 --duration "$DURATION" \
        --dir "$DIR" --no-cleanup --json "$tmp/g$groups-list.json" >"$tmp/g$groups-list.out" 2>&1 ||
        { cat "$tmp/g$groups-list.out" >&2; die "loadtest list failed"; }
    echo "g$groups: load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    # Where the objects went: each group's leader and log position (range groups hold a share each).
    "$COFFER_BIN" admin --metadata "$urls" meta status 2>/dev/null | grep -E ': node [0-9]+ leader |^  group [0-9]+ .*: leader ' |
        sed "s/^/g$groups: /" >&2 || true
    stop_all
    python3 -c 'import json,sys; r=[x for x in json.load(open(sys.argv[1]))["results"] if x["target"]=="server" and x["op"]=="LIST"][0]; print(round(r["ops_per_s"]*1000), round(r["p50_ms"],2), round(r["p99_ms"],2), r["errors"])' \
        "$tmp/g$groups-list.json"
}

none="$(run 0)"
three="$(run 3)"
printf 'coffer-loadtest list (%s builds), %s objects of 1 byte, pages of 1000, %s walkers, %s per run\n' \
    "$PROFILE" "$OBJECTS" "$CONCURRENCY" "$DURATION"
read -r k0 p50_0 p99_0 e0 <<<"$none"
read -r k3 p50_3 p99_3 e3 <<<"$three"
printf '  no range groups: %8s keys/s  page p50 %s ms p99 %s ms  errors %s\n' "$k0" "$p50_0" "$p99_0" "$e0"
printf '  3 range groups:  %8s keys/s  page p50 %s ms p99 %s ms  errors %s\n' "$k3" "$p50_3" "$p99_3" "$e3"
python3 -c 'import sys; print(f"  ratio (3 groups / none): {float(sys.argv[2])/max(float(sys.argv[1]),1e-9):.2f}")' "$k0" "$k3"
