#!/usr/bin/env bash
# `make run`: start a local corekv server on this machine's CPUs, run a short
# benchmark against it (the seed's workload, ~5 s), print the readable
# report, stop the server.
#
# CPUs: with two or more, the server gets the first half and the load
# generator the second half (2 cores: server on 0, bench on 1); with one,
# both share it. Environment: SECS [5] WARMUP [1] BATCH [8192] SESSIONS [8]
# PORT [7000] COREKV_BIN [target/release/corekv] OUT [results/run-<timestamp>].
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${COREKV_BIN:-target/release/corekv}
PORT=${PORT:-7000}
SECS=${SECS:-5}
WARMUP=${WARMUP:-1}
BATCH=${BATCH:-8192}
SESSIONS=${SESSIONS:-8}
OUT=${OUT:-results/run-$(date +%Y%m%d-%H%M%S)}

n=$(nproc)
if [[ $n -ge 2 ]]; then
    half=$((n / 2))
    server_cpus="0-$((half - 1))"
    bench_cpus="$half-$((n - 1))"
else
    server_cpus=0
    bench_cpus=0
fi

log=$(mktemp)
taskset -c "$server_cpus" "$BIN" server --cpus "$server_cpus" --port "$PORT" --no-resp \
    --stats-interval 0 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "corekv ready" "$log" && break; kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }; sleep 0.1; done
grep "corekv ready" "$log"
taskset -c "$bench_cpus" "$BIN" bench --hosts "127.0.0.1:$PORT" --cpus "$bench_cpus" \
    --secs "$SECS" --warmup "$WARMUP" --batch "$BATCH" --sessions "$SESSIONS" --out "$OUT"
