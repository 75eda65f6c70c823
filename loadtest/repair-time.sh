#!/usr/bin/env bash
# Time to full redundancy after a blobnode loss: starts the split roles (1 metadata, 6 blobnodes, 1 gateway with
# 4+2, 1 repair worker) on loopback ports, writes COFFER_REPAIR_DATA bytes of 8 MiB objects with coffer-loadtest,
# kills -9 one blobnode, starts a replacement, and reports how long `coffer admin repair status` takes to show no
# degraded column, with the bytes repaired. Not part of the test suite (it asserts nothing about speed); its figures
# go in issue notes.
#
# Environment:
#   COFFER_BIN, COFFER_LOADTEST_BIN   binaries (default: $CARGO_TARGET_DIR/release/...)
#   COFFER_REPAIR_DATA                bytes to write first (default 2GiB, in 8 MiB objects)
#   COFFER_REPAIR_GRACE               grace before a silent node's shards are rebuilt (default 5s)
#   COFFER_REPAIR_RATE                repair worker byte rate (default 64MiB, the worker's default; 0 = unlimited)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

COFFER_BIN="${COFFER_BIN:-$CARGO_TARGET_DIR/release/coffer}"
LOADTEST_BIN="${COFFER_LOADTEST_BIN:-$CARGO_TARGET_DIR/release/coffer-loadtest}"
DATA="${COFFER_REPAIR_DATA:-2GiB}"
GRACE="${COFFER_REPAIR_GRACE:-5s}"
RATE="${COFFER_REPAIR_RATE:-64MiB}"
[ -x "$COFFER_BIN" ] || die "no coffer binary at $COFFER_BIN"
[ -x "$LOADTEST_BIN" ] || die "no coffer-loadtest binary at $LOADTEST_BIN"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/coffer-repair-time.XXXXXX")"
pids=()
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${COFFER_KEEP_TMP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

export COFFER_ROOT_USER=repairtime COFFER_ROOT_PASSWORD=repairtime-secret RUST_LOG=warn
meta="127.0.0.1:$(free_port)"
"$COFFER_BIN" metadata --listen "$meta" --db "$tmp/meta" --node-timeout 3s >"$tmp/metadata.log" 2>&1 &
pids+=($!)
blob_pids=()
start_blobnode() {
    mkdir -p "$tmp/disk$1"
    "$COFFER_BIN" blobnode --listen "127.0.0.1:$(free_port)" --disk "$tmp/disk$1" --metadata "http://$meta" \
        --heartbeat-interval 500ms >"$tmp/blobnode$1.log" 2>&1 &
    pids+=($!)
    blob_pids[$1]=$!
}
for i in 0 1 2 3 4 5; do start_blobnode "$i"; done
s3="127.0.0.1:$(free_port)"
"$COFFER_BIN" gateway --address "$s3" --metadata "http://$meta" --ec 4+2 >"$tmp/gateway.log" 2>&1 &
pids+=($!)
metrics="127.0.0.1:$(free_port)"
"$COFFER_BIN" repair --metadata "http://$meta" --repair-grace "$GRACE" --repair-rate "$RATE" \
    --repair-interval 1s --metrics-address "$metrics" >"$tmp/repair.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
    curl -fsS "http://$s3/health/ready" >/dev/null 2>&1 && break
    sleep 0.1
done

bytes=$(numfmt --from=iec-i "${DATA%B}")
objects=$(( (bytes + 8388607) / 8388608 ))
log "writing $objects objects of 8 MiB ($DATA)"
"$LOADTEST_BIN" put --endpoint "http://$s3" --access-key repairtime --secret-key repairtime-secret --size 8MiB \
    --ops "$objects" --concurrency 4 --no-cleanup --quiet >"$tmp/put.txt"

log "kill -9 blobnode0; a replacement joins"
kill -KILL "${blob_pids[0]}"
started=$(date +%s.%N)
start_blobnode 6
status=""
while true; do
    status="$("$COFFER_BIN" admin --metadata "http://$meta" --json repair status --repair-grace "$GRACE")"
    degraded=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["degraded_columns"])' "$status")
    elapsed=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
    if [ "$degraded" = 0 ] && python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["columns_repaired"] > 0 else 1)' "$status"; then
        break
    fi
    sleep 1
done
log "full redundancy ${elapsed}s after the loss (grace $GRACE, repair rate $RATE): $status"
log "repair worker metrics: $(curl -fsS "http://$metrics/metrics" | grep -E '^coffer_repair_(bytes|columns)_total' | tr '\n' ' ')"
