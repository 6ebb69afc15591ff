#!/usr/bin/env bash
# The floor under a RESP server's CPU per request on this machine: the same
# redis-benchmark run against floor.c (an epoll server that answers with
# canned replies and does no work: the kernel's price per request), against
# redis-server and against corekv, each pinned to $SERVER_CPU with the
# benchmark on $CLIENT_CPU, rounds alternating, medians. Builds floor.c with
# cc into a temporary directory.
#
#   bench/floor/run.sh [COREKV_BIN] [rounds]
#
# Environment: PIPELINE [1] CLIENTS [50] REQUESTS [200000] TESTS [set,get]
#              SERVER_CPU [0] CLIENT_CPU [1] COREKV_ARGS (extra server flags,
#              e.g. "--spin-before-park 0")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$here/../../target/release/corekv} ROUNDS=${2:-3}
PIPELINE=${PIPELINE:-1} CLIENTS=${CLIENTS:-50} REQUESTS=${REQUESTS:-200000} TESTS=${TESTS:-set,get}
SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1}
tmp=$(mktemp -d)
sp=
cleanup() { [[ -n $sp ]] && kill "$sp" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
cc -O2 -o "$tmp/floor" "$here/floor.c"
tck=$(getconf CLK_TCK)
ntests=$(tr ',' '\n' <<<"$TESTS" | wc -l)

one() { # ARM -> prints "ARM rps... ns/req"
    local arm=$1 port=$((20000 + RANDOM % 20000)) a b
    case $arm in
    floor) taskset -c "$SERVER_CPU" "$tmp/floor" "$port" >/dev/null 2>&1 & ;;
    redis) taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 --save '' \
        --appendonly no >/dev/null 2>&1 & ;;
    # shellcheck disable=SC2086
    corekv) taskset -c "$SERVER_CPU" "$BIN" server --cpus "$SERVER_CPU" --port $((port + 2)) \
        --resp-port "$port" --stats-interval 0 ${COREKV_ARGS:-} >/dev/null 2>&1 & ;;
    esac
    sp=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    a=$(awk '{print $14+$15}' "/proc/$sp/stat")
    timeout 600 taskset -c "$CLIENT_CPU" redis-benchmark -p "$port" -c "$CLIENTS" -n "$REQUESTS" \
        -P "$PIPELINE" -t "$TESTS" -d 128 -r 1000000 --csv >"$tmp/rb.csv" 2>/dev/null
    b=$(awk '{print $14+$15}' "/proc/$sp/stat")
    kill "$sp"; wait "$sp" 2>/dev/null || true; sp=
    python3 - "$arm" "$a" "$b" "$tck" "$REQUESTS" "$ntests" "$tmp/rb.csv" <<'PY' | tee -a "$tmp/rows"
import csv, sys
arm, a, b, tck, n, k, path = sys.argv[1:]
rows = [r for r in csv.reader(open(path)) if r and r[0] != "test"]
ns = (int(b) - int(a)) / int(tck) * 1e9 / (int(n) * int(k))
print(f"{arm:6} " + "  ".join(f"{r[0]} {float(r[1]):9.0f} rps" for r in rows) + f"   server CPU {ns:7.1f} ns/req")
PY
}

echo "floor vs redis-server vs corekv: server on CPU $SERVER_CPU, redis-benchmark on CPU $CLIENT_CPU:" \
    "-t $TESTS -d 128 -r 1000000 -c $CLIENTS -P $PIPELINE -n $REQUESTS"
for _ in $(seq "$ROUNDS"); do
    for arm in floor redis corekv; do one $arm; done
done
python3 - "$tmp/rows" <<'PY'
import re, statistics, sys
rows = open(sys.argv[1]).read().splitlines()
med = {}
for arm in ("floor", "redis", "corekv"):
    v = [float(re.search(r"([0-9.]+) ns/req", r).group(1)) for r in rows if r.startswith(arm)]
    med[arm] = statistics.median(v)
f = med["floor"]
for arm, v in med.items():
    print(f"median {arm:6} {v:8.1f} ns/req   {v / f:5.2f}x the floor   above it {v - f:7.1f} ns")
print(f"corekv per core vs redis-server: {med['redis'] / med['corekv']:.2f}x;"
      f" best possible (at the floor): {med['redis'] / f:.2f}x")
PY
