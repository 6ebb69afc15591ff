#!/usr/bin/env bash
# A/B two corekv binaries on the same workload, alternating, pinned: the
# benchmark behind performance commits. For each round and binary it starts
# `server --cpus $SERVER_CPU` (taskset), runs `bench --cpus $CLIENT_CPU`, and
# samples both processes' CPU time from /proc over the middle of the run, so
# besides op/s it reports the server's CPU time per operation — a figure far
# less sensitive to a noisy machine than throughput.
#
#   bench/ab.sh OLD_BIN NEW_BIN [rounds]
#
# Environment: SECS [6] SESSIONS [8] BATCH [8192] SERVER_CPU [0] CLIENT_CPU [1]
#              SEED [7] EXTRA_BENCH_ARGS [""]
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,12p' "$0"; exit 2; }
OLD=$1 NEW=$2 ROUNDS=${3:-2}
SECS=${SECS:-6} SESSIONS=${SESSIONS:-8} BATCH=${BATCH:-8192}
SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1} SEED=${SEED:-7}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

one() { # BIN LABEL
    local bin=$1 label=$2 port=$((20000 + RANDOM % 20000)) sp bp a b c0 c1 window
    taskset -c "$SERVER_CPU" "$bin" server --cpus "$SERVER_CPU" --port "$port" --no-resp --stats-interval 0 \
        >"$tmp/server.log" 2>&1 &
    sp=$!
    for _ in $(seq 50); do grep -q "corekv ready" "$tmp/server.log" && break; sleep 0.1; done
    # shellcheck disable=SC2086 # EXTRA_BENCH_ARGS is word-split on purpose
    taskset -c "$CLIENT_CPU" "$bin" bench --hosts "127.0.0.1:$port" --cpus "$CLIENT_CPU" --secs "$SECS" \
        --warmup 1 --sessions "$SESSIONS" --batch "$BATCH" --seed "$SEED" -q --json "$tmp/$label.json" \
        ${EXTRA_BENCH_ARGS:-} >"$tmp/bench.log" 2>&1 &
    bp=$!
    sleep 2
    window=$((SECS - 2))
    a=$(cpu_ticks $sp); c0=$(cpu_ticks $bp)
    sleep "$window"
    b=$(cpu_ticks $sp); c1=$(cpu_ticks $bp)
    wait $bp || { cat "$tmp/bench.log"; kill $sp; exit 1; }
    kill $sp; wait $sp 2>/dev/null || true
    python3 - "$tmp/$label.json" "$label" "$a" "$b" "$c0" "$c1" "$tck" "$window" <<'PY'
import json, sys
path, label, a, b, c0, c1, tck, w = sys.argv[1:]
ops = json.load(open(path))["ops_per_sec"]
srv = (int(b) - int(a)) / int(tck) / int(w)
cli = (int(c1) - int(c0)) / int(tck) / int(w)
print(f"{label:4} {ops/1e6:7.3f} Mop/s   server CPU {srv*100:5.1f}%  {srv*1e9/ops:6.1f} ns/op   client CPU {cli*100:5.1f}%")
PY
}

echo "A/B: server on CPU $SERVER_CPU, bench on CPU $CLIENT_CPU, YCSB-B theta 0.99, batch $BATCH, $SESSIONS sessions, ${SECS}s, seed $SEED"
for _ in $(seq "$ROUNDS"); do
    one "$OLD" old
    one "$NEW" new
done
