#!/usr/bin/env bash
# redis-benchmark against corekv and against Debian's redis-server, same
# pinning, same workload, in one run. `make bench-resp` runs it.
#
# Both servers get one core (SERVER_CPU, default 0); redis-benchmark runs on
# another (CLIENT_CPU, default 1). For each pipeline depth (-P 1, 16, 256)
# the two servers are measured back to back with
#   redis-benchmark -t set,get -d 128 -r 1000000 -c $CLIENTS -n <N> -P <depth>
# and a table prints requests/s of both and the ratio corekv / redis.
#
# Environment:
#   COREKV_BIN      corekv binary (default target/release/corekv)
#   SERVER_CPU      CPU both servers are pinned to (default 0)
#   CLIENT_CPU      CPU redis-benchmark is pinned to (default 1)
#   CLIENTS         redis-benchmark -c (default 50)
#   DEPTHS          pipeline depths (default "1 16 256")
#   N_1 N_16 N_256  requests per test at each depth (defaults 200000,
#                   2000000, 5000000; N_<depth> for any other depth, else 1000000)
#   REDIS_PORT      redis-server port (default 16379)
#   RESP_PORT       corekv node-level RESP port (default 16380)
#   NATIVE_PORT     corekv native port (default 17100)
set -euo pipefail

COREKV_BIN=${COREKV_BIN:-target/release/corekv}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CLIENTS=${CLIENTS:-50}
DEPTHS=${DEPTHS:-"1 16 256"}
N_1=${N_1:-200000}
N_16=${N_16:-2000000}
N_256=${N_256:-5000000}
REDIS_PORT=${REDIS_PORT:-16379}
RESP_PORT=${RESP_PORT:-16380}
NATIVE_PORT=${NATIVE_PORT:-17100}

die() { echo "resp-bench: $*" >&2; exit 1; }

for tool in redis-server redis-benchmark redis-cli taskset; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install redis-server redis-tools util-linux)"
done
[ -x "$COREKV_BIN" ] || die "corekv binary $COREKV_BIN not found (make release, or set COREKV_BIN)"
for p in "$REDIS_PORT" "$RESP_PORT" "$((RESP_PORT + 1))" "$NATIVE_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port $p is in use (set REDIS_PORT / RESP_PORT / NATIVE_PORT)"
    fi
done

LOGDIR=$(mktemp -d /tmp/resp-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_ready() { # port name
    for _ in $(seq 1 100); do
        if [ "$(redis-cli -p "$1" PING 2>/dev/null)" = "PONG" ]; then
            return 0
        fi
        sleep 0.1
    done
    die "$2 did not answer PING on port $1 (logs in $LOGDIR)"
}

taskset -c "$SERVER_CPU" "$COREKV_BIN" server --cpus "$SERVER_CPU" \
    --port "$NATIVE_PORT" --resp-port "$RESP_PORT" --stats-interval 0 \
    >"$LOGDIR/corekv.log" 2>&1 &
PIDS+=($!)
taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
    --save '' --appendonly no --daemonize no --protected-mode no \
    >"$LOGDIR/redis.log" 2>&1 &
PIDS+=($!)
wait_ready "$RESP_PORT" corekv
wait_ready "$REDIS_PORT" redis-server

# Prints "SET <rps>" and "GET <rps>" for one run.
bench() { # port depth requests
    taskset -c "$CLIENT_CPU" redis-benchmark -p "$1" -c "$CLIENTS" -n "$3" -P "$2" \
        -t set,get -d 128 -r 1000000 --csv 2>>"$LOGDIR/benchmark.err" |
        awk -F'"' '$2 == "SET" || $2 == "GET" { print $2, $4 }'
}

echo "redis-benchmark -t set,get -d 128 -r 1000000 -c $CLIENTS; servers on CPU $SERVER_CPU, benchmark on CPU $CLIENT_CPU"
echo "corekv: $("$COREKV_BIN" --version)   redis: $(redis-server --version | awk '{print $3}')"
RESULTS="$LOGDIR/results"
: >"$RESULTS"
for depth in $DEPTHS; do
    var="N_$depth"
    n=${!var:-1000000}
    bench "$RESP_PORT" "$depth" "$n" | sed "s/^/corekv $depth /" >>"$RESULTS"
    bench "$REDIS_PORT" "$depth" "$n" | sed "s/^/redis $depth /" >>"$RESULTS"
done
errors=$(redis-cli -p "$RESP_PORT" INFO stats | tr -d '\r' | awk -F: '$1 == "total_error_replies" { print $2 }')

printf '\n%-5s %5s %14s %14s %8s\n' test -P "corekv rps" "redis rps" ratio
for depth in $DEPTHS; do
    for t in SET GET; do
        c=$(awk -v d="$depth" -v t="$t" '$1 == "corekv" && $2 == d && $3 == t { print $4 }' "$RESULTS")
        r=$(awk -v d="$depth" -v t="$t" '$1 == "redis" && $2 == d && $3 == t { print $4 }' "$RESULTS")
        awk -v t="$t" -v d="$depth" -v c="${c:-0}" -v r="${r:-0}" 'BEGIN {
            printf "%-5s %5s %14.0f %14.0f %7.2fx\n", t, d, c, r, (r > 0 ? c / r : 0) }'
    done
done
echo
echo "corekv error replies during the run: ${errors:-?}   (logs: $LOGDIR)"
