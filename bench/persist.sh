#!/usr/bin/env bash
# The persistence figures of the README ("Persistence") and
# docs/performance.md ("Persistence"), reproduced:
#
#   bench/persist.sh [throughput|sessions|redis|recovery|snapshot|all]
#
#   throughput  the seed workload (YCSB-B and YCSB-A, batch 8192, 8 sessions)
#               in memory against --appendfsync always and everysec: one
#               bench/ab.sh each, rounds alternating, medians and ratios.
#   sessions    the same for `always` with SESSIONS_MANY sessions (more
#               batches in flight for a group commit to gather).
#   redis       the peer: redis-server without persistence against
#               redis-server --appendonly yes --appendfsync always|everysec,
#               same disk, same driver (corekv bench --target redis).
#   recovery    KEYS keys (uniform writes of the seed's 128-byte values until
#               99 % of the keys exist), the log drained, BGSAVE and its
#               completion checked (aof_rewrites, LASTSAVE), a log tail of
#               TAIL_PCT % more writes, drained and synced, kill -9, restart:
#               each shard's "keys loaded ... in S s" line and the time to
#               "ready".
#   snapshot    p50/p99/p99.9 batch latency of an open-loop run (RATE ops/s,
#               batch 1024) over 1 M keys without and with BGSAVE every
#               second, the snapshots that finished during the run and the
#               longest slice INFO reports. Both start after the preload's
#               log is drained and no rewrite runs.
#
# Every wait is bounded and fails loudly (the server's last lines) when the
# log does not drain or a BGSAVE does not finish.
#
# Every run starts from an empty DIR, which must be on the disk to measure
# (not a tmpfs). With LOCK=FILE each A/B or measurement holds `flock FILE`
# (one at a time on a shared machine).
#
# Environment: BIN [target/release/corekv] DIR [/var/tmp/corekv-persist]
#              ROUNDS [3] SECS [6] SESSIONS_MANY [32] KEYS ["1000000 10000000"]
#              TAIL_PCT [10] RATE [400000] LAT_SECS [10] SERVER_CPU [0]
#              CLIENT_CPU [1] LOCK [""] COLD [0: 1 drops the page cache
#              before each restart, needs root]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/corekv}
DIR=${DIR:-/var/tmp/corekv-persist}
ROUNDS=${ROUNDS:-3} SECS=${SECS:-6} SESSIONS_MANY=${SESSIONS_MANY:-32}
KEYS=${KEYS:-1000000 10000000} TAIL_PCT=${TAIL_PCT:-10}
RATE=${RATE:-400000} LAT_SECS=${LAT_SECS:-10}
SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1}
what=${1:-all}
[[ -x $BIN ]] || { echo "$BIN not found: make release" >&2; exit 1; }
BIN=$(realpath "$BIN")
mkdir -p "$DIR"
fs=$(stat -f -c %T "$DIR")
[[ $fs != tmpfs ]] || { echo "DIR=$DIR is on tmpfs: use a directory on the disk" >&2; exit 1; }
locked() { if [[ -n ${LOCK:-} ]]; then flock "$LOCK" "$@"; else "$@"; fi; }
say() { printf '\n## %s (%s UTC)\n' "$*" "$(date -u +%F\ %H:%M)"; }
d=$DIR/data

ab() { # LABEL WORKLOAD OLD NEW OLD_ARGS NEW_ARGS [SESSIONS]
    say "$1"
    echo "+ WIPE=$d SESSIONS=${7:-8} SECS=$SECS EXTRA_BENCH_ARGS='--workload $2' OLD_ARGS='$5' NEW_ARGS='$6' bench/ab.sh $3 $4 $ROUNDS"
    locked env WIPE="$d" SESSIONS="${7:-8}" SECS="$SECS" BENCH_BIN="$BIN" \
        EXTRA_BENCH_ARGS="--workload $2" OLD_ARGS="$5" NEW_ARGS="$6" \
        SERVER_CPU="$SERVER_CPU" CLIENT_CPU="$CLIENT_CPU" \
        bench/ab.sh "$3" "$4" "$ROUNDS" | tail -n 6
}

always="--appendonly yes --appendfsync always --dir $d"
everysec="--appendonly yes --appendfsync everysec --dir $d"

if [[ $what == throughput || $what == all ]]; then
    for wl in YCSB-B YCSB-A; do
        ab "$wl: in memory (old) vs appendfsync always (new)" "$wl" "$BIN" "$BIN" "" "$always"
        ab "$wl: in memory (old) vs appendfsync everysec (new)" "$wl" "$BIN" "$BIN" "" "$everysec"
    done
fi
if [[ $what == sessions || $what == all ]]; then
    for wl in YCSB-B YCSB-A; do
        ab "$wl, $SESSIONS_MANY sessions: in memory (old) vs always (new)" "$wl" "$BIN" "$BIN" "" "$always" "$SESSIONS_MANY"
    done
fi
if [[ $what == redis || $what == all ]]; then
    command -v redis-server >/dev/null || { echo "redis-server not installed" >&2; exit 1; }
    for wl in YCSB-B YCSB-A; do
        for mode in always everysec; do
            ab "$wl: redis-server in memory (old) vs appendfsync $mode (new)" "$wl" redis redis "" \
                "--appendonly yes --appendfsync $mode --dir $d"
        done
    done
fi

# start_server ARGS...: sets sp and the ports; waits for "ready" (bounded).
start_server() {
    port=$((20000 + RANDOM % 20000)) rport=$((port + 2))
    t0=$(date +%s.%N)
    taskset -c "$SERVER_CPU" "$BIN" server --cpus "$SERVER_CPU" --port "$port" --resp-port "$rport" \
        --stats-interval 0 "$@" >"$DIR/server.log" 2>&1 &
    sp=$!
    for _ in $(seq 6000); do grep -q "corekv ready" "$DIR/server.log" && break; sleep 0.05; done
    t1=$(date +%s.%N)
    grep -q "corekv ready" "$DIR/server.log" || { cat "$DIR/server.log"; exit 1; }
}
write_for() { # RECORDS SECS SEED: uniform writes of 128-byte values
    taskset -c "$CLIENT_CPU" "$BIN" bench --hosts "127.0.0.1:$port" --cpus "$CLIENT_CPU" \
        --records "$1" --read-ratio 0 --distribution uniform --value-size 128 --batch 8192 \
        --secs "$2" --warmup 0 --seed "$3" -q --json "$DIR/load.json" >/dev/null
}
load() { # RECORDS: writes until 99 % of the keys exist (5 s rounds, at most 60)
    local i
    for i in $(seq 60); do
        write_for "$1" 5 "$i"
        (( $(redis-cli -p "$rport" DBSIZE) * 100 >= $1 * 99 )) && break
    done
}
info() { redis-cli -p "$rport" INFO "$1" | tr -d '\r' | grep "^$2:" | cut -d: -f2; }
die() { echo "persist.sh: $*" >&2; tail -5 "$DIR/server.log" >&2; kill "$sp" 2>/dev/null; exit 1; }
# quiet: waits (at most 300 s) until the server holds no buffered log
# records and runs no rewrite, so a measurement does not queue behind the
# preload's backlog; fails loudly otherwise.
quiet() {
    local i buf run
    for i in $(seq 3000); do
        buf=$(info persistence aof_buffer_length) run=$(info persistence aof_rewrite_in_progress)
        [[ $buf == 0 && $run == 0 ]] && return 0
        sleep 0.1
    done
    die "the log did not drain in 300 s (aof_buffer_length $buf, aof_rewrite_in_progress $run)"
}
# bgsave_done: BGSAVE on a quiet server, then waits (at most 600 s) until
# every shard's snapshot is in place: aof_rewrites grew by the shard count,
# no rewrite runs, rdb_last_bgsave_status ok, LASTSAVE not older than the
# request. Fails loudly otherwise. Prints the seconds it took.
bgsave_done() {
    quiet
    local before shards t0 r i
    before=$(info persistence aof_rewrites) shards=$(info server corekv_shards)
    t0=$(date +%s.%N)
    r=$(redis-cli -p "$rport" BGSAVE)
    [[ $r == "Background saving started" ]] || die "BGSAVE answered: $r"
    for i in $(seq 6000); do
        if (( $(info persistence aof_rewrites) >= before + ${shards:-1} )) \
            && [[ $(info persistence aof_rewrite_in_progress) == 0 ]]; then
            [[ $(info persistence rdb_last_bgsave_status) == ok ]] || die "BGSAVE failed"
            (( $(redis-cli -p "$rport" LASTSAVE) >= ${t0%.*} )) || die "LASTSAVE did not move"
            printf '%.2f' "$(echo "$(date +%s.%N) - $t0" | bc)"
            return 0
        fi
        sleep 0.1
    done
    die "BGSAVE did not finish in 600 s"
}
recovery_one() {
    local n=$1
    trap '[[ -n ${sp:-} ]] && kill -9 "$sp" 2>/dev/null' EXIT # never leave a server holding the lock
    rm -rf "$d"; mkdir -p "$d"
    # A 4 GB automatic-rewrite floor: the log tail after the BGSAVE stays a
    # log tail (an automatic rewrite would fold it into a new snapshot).
    start_server --appendonly yes --appendfsync everysec --dir "$d" --auto-aof-rewrite-min-size 4G
    load "$n"
    local keys save_secs
    save_secs=$(bgsave_done)
    keys=$(redis-cli -p "$rport" DBSIZE)
    # The log tail after the snapshot: TAIL_PCT % of n more writes, an
    # open loop at n * TAIL_PCT / 100 / 2 writes a second for 2 s.
    local tail_ops
    taskset -c "$CLIENT_CPU" "$BIN" bench --hosts "127.0.0.1:$port" --cpus "$CLIENT_CPU" \
        --records "$n" --read-ratio 0 --distribution uniform --value-size 128 --batch 1024 \
        --rate $((n * TAIL_PCT / 100 / 2)) --secs 2 --warmup 0 --seed 1000 -q \
        --json "$DIR/load.json" >/dev/null
    tail_ops=$(python3 -c "import json;r=json.load(open('$DIR/load.json'));print(int(r['ops_per_sec']*2))")
    quiet
    sleep 1.5 # everysec: the last written records are synced
    kill -9 "$sp"; wait "$sp" 2>/dev/null || true
    echo "$n keys requested, $keys in the snapshot (BGSAVE took $save_secs s on a quiet server), then $tail_ops writes in the log tail; files: $(du -sh "$d" | cut -f1)"
    ls -l "$d" | grep -E "aof|snap" | awk '{print "  " $5 " " $9}'
    ls "$d" | grep -q '\.snap$' || die "no snapshot file before the kill"
    if [[ ${COLD:-0} == 1 ]] && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
        echo "  (page cache dropped: cold start)"
    else
        echo "  (files in the page cache: warm start)"
    fi
    start_server --appendonly yes --appendfsync everysec --dir "$d"
    grep -E "keys loaded|snapshot|torn" "$DIR/server.log" | sed 's/^/  /'
    printf '  start to ready: %.2f s; keys after restart: %s\n' "$(echo "$t1 - $t0" | bc)" "$(redis-cli -p "$rport" DBSIZE)"
    kill "$sp"; wait "$sp" 2>/dev/null || true
    rm -rf "$d"
}
if [[ $what == recovery || $what == all ]]; then
    for n in $KEYS; do
        say "recovery: $n keys (snapshot + ${TAIL_PCT}% log tail), kill -9, restart"
        locked bash -c "$(declare -f start_server write_for load info die quiet bgsave_done recovery_one); $(declare -p BIN DIR d SERVER_CPU CLIENT_CPU TAIL_PCT); recovery_one $n"
    done
fi

snapshot_run() { # LABEL BGSAVE(0|1)
    trap '[[ -n ${sp:-} ]] && kill -9 "$sp" 2>/dev/null; [[ -n ${saver:-} ]] && kill "$saver" 2>/dev/null' EXIT
    rm -rf "$d"; mkdir -p "$d"
    start_server --appendonly yes --appendfsync everysec --dir "$d"
    load 1000000
    quiet
    local saver= before
    before=$(info persistence aof_rewrites)
    if [[ $2 == 1 ]]; then
        # BGSAVE every second (refused while one runs: then the next second).
        (while true; do redis-cli -p "$rport" BGSAVE >/dev/null 2>&1; sleep 1; done) &
        saver=$!
    fi
    taskset -c "$CLIENT_CPU" "$BIN" bench --hosts "127.0.0.1:$port" --cpus "$CLIENT_CPU" \
        --records 1000000 --batch 1024 --rate "$RATE" --secs "$LAT_SECS" --warmup 1 --seed 3 -q \
        --json "$DIR/lat.json" >/dev/null
    [[ -n $saver ]] && { kill "$saver"; wait "$saver" 2>/dev/null || true; }
    local pause rewrites
    pause=$(info persistence corekv_snapshot_max_pause_us)
    rewrites=$(( $(info persistence aof_rewrites) - before ))
    if [[ $2 == 1 ]] && (( rewrites == 0 )); then die "no snapshot finished during the run"; fi
    python3 - "$DIR/lat.json" "$1" "$pause" "$rewrites" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); lat = r["batch_latency_us"]
print(f"  {sys.argv[2]:16} {r['ops_per_sec']/1e6:6.3f} Mop/s  batch p50 {lat['p50']:.0f} us  p99 {lat['p99']:.0f} us  p99.9 {lat['p999']:.0f} us  max {lat.get('max', float('nan')):.0f} us  snapshots {sys.argv[4]}, longest slice {sys.argv[3]} us")
PY
    kill "$sp"; wait "$sp" 2>/dev/null || true
}
if [[ $what == snapshot || $what == all ]]; then
    say "snapshot pause: open loop $RATE ops/s, batch 1024, 1 M keys, everysec; without vs with BGSAVE every second"
    for _ in $(seq "$ROUNDS"); do
        locked bash -c "$(declare -f start_server write_for load info die quiet snapshot_run); $(declare -p BIN DIR d SERVER_CPU CLIENT_CPU RATE LAT_SECS); snapshot_run 'no snapshot' 0; snapshot_run 'BGSAVE every 1s' 1"
    done
fi
