#!/usr/bin/env bash
# `make bench`: corekv against redis-server and memcached on this machine,
# same workload, pinned, one after the other — then corekv's open-loop
# latency point.
#
#   1. corekv server (`--cpus $SERVER_CPU --no-resp`, taskset to SERVER_CPU),
#      `corekv bench` on CLIENT_CPU, YCSB-B theta 0.99, batch 8192.
#   2. redis-server (persistence off) pinned to the same SERVER_CPU, the same
#      bench with `--target redis` (pipelined GET/SET, depth = batch).
#   3. memcached (`-t 1`, one worker thread) pinned to the same SERVER_CPU, the
#      same bench with `--target memcached` (text protocol: multi-gets of up
#      to 64 keys and sets, pipelined, depth = batch).
#   4. The comparison table and the ratios.
#   5. Latency: corekv's closed-loop peak at batch 1024, then an open-loop run
#      at half that rate; p99 batch latency against the 1 ms target.
# Everything goes to results/<timestamp>/ (results/latest points at it):
# report.json, *.hgrm and PNG plots per run, comparison.txt, summary.txt.
#
# Environment (defaults in brackets):
#   SECS [10] WARMUP [2] BATCH [8192] SESSIONS [8] WORKLOAD [YCSB-B] THETA [0.99]
#   SERVER_CPU [0] CLIENT_CPU [1]  LAT_BATCH [1024] LAT_SECS [SECS]
#   LAT_FRACTION [0.5]  SEED [12345]  RESULTS [results]  COREKV_BIN [target/release/corekv]
#   REDIS_SERVER [redis-server]  SKIP_REDIS [0]  MEMCACHED [memcached]
#   SKIP_MEMCACHED [0]  EXTRA_BENCH_ARGS [""]
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${COREKV_BIN:-target/release/corekv}
SECS=${SECS:-10}
WARMUP=${WARMUP:-2}
BATCH=${BATCH:-8192}
SESSIONS=${SESSIONS:-8}
WORKLOAD=${WORKLOAD:-YCSB-B}
THETA=${THETA:-0.99}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
LAT_BATCH=${LAT_BATCH:-1024}
LAT_SECS=${LAT_SECS:-$SECS}
LAT_FRACTION=${LAT_FRACTION:-0.5}
SEED=${SEED:-12345}
RESULTS=${RESULTS:-results}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
SKIP_REDIS=${SKIP_REDIS:-0}
MEMCACHED=${MEMCACHED:-memcached}
SKIP_MEMCACHED=${SKIP_MEMCACHED:-0}
EXTRA_BENCH_ARGS=${EXTRA_BENCH_ARGS:-}

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -x "$BIN" ]] || die "$BIN not found: run 'make release' (or set COREKV_BIN)"
command -v taskset >/dev/null || die "taskset not found (apt-get install util-linux)"
ncpu=$(nproc)
if [[ $SERVER_CPU -ge $ncpu || $CLIENT_CPU -ge $ncpu ]]; then
    die "SERVER_CPU=$SERVER_CPU / CLIENT_CPU=$CLIENT_CPU, but this machine has $ncpu CPU(s)"
fi
[[ $SERVER_CPU != "$CLIENT_CPU" ]] || log "warning: server and load generator share CPU $SERVER_CPU"

# redis-server: install it when missing and we may, else say how.
redis_ok=0
if [[ $SKIP_REDIS != 1 ]]; then
    if ! command -v "$REDIS_SERVER" >/dev/null; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            log "redis-server missing: apt-get install -y redis-server"
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2 ||
                log "warning: apt-get install redis-server failed"
            # The package starts a system instance on 6379; ours uses its own port.
        fi
    fi
    if command -v "$REDIS_SERVER" >/dev/null; then
        redis_ok=1
    else
        log "redis-server is not installed: install it with 'sudo apt-get install redis-server'"
        log "(Debian/Ubuntu) or set REDIS_SERVER=/path/to/redis-server; running corekv only"
    fi
fi

# memcached: the same, for the third column.
mc_ok=0
if [[ $SKIP_MEMCACHED != 1 ]]; then
    if ! command -v "$MEMCACHED" >/dev/null; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            log "memcached missing: apt-get install -y memcached"
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq memcached) >&2 ||
                log "warning: apt-get install memcached failed"
        fi
    fi
    if command -v "$MEMCACHED" >/dev/null; then
        mc_ok=1
    else
        log "memcached is not installed: 'sudo apt-get install memcached' or set MEMCACHED=...;"
        log "running without it"
    fi
fi

ts=$(date +%Y%m%d-%H%M%S)
OUT="$RESULTS/$ts"
mkdir -p "$OUT"
ln -sfn "$ts" "$RESULTS/latest"
log "results in $OUT"

# A port nothing listens on (bash /dev/tcp probe).
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT

# start_corekv LOG -> sets SERVER_PID, PORT
start_corekv() {
    PORT=$(free_port)
    taskset -c "$SERVER_CPU" "$BIN" server --cpus "$SERVER_CPU" --no-resp --port "$PORT" \
        --stats-interval 1 >"$1" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        grep -q "corekv ready" "$1" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$1" >&2; die "corekv server failed to start"; }
        sleep 0.1
    done
    die "corekv server did not become ready (see $1)"
}

start_redis() {
    PORT=$(free_port)
    taskset -c "$SERVER_CPU" "$REDIS_SERVER" --port "$PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --protected-mode no --daemonize no --logfile "$1" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$1" >&2; die "redis-server failed to start"; }
        sleep 0.1
    done
    die "redis-server did not start (see $1)"
}

start_memcached() {
    PORT=$(free_port)
    local user=()
    [[ $(id -u) == 0 ]] && user=(-u root) # memcached refuses root without -u
    taskset -c "$SERVER_CPU" "$MEMCACHED" -p "$PORT" -l 127.0.0.1 -U 0 -t 1 -m 4096 \
        "${user[@]}" >"$1" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$1" >&2; die "memcached failed to start"; }
        sleep 0.1
    done
    die "memcached did not start (see $1)"
}

# bench NAME TARGET [extra args...]
bench() {
    local name="$1" target="$2"
    shift 2
    log "$name: corekv bench --target $target on CPU $CLIENT_CPU -> $OUT/$name"
    # shellcheck disable=SC2086
    taskset -c "$CLIENT_CPU" "$BIN" bench --target "$target" --hosts "127.0.0.1:$PORT" \
        --cpus "$CLIENT_CPU" --workload "$WORKLOAD" --theta "$THETA" --secs "$SECS" \
        --warmup "$WARMUP" --sessions "$SESSIONS" --seed "$SEED" --out "$OUT/$name" \
        "$@" $EXTRA_BENCH_ARGS | tee "$OUT/$name.txt"
}

# Top-level number from a report.json: json_num FILE KEY
json_num() { sed -n "s/^  \"$2\": \([-0-9.eE+]*\),\{0,1\}$/\1/p" "$1" | head -n 1; }

# 1. corekv
start_corekv "$OUT/corekv-server.log"
bench corekv corekv --batch "$BATCH"
stop_server

# 2. redis-server
if [[ $redis_ok == 1 ]]; then
    start_redis "$OUT/redis-server.log"
    bench redis redis --batch "$BATCH"
    stop_server
fi

# 3. memcached
if [[ $mc_ok == 1 ]]; then
    start_memcached "$OUT/memcached.log"
    bench memcached memcached --batch "$BATCH"
    stop_server
fi

# 4. comparison
{
    echo "== corekv vs redis-server vs memcached: $WORKLOAD theta $THETA, batch/pipeline $BATCH," \
        "$SESSIONS sessions, server on CPU $SERVER_CPU, load generator on CPU $CLIENT_CPU, ${SECS} s each =="
    reports=("$OUT/corekv/report.json")
    names=corekv
    if [[ $redis_ok == 1 ]]; then
        reports+=("$OUT/redis/report.json")
        names+=,redis-server
    else
        echo "(redis-server not installed: not compared)"
    fi
    if [[ $mc_ok == 1 ]]; then
        reports+=("$OUT/memcached/report.json")
        names+=,memcached
    else
        echo "(memcached not installed: not compared)"
    fi
    plot=()
    [[ ${#reports[@]} -gt 1 ]] && plot=(--plot "$OUT/latency-corekv-vs-redis.png")
    "$BIN" report compare "${reports[@]}" --names "$names" "${plot[@]}"
} | tee "$OUT/comparison.txt"

# 5. open-loop latency point: corekv's closed-loop peak at LAT_BATCH, then an
#    open-loop run at LAT_FRACTION of that peak (latency from intended send times).
start_corekv "$OUT/corekv-open-server.log"
SECS=$LAT_SECS bench "corekv-peak-$LAT_BATCH" corekv --batch "$LAT_BATCH"
peak=$(json_num "$OUT/corekv-peak-$LAT_BATCH/report.json" ops_per_sec)
rate=$(awk -v p="$peak" -v f="$LAT_FRACTION" 'BEGIN { printf "%.0f", p * f }')
SECS=$LAT_SECS bench corekv-open corekv --batch "$LAT_BATCH" --rate "$rate"
stop_server

c_ops=$(json_num "$OUT/corekv/report.json" ops_per_sec)
r_ops=""
[[ $redis_ok == 1 ]] && r_ops=$(json_num "$OUT/redis/report.json" ops_per_sec)
m_ops=""
[[ $mc_ok == 1 ]] && m_ops=$(json_num "$OUT/memcached/report.json" ops_per_sec)
p99=$(json_num "$OUT/corekv-open/report.json" p99_batch_us)
cpu=$(sed -n 's/^  client CPU *\(.*\)$/\1/p' "$OUT/corekv.txt" | head -n 1)
gen=$(sed -n 's/^  generator rate *\(.*\)$/\1/p' "$OUT/corekv.txt" | head -n 1)
{
    echo
    echo "== summary ($OUT) =="
    awk -v c="$c_ops" -v r="$r_ops" -v m="$m_ops" -v p="$p99" -v rate="$rate" -v peak="$peak" -v b="$BATCH" -v lb="$LAT_BATCH" '
        function verdict(ok) { return ok ? "met" : "MISSED" }
        BEGIN {
            printf "  corekv        %10.3f M op/s  (batch %d)           target >= 10 M op/s: %s\n", c / 1e6, b, verdict(c >= 10e6)
            if (r != "") {
                printf "  redis-server  %10.3f M op/s  (pipeline %d)\n", r / 1e6, b
                printf "  ratio         %10.2fx                          target >= 10x: %s\n", c / r, verdict(c >= 10 * r)
            }
            if (m != "") {
                printf "  memcached     %10.3f M op/s  (pipeline %d, multi-get <= 64, -t 1)\n", m / 1e6, b
                printf "  ratio         %10.2fx\n", c / m
            }
            printf "  open loop     p99 batch %.0f us at %.3f M op/s = half the closed-loop peak %.3f M op/s at batch %d   target <= 1000 us: %s\n", p, rate / 1e6, peak / 1e6, lb, verdict(p <= 1000)
        }'
    echo "  load generator: client CPU $cpu; generator $gen"
} | tee "$OUT/summary.txt"
log "done: $OUT (results/latest)"
