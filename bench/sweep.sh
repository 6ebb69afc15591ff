#!/usr/bin/env bash
# The seed's two scaling figures for corekv on this machine: throughput
# against batch size (1 .. 16384, doubling) and against sessions per core.
# Each point is a short pinned run (server on SERVER_CPU, load generator on
# CLIENT_CPU) against one local corekv server; the points go to a CSV
#   param,value,servers,clients,ops_per_sec,seed_style_ops_per_sec,p99_batch_us
# (one row per run: each point runs REPEAT times) and `corekv report
# plot-sweep` draws sweep.png (batch) and sweep-sessions.png — medians with
# min–max bars — and sweep-p99.png, the p99 batch latency against batch.
#
# Usage: bench/sweep.sh [batch] [sessions]      (default: both)
# Environment (defaults in brackets):
#   SECS [3] WARMUP [1] BATCH_MIN [1] BATCH_MAX [16384] SESSIONS [8]
#   SESSIONS_LIST ["1 2 4 8 16 32 64 128"] BATCH [8192] WORKLOAD [YCSB-B] THETA [0.99]
#   SERVER_CPU [0] CLIENT_CPU [1] SEED [12345] REPEAT [3] OUT [results/sweep-<timestamp>]
#   COREKV_BIN [target/release/corekv]
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${COREKV_BIN:-target/release/corekv}
SECS=${SECS:-3}
WARMUP=${WARMUP:-1}
BATCH_MIN=${BATCH_MIN:-1}
BATCH_MAX=${BATCH_MAX:-16384}
SESSIONS=${SESSIONS:-8}
SESSIONS_LIST=${SESSIONS_LIST:-1 2 4 8 16 32 64 128}
BATCH=${BATCH:-8192}
WORKLOAD=${WORKLOAD:-YCSB-B}
THETA=${THETA:-0.99}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SEED=${SEED:-12345}
REPEAT=${REPEAT:-3}
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "REPEAT must be a positive integer" >&2; exit 2; }
OUT=${OUT:-results/sweep-$(date +%Y%m%d-%H%M%S)}

SWEEPS=("$@")
[[ ${#SWEEPS[@]} -gt 0 ]] || SWEEPS=(batch sessions)
log() { printf '[sweep %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ -x "$BIN" ]] || die "$BIN not found: run 'make release' (or set COREKV_BIN)"

mkdir -p "$OUT/runs"
CSV="$OUT/sweep.csv"
echo "param,value,servers,clients,ops_per_sec,seed_style_ops_per_sec,p99_batch_us" >"$CSV"

port=""
for _ in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n "$port" ]] || die "no free port"
taskset -c "$SERVER_CPU" "$BIN" server --cpus "$SERVER_CPU" --no-resp --port "$port" \
    --stats-interval 0 >"$OUT/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 100); do
    grep -q "corekv ready" "$OUT/server.log" && break
    kill -0 $server 2>/dev/null || { cat "$OUT/server.log" >&2; die "server failed"; }
    sleep 0.1
done

json_num() { sed -n "s/^  \"$2\": \([-0-9.eE+]*\),\{0,1\}$/\1/p" "$1" | head -n 1; }

# point PARAM VALUE BATCH SESSIONS: REPEAT runs, one CSV row each.
point() {
    local rep
    for rep in $(seq "$REPEAT"); do run_point "$@" "$rep"; done
}

# run_point PARAM VALUE BATCH SESSIONS REPEAT_NO
run_point() {
    local dir="$OUT/runs/$1-$2-$5"
    log "$1=$2 (run $5/$REPEAT): batch $3, $4 session(s)"
    if ! taskset -c "$CLIENT_CPU" "$BIN" bench --hosts "127.0.0.1:$port" --cpus "$CLIENT_CPU" \
        --workload "$WORKLOAD" --theta "$THETA" --secs "$SECS" --warmup "$WARMUP" --seed "$SEED" \
        --batch "$3" --sessions "$4" --quiet --out "$dir" >"$dir.txt" 2>&1; then
        log "point $1=$2 failed:"; tail -n 5 "$dir.txt" >&2; return 0
    fi
    local r="$dir/report.json"
    echo "$1,$2,1,1,$(json_num "$r" ops_per_sec),$(json_num "$r" seed_style_ops_per_sec),$(json_num "$r" p99_batch_us)" >>"$CSV"
    log "  -> $(tail -n 1 "$CSV")"
}

for s in "${SWEEPS[@]}"; do
    case "$s" in
    batch)
        b=$BATCH_MIN
        while [[ $b -le $BATCH_MAX ]]; do point batch "$b" "$b" "$SESSIONS"; b=$((b * 2)); done ;;
    sessions)
        for n in $SESSIONS_LIST; do point sessions "$n" "$BATCH" "$n"; done ;;
    *) die "unknown sweep '$s' (batch | sessions)" ;;
    esac
done

column -s, -t "$CSV" 2>/dev/null || cat "$CSV"
"$BIN" report plot-sweep "$CSV" --out "$OUT/sweep.png" --title "corekv, 1 server core + 1 client core"
log "CSV $CSV, plots in $OUT"
