#!/usr/bin/env bash
# Expiry at scale: does memory come back after a million keys expire, under
# load? Starts a corekv node (SERVER_CPU), loads the seed's data set (keys
# "0".."SEED_KEYS-1", 128-byte values) and runs the seed workload on it
# (`corekv bench`, YCSB-B θ 0.99, on BENCH_CPU) for the whole experiment.
# Then it writes KEYS more keys ("ttl:0".., same values) with TTLs spread
# evenly over TTL_MIN_MS..TTL_MAX_MS, and samples used_memory (INFO memory),
# RSS (/proc/<pid>/status), the key count and expired_keys every second.
#
# Verdict: PASS when used_memory is back to its baseline (the seed's data set
# under load, sampled before the TTL keys; within TOLERANCE_PCT percent, and
# within 1 MiB) no later than twice the longest TTL after the last TTL key
# was written. RSS is printed beside it: memory freed inside the allocator's
# heap is reused for later writes but need not go back to the kernel.
# The bench's per-second throughput follows, to see whether expiry dips it.
#
#   bench/expiry-scale.sh                                  # 1 M keys, TTL 1–10 s
#   KEYS=20000 SEED_KEYS=20000 TTL_MAX_MS=3000 COREKV_BIN=target/debug/corekv \
#     bench/expiry-scale.sh                                # a small check
#
# Environment (defaults in brackets):
#   KEYS [1000000]  SEED_KEYS [1000000]  TTL_MIN_MS [1000]  TTL_MAX_MS [10000]
#   VALUE_SIZE [128]  TOLERANCE_PCT [2]  SERVER_CPU [0]  BENCH_CPU [1]
#   BENCH_ARGS ["--batch 1024 --sessions 8"]  COREKV_BIN [target/release/corekv]
#   RESULTS [results]
# Output: results/expiry-scale-<timestamp>/ (series.csv, bench.json,
# server.log, verdict.txt), the series and the verdict on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${COREKV_BIN:-target/release/corekv}
KEYS=${KEYS:-1000000}
SEED_KEYS=${SEED_KEYS:-1000000}
TTL_MIN_MS=${TTL_MIN_MS:-1000}
TTL_MAX_MS=${TTL_MAX_MS:-10000}
VALUE_SIZE=${VALUE_SIZE:-128}
TOLERANCE_PCT=${TOLERANCE_PCT:-2}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
BENCH_ARGS=${BENCH_ARGS:---batch 1024 --sessions 8}
RESULTS=${RESULTS:-results}

log() { printf '[expiry-scale %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ -x "$BIN" ]] || die "$BIN not found: run 'make release' (or set COREKV_BIN)"
command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"
command -v python3 >/dev/null || die "python3 not found"
command -v taskset >/dev/null || die "taskset not found (apt-get install util-linux)"
((TTL_MIN_MS >= 1 && TTL_MAX_MS >= TTL_MIN_MS)) || die "need 1 <= TTL_MIN_MS <= TTL_MAX_MS"

OUT="$RESULTS/expiry-scale-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"

free_port() { # a port nothing listens on, below the ephemeral range
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
            ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}
PORT=$(free_port)
RESP_PORT=$(free_port)

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

taskset -c "$SERVER_CPU" "$BIN" server --cpus "$SERVER_CPU" --port "$PORT" \
    --resp-port "$RESP_PORT" --stats-interval 0 >"$OUT/server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 200); do
    grep -q "corekv ready" "$OUT/server.log" && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$OUT/server.log" >&2; die "corekv failed to start"; }
    sleep 0.1
done
grep -q "corekv ready" "$OUT/server.log" || die "corekv did not start"

cli() { redis-cli -p "$RESP_PORT" "$@"; }
field() { awk -F: -v f="$1" '$1 == f { gsub("\r", "", $2); print $2 }'; }
used() { cli INFO memory | field used_memory; }
expired() { cli INFO stats | field expired_keys; }
rss() { awk '/^VmRSS/ { print $2 * 1024 }' "/proc/$SERVER/status"; }

# load PREFIX COUNT TTL_MIN TTL_MAX (TTL 0: none)
load() {
    python3 - "$@" "$VALUE_SIZE" <<'PY' | cli --pipe >/dev/null
import sys
prefix, n, lo, hi, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
v = "x" * size
w = sys.stdout.write
span = hi - lo + 1
for i in range(n):
    k = prefix + str(i)
    if hi > 0:
        # TTLs spread evenly over [lo, hi] and shuffled over the keys.
        ms = str(lo + (i * 7919) % span)
        w("*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nPX\r\n$%d\r\n%s\r\n" % (len(k), k, size, v, len(ms), ms))
    else:
        w("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, size, v))
PY
}

log "loading the seed's data set: $SEED_KEYS keys"
load "" "$SEED_KEYS" 0 0
# The seed workload for the whole experiment: a generous upper bound on the
# time the TTL keys take to load, plus twice the longest TTL, plus margins.
BENCH_SECS=$((5 + KEYS / 50000 + 2 * TTL_MAX_MS / 1000 + 10))
log "seed workload for ${BENCH_SECS}s on CPU $BENCH_CPU"
now_ms() { echo $(($(date +%s%N) / 1000000)); }
BENCH_T0=$(now_ms)
# shellcheck disable=SC2086
taskset -c "$BENCH_CPU" "$BIN" bench --hosts "127.0.0.1:$PORT" --cpus "$BENCH_CPU" \
    --records "$SEED_KEYS" --secs "$BENCH_SECS" --warmup 0 --quiet \
    --json "$OUT/bench.json" $BENCH_ARGS >"$OUT/bench.txt" 2>&1 &
BENCH=$!
PIDS+=("$BENCH")
sleep 3

T0=$(now_ms)
secs_since_t0() { awk -v d="$(($(now_ms) - T0))" 'BEGIN { printf "%.1f", d / 1000 }'; }
sample() { # phase
    printf '%s,%s,%s,%s,%s,%s\n' "$(secs_since_t0)" "$1" "$(used)" \
        "$(rss)" "$(cli DBSIZE)" "$(expired)"
}
echo "t_secs,phase,used_memory,rss,keys,expired_keys" >"$OUT/series.csv"
for _ in 1 2 3; do
    sample baseline >>"$OUT/series.csv"
    sleep 1
done

log "writing $KEYS keys with TTLs of ${TTL_MIN_MS}-${TTL_MAX_MS} ms"
(
    while :; do
        sample loading >>"$OUT/series.csv"
        sleep 1
    done
) &
SAMPLER=$!
PIDS+=("$SAMPLER")
load "ttl:" "$KEYS" "$TTL_MIN_MS" "$TTL_MAX_MS"
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
LOADED=$(secs_since_t0)
LOAD_T0=$(awk -F, '$2 == "loading" { print $1; exit }' "$OUT/series.csv")
DEADLINE_SECS=$((2 * TTL_MAX_MS / 1000 + 1))
log "loaded at t=${LOADED}s; sampling for ${DEADLINE_SECS}s + 3s"
for _ in $(seq $((DEADLINE_SECS + 3))); do
    sample expiring >>"$OUT/series.csv"
    sleep 1
done
wait "$BENCH" || log "warning: the bench exited with an error (see $OUT/bench.txt)"

python3 - "$OUT" "$LOADED" "$((2 * TTL_MAX_MS))" "$TOLERANCE_PCT" \
    "$(awk -v d="$((BENCH_T0 - T0))" 'BEGIN { printf "%.3f", d / 1000 }')" "${LOAD_T0:-0}" <<'PY'
import csv, json, os, sys
out, loaded, limit_ms, tol = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
bench_t0, load_t0 = float(sys.argv[5]), float(sys.argv[6])
rows = list(csv.DictReader(open(os.path.join(out, "series.csv"))))
base = [r for r in rows if r["phase"] == "baseline"]
b_used = sum(int(r["used_memory"]) for r in base) / len(base)
b_rss = sum(int(r["rss"]) for r in base) / len(base)
slack = max(b_used * tol / 100, 1 << 20)
lines = ["%7s  %-9s %14s %14s %10s %12s" % ("t (s)", "phase", "used_memory", "RSS", "keys", "expired")]
back = None
for r in rows:
    t, u = float(r["t_secs"]), int(r["used_memory"])
    lines.append("%7.1f  %-9s %11.1f MB %11.1f MB %10s %12s" % (
        t, r["phase"], u / 1e6, int(r["rss"]) / 1e6, r["keys"], r["expired_keys"]))
    if back is None and r["phase"] == "expiring" and u <= b_used + slack:
        back = t
peak = max(int(r["used_memory"]) for r in rows)
lines.append("")
lines.append("baseline used_memory %.1f MB, RSS %.1f MB; peak used_memory %.1f MB; last TTL key written at t=%.1f s"
             % (b_used / 1e6, b_rss / 1e6, peak / 1e6, loaded))
last = rows[-1]
lines.append("at the end: used_memory %.1f MB, RSS %.1f MB (RSS - baseline: %+.1f MB)"
             % (int(last["used_memory"]) / 1e6, int(last["rss"]) / 1e6, (int(last["rss"]) - b_rss) / 1e6))
if back is not None and (back - loaded) * 1000 <= limit_ms:
    verdict = "PASS: used_memory back to baseline %.1f s after the last write (limit: %.1f s = 2x the longest TTL)" % (back - loaded, limit_ms / 1000)
elif back is not None:
    verdict = "FAIL: used_memory back to baseline only %.1f s after the last write (limit: %.1f s)" % (back - loaded, limit_ms / 1000)
else:
    verdict = "FAIL: used_memory not back to baseline within %.1f s" % (limit_ms / 1000)
lines.append(verdict)
try:
    b = json.load(open(os.path.join(out, "bench.json")))
    ops = [s["ops"] / 1.0 for s in b.get("timeline", [])]
    if ops:
        s = sorted(ops)
        lines.append("seed workload ops/s per second (the whole experiment): " + " ".join("%.2fM" % (o / 1e6) for o in ops))
        lines.append("  median %.2fM, min %.2fM (%.0f%% of median)" % (s[len(s) // 2] / 1e6, s[0] / 1e6, 100 * s[0] / max(s[len(s) // 2], 1)))
        # Second i of the bench covers t = bench_t0 + i .. + 1 on the
        # series' clock; a second is counted in the phase its middle is in.
        end = back if back is not None else float(rows[-1]["t_secs"])
        phases = [("before the TTL keys", float("-inf"), load_t0),
                  ("while they are written", load_t0, loaded),
                  ("while they expire", loaded, end),
                  ("after memory is back", end, float("inf"))]
        med = lambda v: sorted(v)[len(v) // 2]
        parts = []
        for name, lo, hi in phases:
            v = [o for i, o in enumerate(ops) if lo <= bench_t0 + i + 0.5 < hi]
            if v:
                parts.append("%s %.2fM (%d s)" % (name, med(v) / 1e6, len(v)))
        lines.append("  median per phase: " + "; ".join(parts))
except (OSError, ValueError, KeyError) as e:
    lines.append("no bench figures: %s" % e)
text = "\n".join(lines) + "\n"
open(os.path.join(out, "verdict.txt"), "w").write(text)
sys.stdout.write(text)
sys.exit(0 if verdict.startswith("PASS") else 1)
PY
