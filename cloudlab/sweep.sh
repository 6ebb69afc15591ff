#!/usr/bin/env bash
# sweep.sh — parameter sweeps over run-cluster.sh, collected into one CSV.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"

usage() {
    cat <<EOF2
Usage: $(basename "$0") SWEEP [SWEEP...]      SWEEP: batch | sessions | nodes | all

Each point is one run-cluster.sh invocation (short SECS); its totals are
appended to SWEEP_DIR/sweep.csv with the columns
  param,value,servers,clients,ops_per_sec,seed_style_ops_per_sec,p99_batch_us
and 'corekv report plot-sweep sweep.csv --out sweep.png' draws them.

  batch      --batch from BATCH_MIN to BATCH_MAX, doubling (sessions: SESSIONS)
  sessions   sessions per client node over SESSIONS_LIST (batch: BATCH)

Sessions are counted per client node, as the seed's -numClients counted
goroutines per client machine: each point passes --clients N, which the
bench spreads over the node's CPUs.
  nodes      the seed's table: N servers + N clients for N in NODES_LIST

Environment (defaults in brackets):
  LOCAL=1                 run every point on this machine (see run-cluster.sh)
  SECS [10; LOCAL: 3]  WARMUP [2; LOCAL: 1]   per point
  SERVERS, CLIENTS        node split for batch/sessions sweeps [4 4; LOCAL: 1 1]
  BATCH_MIN [512]  BATCH_MAX [16384]  SESSIONS [128]
  SESSIONS_LIST ["16 32 64 128 256"]  BATCH [8192]
  NODES_LIST ["1 2 4"; LOCAL: "1 2"]
  SERVER_ARGS, CLIENT_ARGS  extra flags for every point
  SWEEP_DIR [REPO/logs/sweep-<timestamp>]  runs go to SWEEP_DIR/runs/
  REPEAT [3]              runs per point (one CSV row each; the plots show
                          the median and a min–max bar)
  KEEP_GOING [1]          a failed point is logged and skipped (exit 1 at end)
  COREKV_BIN              binary to use (default: build once with cargo)
Other run-cluster.sh variables (HOSTS_FILE, SHARED_FS, PORT, ...) pass through.
EOF2
}

[[ $# -ge 1 ]] || { usage >&2; exit 2; }
case "$1" in -h | --help | help) usage; exit 0 ;; esac

SWEEPS=()
for a in "$@"; do
    case "$a" in
    batch | sessions | nodes) SWEEPS+=("$a") ;;
    all) SWEEPS+=(batch sessions nodes) ;;
    *) echo "unknown sweep '$a'" >&2; usage >&2; exit 2 ;;
    esac
done

LOCAL="${LOCAL:-0}"
export LOCAL
if [[ "$LOCAL" == 1 ]]; then def_secs=3 def_warmup=1; else def_secs=10 def_warmup=2; fi
export SECS="${SECS:-$def_secs}" WARMUP="${WARMUP:-$def_warmup}"
if [[ "$LOCAL" == 1 ]]; then def_nodes=1 def_list="1 2"; else def_nodes=4 def_list="1 2 4"; fi
SERVERS="${SERVERS:-$def_nodes}"
CLIENTS="${CLIENTS:-$def_nodes}"
BATCH_MIN="${BATCH_MIN:-512}"
BATCH_MAX="${BATCH_MAX:-16384}"
SESSIONS="${SESSIONS:-128}"
SESSIONS_LIST="${SESSIONS_LIST:-16 32 64 128 256}"
BATCH="${BATCH:-8192}"
NODES_LIST="${NODES_LIST:-$def_list}"
SERVER_ARGS="${SERVER_ARGS:-}"
CLIENT_ARGS="${CLIENT_ARGS:-}"
KEEP_GOING="${KEEP_GOING:-1}"
REPEAT="${REPEAT:-3}"
SWEEP_DIR="${SWEEP_DIR:-$REPO_DIR/logs/sweep-$(date +%Y%m%d-%H%M%S)}"

for v in SERVERS CLIENTS BATCH_MIN BATCH_MAX SESSIONS BATCH REPEAT; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer, got '${!v}'" >&2; exit 2; }
done
for f in --batch --sessions --clients; do
    case " $CLIENT_ARGS " in
    *" $f "* | *" $f="*) echo "CLIENT_ARGS must not contain $f: the sweep sets it (use BATCH=, SESSIONS=, BATCH_MIN=, ...)" >&2; exit 2 ;;
    esac
done
[[ $BATCH_MIN -le $BATCH_MAX ]] || { echo "BATCH_MIN ($BATCH_MIN) > BATCH_MAX ($BATCH_MAX)" >&2; exit 2; }

log() { printf '[sweep %s] %s\n' "$(date +%T)" "$*" >&2; }
mkdir -p "$SWEEP_DIR/runs"
CSV="$SWEEP_DIR/sweep.csv"
[[ -f "$CSV" ]] || echo "param,value,servers,clients,ops_per_sec,seed_style_ops_per_sec,p99_batch_us" >"$CSV"

# Build once; every point reuses the binary.
if [[ -z "${COREKV_BIN:-}" ]]; then
    log "building: cargo build --release"
    (cd "$REPO_DIR" && cargo build --release) >"$SWEEP_DIR/build.log" 2>&1 ||
        { log "build failed; see $SWEEP_DIR/build.log"; exit 1; }
    COREKV_BIN="$REPO_DIR/target/release/corekv"
fi
export COREKV_BIN

FAILED=0
# point PARAM VALUE SERVERS CLIENTS CLIENT_ARGS: REPEAT runs, one CSV row each.
point() {
    local rep
    for rep in $(seq "$REPEAT"); do run_point "$@" "$rep"; done
}

# run_point PARAM VALUE SERVERS CLIENTS CLIENT_ARGS REPEAT_NO
run_point() {
    local param="$1" value="$2" s="$3" c="$4" cargs="$5" rundir
    log "$param=$value (run $6/$REPEAT): $s servers + $c clients, client args: $cargs"
    if ! LOG_ROOT="$SWEEP_DIR/runs" "$SCRIPT_DIR/run-cluster.sh" "$s" "$c" "$SERVER_ARGS" "$cargs" \
        >"$SWEEP_DIR/runs/last.out" 2>&1; then
        rundir="$(readlink -f "$SWEEP_DIR/runs/latest" || true)"
        log "point $param=$value FAILED (logs: ${rundir:-$SWEEP_DIR/runs}); last lines:"
        tail -n 5 "$SWEEP_DIR/runs/last.out" >&2 || true
        FAILED=$((FAILED + 1))
        [[ "$KEEP_GOING" == 1 ]] || exit 1
        return 0
    fi
    rundir="$(readlink -f "$SWEEP_DIR/runs/latest")"
    mv "$SWEEP_DIR/runs/last.out" "$rundir/run-cluster.out"
    python3 - "$rundir/summary.json" "$param" "$value" "$s" "$c" >>"$CSV" <<'PY'
import json, sys
path, param, value, s, c = sys.argv[1:]
d = json.load(open(path))
cell = lambda k: "" if d.get(k) is None else f"{d[k]:.1f}"
print(f"{param},{value},{s},{c},{cell('ops_per_sec')},{cell('seed_style_ops_per_sec')},{cell('p99_batch_us')}")
PY
    log "  -> $(tail -n 1 "$CSV")"
}

for sweep in "${SWEEPS[@]}"; do
    case "$sweep" in
    batch)
        b=$BATCH_MIN
        while [[ $b -le $BATCH_MAX ]]; do
            point batch "$b" "$SERVERS" "$CLIENTS" "--batch $b --clients $SESSIONS $CLIENT_ARGS"
            b=$((b * 2))
        done
        ;;
    sessions)
        for n in $SESSIONS_LIST; do
            point sessions "$n" "$SERVERS" "$CLIENTS" "--clients $n --batch $BATCH $CLIENT_ARGS"
        done
        ;;
    nodes)
        for n in $NODES_LIST; do
            point nodes "$n" "$n" "$n" "--clients $SESSIONS --batch $BATCH $CLIENT_ARGS"
        done
        ;;
    esac
done

log "CSV: $CSV"
column -s, -t "$CSV" 2>/dev/null || cat "$CSV"
if "$COREKV_BIN" report plot-sweep "$CSV" --out "$SWEEP_DIR/sweep.png" >"$SWEEP_DIR/plot.log" 2>&1; then
    log "plot: $SWEEP_DIR/sweep.png"
else
    log "warning: 'corekv report plot-sweep' failed; see $SWEEP_DIR/plot.log"
fi
if [[ $FAILED -gt 0 ]]; then
    log "$FAILED point(s) failed"
    exit 1
fi
