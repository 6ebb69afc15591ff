#!/usr/bin/env bash
# A/B two servers on the same workload, alternating, pinned: the benchmark
# behind performance commits. For each round and arm it starts the server on
# $SERVER_CPU (taskset), runs the load generator on $CLIENT_CPU, and samples
# the server's CPU time from /proc, so besides throughput it reports the
# server's CPU time per operation — a figure far less sensitive to a noisy
# machine than throughput. A median line per arm and the new/old ratio of the
# medians close the run.
#
#   bench/ab.sh OLD NEW [rounds]
#
# OLD and NEW are corekv binaries, or the word `redis` for redis-server
# (persistence off unless its ARGS say otherwise: they are appended to the
# redis-server command line, e.g. `--appendonly yes --appendfsync always
# --dir D`). The same binary may be both arms with different OLD_ARGS /
# NEW_ARGS (extra `corekv server` flags, e.g. --no-coop-taskrun).
# WIPE=DIR empties DIR before every server start (persistence runs: each
# round starts from an empty --dir, nothing to recover).
#
# Drivers (DRIVER):
#   corekv           `corekv bench` (BENCH_BIN, default each arm's own binary;
#                    `redis` arms need BENCH_BIN): YCSB-B theta 0.99, BATCH ops
#                    per batch, SESSIONS sessions, SECS seconds. Against a
#                    redis arm it runs `--target redis` on the RESP port; with
#                    RESP=1 it runs `--target corekv-resp` against corekv too.
#   redis-benchmark  redis-benchmark -t $TESTS -d 128 -r 1000000 -c $CLIENTS
#                    -P $PIPELINE -n $REQUESTS on the RESP port; reports each
#                    test's requests/s and the server's CPU per request over
#                    the whole run.
#
# Environment: DRIVER [corekv] SECS [6] SESSIONS [8] BATCH [8192] RESP [0]
#              SERVER_CPU [0] CLIENT_CPU [1] SEED [7] EXTRA_BENCH_ARGS [""]
#              OLD_ARGS [""] NEW_ARGS [""] BENCH_BIN [arm's binary]
#              OLD_BENCH_ARGS [""] NEW_BENCH_ARGS [""] (extra `corekv bench`
#              flags of one arm, after EXTRA_BENCH_ARGS)
#              PIPELINE [1] CLIENTS [50] REQUESTS [200000] TESTS [set,get]
#              WIPE [""] RB_TIMEOUT [900: seconds before a stuck redis-benchmark is killed]
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,38p' "$0"; exit 2; }
OLD=$1 NEW=$2 ROUNDS=${3:-2}
DRIVER=${DRIVER:-corekv}
SECS=${SECS:-6} SESSIONS=${SESSIONS:-8} BATCH=${BATCH:-8192} RESP=${RESP:-0}
SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1} SEED=${SEED:-7}
PIPELINE=${PIPELINE:-1} CLIENTS=${CLIENTS:-50} REQUESTS=${REQUESTS:-200000} TESTS=${TESTS:-set,get}
tmp=$(mktemp -d)
sp=
cleanup() { [[ -n $sp ]] && kill "$sp" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# start_server BIN ARGS -> sets sp, nport (native), rport (RESP); a port
# taken by someone else means another random port, up to 5 tries.
start_server() {
    local try
    for try in 1 2 3 4 5; do
        start_server_once "$@"
        if kill -0 "$sp" 2>/dev/null; then return 0; fi
        wait "$sp" 2>/dev/null || true
        echo "server did not start (try $try): $(tail -1 "$tmp/server.log")" >&2
    done
    exit 1
}

start_server_once() {
    local bin=$1 args=$2
    nport=$((20000 + RANDOM % 20000)) rport=$((nport + 2))
    if [[ -n ${WIPE:-} ]]; then rm -rf "$WIPE"; mkdir -p "$WIPE"; fi
    if [[ $bin == redis ]]; then
        rport=$nport
        # shellcheck disable=SC2086 # args is word-split on purpose
        taskset -c "$SERVER_CPU" redis-server --port "$rport" --bind 127.0.0.1 --save '' \
            --appendonly no --protected-mode no $args >"$tmp/server.log" 2>&1 &
        sp=$!
        for _ in $(seq 300); do redis-cli -p "$rport" PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    else
        local resp=(--no-resp)
        if [[ $DRIVER == redis-benchmark || $RESP == 1 ]]; then resp=(--resp-port "$rport"); fi
        # shellcheck disable=SC2086 # args is word-split on purpose
        taskset -c "$SERVER_CPU" "$bin" server --cpus "$SERVER_CPU" --port "$nport" "${resp[@]}" \
            --stats-interval 0 $args >"$tmp/server.log" 2>&1 &
        sp=$!
        # Up to 30 s: a loaded machine starts slowly, and redis-benchmark
        # started against a port not accepting yet spins for ever.
        for _ in $(seq 300); do grep -q "corekv ready" "$tmp/server.log" && break; sleep 0.1; done
    fi
}

stop_server() { kill "$sp"; wait "$sp" 2>/dev/null || true; sp=; }

one_corekv() { # BIN ARGS LABEL BENCH_ARGS
    local bin=$1 label=$3 barm=${4:-} bbin=${BENCH_BIN:-$1} bp a b c0 c1 window target host
    start_server "$bin" "$2"
    target=corekv host=127.0.0.1:$nport
    if [[ $bin == redis ]]; then
        target=redis host=127.0.0.1:$rport
        [[ -n ${BENCH_BIN:-} ]] || { echo "a redis arm needs BENCH_BIN" >&2; exit 2; }
    elif [[ $RESP == 1 ]]; then
        target=corekv-resp host=127.0.0.1:$rport
    fi
    # shellcheck disable=SC2086 # EXTRA_BENCH_ARGS and barm are word-split on purpose
    taskset -c "$CLIENT_CPU" "$bbin" bench --target "$target" --hosts "$host" --cpus "$CLIENT_CPU" \
        --secs "$SECS" --warmup 1 --sessions "$SESSIONS" --batch "$BATCH" --seed "$SEED" -q \
        --json "$tmp/$label.json" ${EXTRA_BENCH_ARGS:-} $barm >"$tmp/bench.log" 2>&1 &
    bp=$!
    sleep 2
    window=$((SECS - 2))
    a=$(cpu_ticks "$sp") c0=$(cpu_ticks "$bp")
    sleep "$window"
    b=$(cpu_ticks "$sp") c1=$(cpu_ticks "$bp")
    wait $bp || { cat "$tmp/bench.log"; exit 1; }
    stop_server
    python3 - "$tmp/$label.json" "$label" "$a" "$b" "$tck" "$window" "$c0" "$c1" <<'PY' | tee -a "$tmp/rows"
import json, sys
path, label, a, b, tck, w, c0, c1 = sys.argv[1:]
r = json.load(open(path))
cli = (int(c1) - int(c0)) / int(tck) / int(w)
ops = r["ops_per_sec"]
srv = (int(b) - int(a)) / int(tck) / int(w)
lat = r.get("batch_latency_us") or r.get("batch_latency") or {}
p = lambda q: lat.get(q, float("nan")) if isinstance(lat, dict) else float("nan")
print(f"{label:4} {ops/1e6:8.3f} Mop/s   server CPU {srv*100:5.1f}%  {srv*1e9/ops:7.1f} ns/op   client CPU {cli*100:5.1f}%   batch p50 {p('p50'):.0f} us  p99 {p('p99'):.0f} us  p99.9 {p('p999'):.0f} us")
PY
}

one_rb() { # BIN ARGS LABEL
    local label=$3 a b
    start_server "$1" "$2"
    a=$(cpu_ticks "$sp")
    timeout "${RB_TIMEOUT:-900}" taskset -c "$CLIENT_CPU" redis-benchmark -p "$rport" -c "$CLIENTS" -n "$REQUESTS" -P "$PIPELINE" \
        -t "$TESTS" -d 128 -r 1000000 --csv >"$tmp/rb.csv" 2>"$tmp/rb.err"
    b=$(cpu_ticks "$sp")
    stop_server
    python3 - "$tmp/rb.csv" "$label" "$a" "$b" "$tck" "$REQUESTS" <<'PY' | tee -a "$tmp/rows"
import csv, sys
path, label, a, b, tck, n = sys.argv[1:]
rows = [r for r in csv.reader(open(path)) if r and r[0] != "test"]
total = len(rows) * int(n)
cpu_ns = (int(b) - int(a)) / int(tck) * 1e9
parts = "  ".join(f"{r[0]} {float(r[1]):9.0f} rps" for r in rows)
first = float(rows[0][1]) / 1e6 if rows else 0.0
print(f"{label:4} {first:8.3f} Mop/s   {parts}   server CPU {cpu_ns/total:7.1f} ns/req")
PY
}

if [[ $DRIVER == redis-benchmark ]]; then
    echo "A/B: server on CPU $SERVER_CPU, redis-benchmark on CPU $CLIENT_CPU: -t $TESTS -d 128 -r 1000000 -c $CLIENTS -P $PIPELINE -n $REQUESTS"
else
    echo "A/B: server on CPU $SERVER_CPU, bench on CPU $CLIENT_CPU, YCSB-B theta 0.99, batch $BATCH, $SESSIONS sessions, ${SECS}s, seed $SEED$([[ $RESP == 1 ]] && echo ", over RESP") ${EXTRA_BENCH_ARGS:-}"
fi
echo "old: $OLD ${OLD_ARGS:-} ${OLD_BENCH_ARGS:+(bench $OLD_BENCH_ARGS)}   new: $NEW ${NEW_ARGS:-} ${NEW_BENCH_ARGS:+(bench $NEW_BENCH_ARGS)}"
one=one_corekv
[[ $DRIVER == redis-benchmark ]] && one=one_rb
for _ in $(seq "$ROUNDS"); do
    $one "$OLD" "${OLD_ARGS:-}" old "${OLD_BENCH_ARGS:-}"
    $one "$NEW" "${NEW_ARGS:-}" new "${NEW_BENCH_ARGS:-}"
done
python3 - "$tmp/rows" <<'PY'
import re, statistics, sys
rows = open(sys.argv[1]).read().splitlines()
def med(arm, pat):
    v = [float(m.group(1)) for r in rows if r.startswith(arm) for m in [re.search(pat, r)] if m]
    return statistics.median(v) if v else float("nan")
tests = sorted({m for r in rows for m in re.findall(r"([A-Z]+) +[0-9.]+ rps", r)})
figures = [(f"{t} rps", rf"{t} +([0-9.]+) rps") for t in tests] or [("Mop/s", r"^\S+ +([0-9.]+) Mop/s")]
figures.append(("server ns/op", r"([0-9.]+) ns/(?:op|req)"))
for q in ("p50", "p99", "p99.9"):
    if any(f"{q} " in r for r in rows):
        figures.append((f"batch {q} us", rf"{re.escape(q)} ([0-9.]+) us"))
for name, pat in figures:
    o, n = med("old", pat), med("new", pat)
    print(f"median {name:14} old {o:12.3f}   new {n:12.3f}   new/old {n / o if o else float('nan'):.2f}x")
PY
