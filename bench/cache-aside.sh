#!/usr/bin/env bash
# Cache-aside past memory: `corekv bench --cache-aside` (GET; on a miss, SET
# the key in the session's next batch) over RECORDS zipfian keys (θ THETA),
# with memory for about a tenth of them, against
#
#   * corekv with each eviction policy in POLICIES (--max-memory MEMORY),
#   * redis-server with maxmemory-policy allkeys-lru and allkeys-lfu
#     (maxmemory MEMORY),
#   * memcached with -m MEMORY (in MiB; memcached's -m bounds item memory),
#
# each server pinned to SERVER_CPU and the load generator to BENCH_CPU, one
# run after another on an empty server. Then, unless SPARE=0, the same run
# for each server with memory to spare (corekv without a limit, redis-server
# maxmemory 0, memcached -m SPARE_MB), so the cost of eviction reads off one
# table: `vs spare` is a run's throughput over its server's memory-to-spare
# run ("eviction costs ≤ 10% of throughput" means ≥ 0.90 there).
#
# Miss ratio: `after warm-up` counts the measured window only (the cache is
# full by then); `whole run` includes the warm-up from a cold cache.
# `server ns/req` is the server's CPU time (utime + stime from /proc) over
# the measured window per request (GETs and fill SETs: `fills/req` of them
# are SETs), a figure that a noisy machine moves far less than throughput.
#
#   bench/cache-aside.sh                              # 10 M keys, ~1/10 in memory
#   RECORDS=100000 SECS=2 WARMUP=1 bench/cache-aside.sh   # a quick check
#
# Environment (defaults in brackets):
#   RECORDS [10000000]  THETA [0.99]  VALUE_SIZE [128]
#   MEMORY [RECORDS/10 × 200 B: a tenth of the keys at ~200 B/key for 128-byte
#           values (redis-server ~225, corekv ~150: it holds ~1.3 tenths)]
#   SPARE [1]  SPARE_MB [RECORDS × 400 B]
#   POLICIES ["allkeys-lru allkeys-lfu allkeys-random sieve"]
#   SECS [30]  WARMUP [30]  BATCH [1024]  SESSIONS [8]  SEED [12345]
#   SERVER_CPU [0]  BENCH_CPU [1]  RESULTS [results]
#   COREKV_BIN [target/release/corekv]  REDIS_SERVER [redis-server]
#   MEMCACHED [memcached]  SKIP_REDIS [0]  SKIP_MEMCACHED [0]
#   EXTRA_BENCH_ARGS: more `corekv bench` flags for every run, e.g. "--ttl 3600s"
#           (every fill sets a TTL)
# Output: results/cache-aside-<timestamp>/ (one report.json per run, the
# server logs, table.txt), and the table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${COREKV_BIN:-target/release/corekv}
RECORDS=${RECORDS:-10000000}
THETA=${THETA:-0.99}
VALUE_SIZE=${VALUE_SIZE:-128}
MEMORY=${MEMORY:-$((RECORDS / 10 * 200))}
SPARE=${SPARE:-1}
SPARE_MB=${SPARE_MB:-$((RECORDS * 400 / 1048576 + 64))}
POLICIES=${POLICIES:-allkeys-lru allkeys-lfu allkeys-random sieve}
SECS=${SECS:-30}
WARMUP=${WARMUP:-30}
BATCH=${BATCH:-1024}
SESSIONS=${SESSIONS:-8}
SEED=${SEED:-12345}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
RESULTS=${RESULTS:-results}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
MEMCACHED=${MEMCACHED:-memcached}
SKIP_REDIS=${SKIP_REDIS:-0}
SKIP_MEMCACHED=${SKIP_MEMCACHED:-0}

log() { printf '[cache-aside %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -x "$BIN" ]] || die "$BIN not found: run 'make release' (or set COREKV_BIN)"
command -v taskset >/dev/null || die "taskset not found (apt-get install util-linux)"
command -v python3 >/dev/null || die "python3 not found (it reads the JSON reports)"
redis_ok=0
if [[ $SKIP_REDIS != 1 ]]; then
    if command -v "$REDIS_SERVER" >/dev/null; then redis_ok=1; else
        log "redis-server not found (apt-get install redis-server, or REDIS_SERVER=...): skipping it"
    fi
fi
mc_ok=0
if [[ $SKIP_MEMCACHED != 1 ]]; then
    if command -v "$MEMCACHED" >/dev/null; then mc_ok=1; else
        log "memcached not found (apt-get install memcached, or MEMCACHED=...): skipping it"
    fi
fi
MEMORY_MB=$(((MEMORY + 1048575) / 1048576))

OUT="$RESULTS/cache-aside-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
log "results in $OUT; $RECORDS keys, θ $THETA, ${VALUE_SIZE} B values, memory $MEMORY B (${MEMORY_MB} MiB for memcached)"

free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000)) # below the ephemeral range (client ports in TIME_WAIT)
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

wait_up() { # LOG NAME [READY_REGEX]
    for _ in $(seq 200); do
        if [[ -n "${3:-}" ]]; then
            grep -q "$3" "$1" && return 0
        elif (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$1" >&2; die "$2 failed to start"; }
        sleep 0.1
    done
    die "$2 did not start (see $1)"
}

start_corekv() { # LOG [server args...]
    local log_file=$1
    shift
    PORT=$(free_port)
    taskset -c "$SERVER_CPU" "$BIN" server --cpus "$SERVER_CPU" --no-resp --port "$PORT" \
        --stats-interval 0 "$@" >"$log_file" 2>&1 &
    SERVER_PID=$!
    wait_up "$log_file" corekv "corekv ready"
}

start_redis() { # LOG maxmemory policy
    PORT=$(free_port)
    taskset -c "$SERVER_CPU" "$REDIS_SERVER" --port "$PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --protected-mode no --daemonize no --logfile "$1" \
        --maxmemory "$2" --maxmemory-policy "$3" &
    SERVER_PID=$!
    wait_up "$1" redis-server
}

start_memcached() { # LOG megabytes
    PORT=$(free_port)
    local user=()
    [[ $(id -u) == 0 ]] && user=(-u root) # memcached refuses root without -u
    taskset -c "$SERVER_CPU" "$MEMCACHED" -p "$PORT" -l 127.0.0.1 -U 0 -t 1 -m "$2" \
        "${user[@]}" >"$1" 2>&1 &
    SERVER_PID=$!
    wait_up "$1" memcached
}

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

ROWS=() # "name|report.json|spare name"
bench() { # NAME TARGET SPARE_NAME
    log "$1: corekv bench --target $2 --cache-aside on CPU $BENCH_CPU"
    # shellcheck disable=SC2086 # EXTRA_BENCH_ARGS is word-split on purpose
    taskset -c "$BENCH_CPU" "$BIN" bench --target "$2" --hosts "127.0.0.1:$PORT" \
        --cpus "$BENCH_CPU" --cache-aside --records "$RECORDS" --theta "$THETA" \
        --value-size "$VALUE_SIZE" --secs "$SECS" --warmup "$WARMUP" --batch "$BATCH" \
        --sessions "$SESSIONS" --seed "$SEED" --quiet --json "$OUT/$1.json" \
        ${EXTRA_BENCH_ARGS:-} >"$OUT/$1.txt" &
    local bp=$! c0 c1
    # The server's CPU time over the measured window (from the end of the
    # warm-up to the end of the run): its ns per request.
    sleep "$WARMUP"
    c0=$(cpu_ticks "$SERVER_PID")
    wait "$bp"
    c1=$(cpu_ticks "$SERVER_PID")
    echo "$(((c1 - c0) * 1000000000 / $(getconf CLK_TCK)))" >"$OUT/$1.cpu_ns"
    ROWS+=("$1|$OUT/$1.json|$3")
}

for p in $POLICIES; do
    start_corekv "$OUT/corekv-$p.log" --max-memory "$MEMORY" --maxmemory-policy "$p"
    bench "corekv-$p" corekv corekv-spare
    stop_server
done
if [[ $redis_ok == 1 ]]; then
    for p in allkeys-lru allkeys-lfu; do
        start_redis "$OUT/redis-$p.log" "$MEMORY" "$p"
        bench "redis-$p" redis redis-spare
        stop_server
    done
fi
if [[ $mc_ok == 1 ]]; then
    start_memcached "$OUT/memcached.log" "$MEMORY_MB"
    bench memcached memcached memcached-spare
    stop_server
fi
if [[ $SPARE == 1 ]]; then
    start_corekv "$OUT/corekv-spare.log"
    bench corekv-spare corekv ""
    stop_server
    if [[ $redis_ok == 1 ]]; then
        start_redis "$OUT/redis-spare.log" 0 noeviction
        bench redis-spare redis ""
        stop_server
    fi
    if [[ $mc_ok == 1 ]]; then
        start_memcached "$OUT/memcached-spare.log" "$SPARE_MB"
        bench memcached-spare memcached ""
        stop_server
    fi
fi

python3 - "$OUT/table.txt" "${ROWS[@]}" <<'PY'
import json, sys
out, rows = sys.argv[1], [r.split("|") for r in sys.argv[2:]]
rep = {name: json.load(open(path)) for name, path, _ in rows}
def ns_per_req(name, path):
    # Server CPU ns per request (GET or fill SET) over the measured window.
    try:
        return int(open(path[:-len(".json")] + ".cpu_ns").read()) / max(rep[name]["totals"]["ops"], 1)
    except (OSError, ValueError, KeyError):
        return float("nan")
lines = ["%-22s %12s %12s %14s %9s %10s %8s" % ("run", "miss ratio", "whole run", "throughput", "vs spare", "server", "fills"),
         "%-22s %12s %12s %14s %9s %10s %8s" % ("", "after w-up", "(cold start)", "Mop/s", "", "ns/req", "/req")]
for name, path, spare in rows:
    r = rep[name]
    vs = "-"
    if spare in rep and rep[spare]["ops_per_sec"] > 0:
        vs = "%.3f" % (r["ops_per_sec"] / rep[spare]["ops_per_sec"])
    t = r.get("totals", {})
    fills = t.get("puts", 0) / max(t.get("ops", 0), 1)
    lines.append("%-22s %12.4f %12.4f %14.3f %9s %10.1f %8.3f" % (
        name, r["miss_ratio"], r["miss_ratio_whole_run"], r["ops_per_sec"] / 1e6, vs,
        ns_per_req(name, path), fills))
ours = [n for n, _, s in rows if n.startswith("corekv-") and s]
theirs = [n for n, _, s in rows if n == "redis-allkeys-lru"]
if ours:
    best = min(ours, key=lambda n: rep[n]["miss_ratio"])
    lines.append("")
    lines.append("corekv's lowest miss ratio: %s, %.4f" % (best, rep[best]["miss_ratio"]))
    if theirs:
        t = rep[theirs[0]]["miss_ratio"]
        lines.append("redis-server allkeys-lru: %.4f -> corekv %s" % (
            t, "lower" if rep[best]["miss_ratio"] < t else "NOT lower"))
    if "corekv-spare" in rep:
        cost = 1 - rep[best]["ops_per_sec"] / rep["corekv-spare"]["ops_per_sec"]
        lines.append("eviction cost for %s: %.1f%% of throughput (target <= 10%%)" % (best, 100 * cost))
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
sys.stdout.write(text)
PY
