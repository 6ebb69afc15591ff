#!/usr/bin/env bash
# A/B of multi-key commands on a two-shard node: what cross-shard atomicity
# (src/shard/txn.rs) costs, and that co-located MSET/MGET pay nothing.
#
#   bench/multikey-ab.sh OLD NEW [rounds]
#
# For each round and arm (alternating) it starts `corekv server --cpus
# $SERVER_CPUS` (two shards) and runs redis-benchmark on $CLIENT_CPU with
# -c $CLIENTS -P $PIPELINE -n $REQUESTS for four commands, keys random
# (`__rand_int__`, -r 1000000) under a hash tag:
#   mset-local   MSET {b}:r v {b}:r v {b}:r v {b}:r v   (one slot: one shard)
#   mget-local   MGET {b}:r {b}:r {b}:r {b}:r
#   mset-cross   MSET {a}:r v {b}:r v {a}:r v {b}:r v   ({a} is on shard 1, {b} on shard 0)
#   mget-cross   MGET {a}:r {b}:r {a}:r {b}:r
# and reports requests/s and the server's CPU time per request (from
# /proc, over the whole test). A median line per arm and test and the
# new/old ratio close the run. On a shared machine, hold a lock (flock) so no
# other benchmark overlaps it.
#
# Environment: SERVER_CPUS [0,1] CLIENT_CPU [1] CLIENTS [50] PIPELINE [16]
#              REQUESTS [300000]
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,20p' "$0"; exit 2; }
OLD=$1 NEW=$2 ROUNDS=${3:-2}
SERVER_CPUS=${SERVER_CPUS:-0,1} CLIENT_CPU=${CLIENT_CPU:-1}
CLIENTS=${CLIENTS:-50} PIPELINE=${PIPELINE:-16} REQUESTS=${REQUESTS:-300000}
tmp=$(mktemp -d)
sp=
cleanup() { [[ -n $sp ]] && kill "$sp" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

declare -A CMDS=(
    [mset-local]="MSET {b}:__rand_int__ v {b}:__rand_int__ v {b}:__rand_int__ v {b}:__rand_int__ v"
    [mget-local]="MGET {b}:__rand_int__ {b}:__rand_int__ {b}:__rand_int__ {b}:__rand_int__"
    [mset-cross]="MSET {a}:__rand_int__ v {b}:__rand_int__ v {a}:__rand_int__ v {b}:__rand_int__ v"
    [mget-cross]="MGET {a}:__rand_int__ {b}:__rand_int__ {a}:__rand_int__ {b}:__rand_int__"
)
TESTS=(mset-local mget-local mset-cross mget-cross)

start_server() { # BIN
    local try
    for try in 1 2 3 4 5; do
        nport=$((20000 + RANDOM % 20000)) rport=$((nport + 5))
        taskset -c "$SERVER_CPUS" "$1" server --cpus "$SERVER_CPUS" --port "$nport" \
            --resp-port "$rport" --stats-interval 0 >"$tmp/server.log" 2>&1 &
        sp=$!
        for _ in $(seq 50); do grep -q "corekv ready" "$tmp/server.log" && break; sleep 0.1; done
        if kill -0 "$sp" 2>/dev/null; then break; fi
        wait "$sp" 2>/dev/null || true
        echo "server did not start (try $try)" >&2
    done
    # The tags must be on different shards (two shards split the slots in halves).
    [[ $(redis-cli -p "$rport" CLUSTER KEYSLOT '{a}') -ge 8192 && \
       $(redis-cli -p "$rport" CLUSTER KEYSLOT '{b}') -lt 8192 ]] || { echo "tags not split" >&2; exit 1; }
}

stop_server() { kill "$sp"; wait "$sp" 2>/dev/null || true; sp=; }

one() { # BIN LABEL
    local t a b rps
    start_server "$1"
    for t in "${TESTS[@]}"; do
        a=$(cpu_ticks "$sp")
        # shellcheck disable=SC2086 # the command is word-split on purpose
        rps=$(taskset -c "$CLIENT_CPU" redis-benchmark -p "$rport" -c "$CLIENTS" -n "$REQUESTS" \
            -P "$PIPELINE" -r 1000000 --csv ${CMDS[$t]} 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"')
        b=$(cpu_ticks "$sp")
        python3 -c "import sys; l,t,r,a,b,k,n=sys.argv[1:]; print(f'{l:4} {t:11} {float(r):10.0f} rps  server CPU {(int(b)-int(a))/int(k)*1e9/int(n):8.1f} ns/req')" \
            "$2" "$t" "$rps" "$a" "$b" "$tck" "$REQUESTS" | tee -a "$tmp/rows"
    done
    stop_server
}

echo "multi-key A/B: 2 shards on CPUs $SERVER_CPUS, redis-benchmark on CPU $CLIENT_CPU: -c $CLIENTS -P $PIPELINE -n $REQUESTS -r 1000000"
echo "old: $OLD   new: $NEW"
for _ in $(seq "$ROUNDS"); do
    one "$OLD" old
    one "$NEW" new
done
python3 - "$tmp/rows" <<'PY'
import re, statistics, sys
rows = [r.split() for r in open(sys.argv[1]).read().splitlines()]
def med(arm, test, col):
    v = [float(r[col]) for r in rows if r[0] == arm and r[1] == test]
    return statistics.median(v) if v else float("nan")
for test in ("mset-local", "mget-local", "mset-cross", "mget-cross"):
    for name, col in (("rps", 2), ("server ns/req", 6)):
        o, n = med("old", test, col), med("new", test, col)
        print(f"median {test:11} {name:14} old {o:12.1f}   new {n:12.1f}   new/old {n / o if o else float('nan'):.2f}x")
PY
