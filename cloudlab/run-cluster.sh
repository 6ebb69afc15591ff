#!/usr/bin/env bash
# run-cluster.sh — the seed's cluster experiment as one command (see usage).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"

usage() {
    cat <<EOF
Usage: $(basename "$0") [server_count] [client_count] [server_args] [client_args]

Runs corekv servers on node0..node{S-1} and 'corekv bench' on the next C nodes,
all clients at once, then collects reports, monitor samples and every
process's stdout/stderr into logs/<timestamp>/ (logs/latest -> newest), runs
'corekv report merge' and prints the totals (client-measured and the seed's
sum of per-server median ops/s), per-node throughput, latency and utilization.

  server_count   server nodes (default 4)
  client_count   client nodes (default 4)
  server_args    extra 'corekv server' flags, one string (default "")
  client_args    extra 'corekv bench' flags, one string (default ""),
                 e.g. "--sessions 128 --batch 8192 --workload YCSB-B"

Environment:
  LOCAL=1          run everything on this machine over 127.0.0.1 (no ssh)
  HOSTS_FILE=F     node addresses, one per line (default: tmcc hostnames,
                   then geni-get -a; nodes are node0, node1, ...)
  COREKV_BIN=P     use this binary instead of 'cargo build --release'
  SHARED_FS=1      COREKV_BIN's path is valid on every node (NFS): no scp
  SECS=30 WARMUP=2 measured / warm-up seconds passed to bench (unless given
                   in client_args)
  PORT=7000        first shard port (local mode: server i uses PORT+100*i)
  SERVER_CPUS, CLIENT_CPUS
                   --cpus for servers / clients (default: every CPU of the
                   node; local mode: servers share the first half of the
                   CPUs, clients the second half)
  READY_TIMEOUT=60 seconds to wait for each server's ready line
  BENCH_SLACK=120  seconds allowed beyond WARMUP+SECS before clients are
                   declared hung
  MONITOR=1        run 'corekv monitor' on every node (0: off)
  MON_IFACE=NAME   interface(s) the monitor sums (local mode default: lo)
  LOG_ROOT=DIR     where <timestamp>/ run dirs go (default: REPO/logs)
  SSH_OPTS="..."   extra ssh options (BatchMode and a connect timeout are set)
  REMOTE_DIR=DIR   per-run work dir on the nodes (default /tmp/corekv-<tag>)

Exit status is non-zero if a server fails to become ready, a server or client
dies, or no totals could be computed. Ctrl-C stops every started process.
EOF
}

case "${1:-}" in -h | --help | help) usage; exit 0 ;; esac
if [[ $# -gt 4 ]]; then
    usage >&2
    exit 2
fi

NSERVERS="${1:-4}"
NCLIENTS="${2:-4}"
SERVER_ARGS_STR="${3:-}"
CLIENT_ARGS_STR="${4:-}"

LOCAL="${LOCAL:-0}"
SHARED_FS="${SHARED_FS:-0}"
SECS="${SECS:-30}"
WARMUP="${WARMUP:-2}"
PORT="${PORT:-7000}"
READY_TIMEOUT="${READY_TIMEOUT:-60}"
BENCH_SLACK="${BENCH_SLACK:-120}"
MONITOR="${MONITOR:-1}"
LOG_ROOT="${LOG_ROOT:-$REPO_DIR/logs}"
RUN_TAG="ckv$(date +%s)$$"
# shellcheck disable=SC2206 # SSH_OPTS is deliberately word-split
SSH=(ssh -o BatchMode=yes -o ConnectTimeout=10 -o StrictHostKeyChecking=accept-new ${SSH_OPTS:-})

log() { printf '[run-cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
if ! is_uint "$NSERVERS" || [[ "$NSERVERS" -lt 1 ]]; then die "server_count must be a positive integer, got '$NSERVERS'"; fi
if ! is_uint "$NCLIENTS" || [[ "$NCLIENTS" -lt 1 ]]; then die "client_count must be a positive integer, got '$NCLIENTS'"; fi
is_uint "$SECS" || die "SECS must be an integer, got '$SECS'"
is_uint "$WARMUP" || die "WARMUP must be an integer, got '$WARMUP'"
is_uint "$PORT" || die "PORT must be an integer, got '$PORT'"

read -r -a SERVER_ARGS <<<"$SERVER_ARGS_STR"
read -r -a CLIENT_ARGS <<<"$CLIENT_ARGS_STR"

# has_flag FLAG ARGS... — true if ARGS contain FLAG or FLAG=...
has_flag() {
    local flag="$1" a
    shift
    for a in "$@"; do
        [[ "$a" == "$flag" || "$a" == "$flag="* ]] && return 0
    done
    return 1
}
for f in --port --bind --node-id; do
    if has_flag "$f" "${SERVER_ARGS[@]}"; then
        die "server_args must not contain $f (the script sets it; use PORT=... for the port)"
    fi
done
for f in --hosts --out; do
    if has_flag "$f" "${CLIENT_ARGS[@]}"; then
        die "client_args must not contain $f (the script sets it)"
    fi
done

# q ARGS... — shell-quote for a command string run by bash (locally or over ssh)
q() { printf '%q ' "$@"; }
# sq STR — single-quote STR for any POSIX/csh-family shell
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# ---------------------------------------------------------------------------
# Nodes: NODE_HOST[i] is the address used for ssh and for --hosts.
# ---------------------------------------------------------------------------
NEED=$((NSERVERS + NCLIENTS))
NODE_HOST=()

discover_nodes() {
    local -a found=()
    local src
    if [[ "$LOCAL" == 1 ]]; then
        for ((i = 0; i < NEED; i++)); do NODE_HOST+=(127.0.0.1); done
        return
    fi
    if [[ -n "${HOSTS_FILE:-}" ]]; then
        [[ -r "$HOSTS_FILE" ]] || die "HOSTS_FILE '$HOSTS_FILE' is not readable"
        src="HOSTS_FILE $HOSTS_FILE"
        mapfile -t found < <(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$HOSTS_FILE" | grep -v '^$' || true)
        if [[ ${#found[@]} -lt $NEED ]]; then
            die "need $NEED nodes ($NSERVERS servers + $NCLIENTS clients) but $src lists ${#found[@]}: missing node${#found[@]} (line $((${#found[@]} + 1)))"
        fi
        NODE_HOST=("${found[@]:0:$NEED}")
        return
    fi
    local names=""
    if [[ -x /usr/local/etc/emulab/tmcc ]]; then
        src="tmcc hostnames"
        names="$(/usr/local/etc/emulab/tmcc hostnames 2>/dev/null || true)"
    fi
    if [[ -z "$names" ]] && command -v geni-get >/dev/null 2>&1; then
        src="geni-get -a"
        names="$(geni-get -a 2>/dev/null | grep -o 'client_id="node[0-9]*"' || true)"
    fi
    [[ -n "$names" ]] || die "cannot discover nodes: set HOSTS_FILE, or run on a CloudLab node (tmcc / geni-get), or use LOCAL=1"
    # Every whole-word nodeN mentioned (NAME=, ALIASES=, client_id=) counts.
    local all
    all=" $(grep -oE '(^|[^A-Za-z0-9-])node[0-9]+([^A-Za-z0-9-]|$)' <<<"$names" | grep -oE 'node[0-9]+' | sort -u | tr '\n' ' ') "
    for ((i = 0; i < NEED; i++)); do
        if [[ "$all" != *" node$i "* ]]; then
            local role="server"
            [[ $i -ge $NSERVERS ]] && role="client $((i - NSERVERS))"
            die "node$i (needed as $role) not found via $src; need $NEED nodes ($NSERVERS servers + $NCLIENTS clients), found:${all% }"
        fi
        NODE_HOST+=("node$i")
    done
}

node_label() { # node_label I -> "node3 (10.0.0.3)"
    if [[ "$LOCAL" == 1 ]]; then
        if [[ $1 -lt $NSERVERS ]]; then echo "local server$1 (127.0.0.1)"; else echo "local client$(($1 - NSERVERS)) (127.0.0.1)"; fi
    else
        echo "node$1 (${NODE_HOST[$1]})"
    fi
}

# run_on I CMDSTRING — run a bash command string on node I and wait.
# This is the only place that decides between ssh and local execution.
run_on() {
    if [[ "$LOCAL" == 1 ]]; then
        bash -c "$2"
    else
        # Wrapped in bash -c '...' so it works whatever the login shell is (tcsh).
        "${SSH[@]}" -- "${NODE_HOST[$1]}" "bash -c $(sq "$2")"
    fi
}

# ---------------------------------------------------------------------------
# Processes: every background process is registered so cleanup can stop it.
# ---------------------------------------------------------------------------
declare -a PROCS=()          # names in start order
declare -A P_NODE=() P_LPID=() P_PIDFILE=()
CLEANED=0

# start_bg NAME I CMDSTRING — start CMDSTRING on node I in the background; its
# stdout/stderr go to RUN_DIR/NAME.out / NAME.err; the remote pid to a pidfile.
# argv[0] becomes corekv-RUN_TAG-NAME so stray processes can be found by tag.
start_bg() {
    local name="$1" i="$2" cmd="$3" pidfile
    pidfile="$(work_dir "$i")/$name.pid"
    local wrapped
    wrapped="mkdir -p $(q "$(work_dir "$i")") && echo \$\$ > $(q "$pidfile") && exec -a corekv-$RUN_TAG-$name $cmd"
    run_on "$i" "$wrapped" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.err" </dev/null &
    PROCS+=("$name")
    P_NODE[$name]="$i"
    P_LPID[$name]=$!
    P_PIDFILE[$name]="$pidfile"
    printf '%s\n' "$name on $(node_label "$i"): ${cmd}" >>"$RUN_DIR/commands.txt"
}

alive() { kill -0 "${P_LPID[$1]}" 2>/dev/null; }

# signal_proc NAME SIG — signal the process through its pidfile on its node.
signal_proc() {
    local name="$1" sig="$2" i="${P_NODE[$1]}"
    run_on "$i" "p=\$(cat $(q "${P_PIDFILE[$name]}") 2>/dev/null) && kill -$sig \"\$p\" 2>/dev/null; true" || true
}

# stop_procs SIG TIMEOUT NAME... — signal every named process that is still
# alive, wait up to TIMEOUT s for all of them, then SIGKILL the rest.
stop_procs() {
    local sig="$1" timeout="$2" name t=0 left
    shift 2
    for name in "$@"; do
        if alive "$name"; then signal_proc "$name" "$sig"; fi
    done
    while :; do
        left=()
        for name in "$@"; do
            if alive "$name"; then left+=("$name"); fi
        done
        [[ ${#left[@]} -eq 0 || $t -ge $((timeout * 10)) ]] && break
        sleep 0.1
        t=$((t + 1))
    done
    for name in "${left[@]}"; do
        log "$name on $(node_label "${P_NODE[$name]}") did not stop after SIG$sig; killing"
        signal_proc "$name" KILL
        if [[ "$LOCAL" != 1 ]]; then
            run_on "${P_NODE[$name]}" "pkill -KILL -f '[c]orekv-$RUN_TAG-$name'; true" || true
        fi
    done
    if [[ ${#left[@]} -gt 0 ]]; then sleep 0.5; fi
    for name in "$@"; do
        kill -KILL "${P_LPID[$name]}" 2>/dev/null || true
        wait "${P_LPID[$name]}" 2>/dev/null || true
    done
}

# procs_matching GLOB — registered names matching GLOB (monitors excluded
# unless GLOB is *-monitor).
procs_matching() {
    local name
    for name in "${PROCS[@]}"; do
        # shellcheck disable=SC2053 # $1 is a glob on purpose
        if [[ "$name" == $1 && ( "$1" == *-monitor || "$name" != *-monitor ) ]]; then echo "$name"; fi
    done
}

# stop_role GLOB SIG TIMEOUT
stop_role() {
    local -a names
    mapfile -t names < <(procs_matching "$1")
    if [[ ${#names[@]} -gt 0 ]]; then stop_procs "$2" "$3" "${names[@]}"; fi
}

cleanup() {
    local rc=$?
    [[ $CLEANED == 1 ]] && return
    CLEANED=1
    trap - INT TERM
    # monitors first (they write their file on SIGTERM), then clients, servers.
    stop_role '*-monitor' TERM 5
    stop_role 'client*' TERM 5
    stop_role 'server*' TERM 15
    if [[ "$LOCAL" != 1 && ${#PROCS[@]} -gt 0 && $rc != 0 ]]; then
        for ((i = 0; i < NEED; i++)); do
            run_on "$i" "pkill -TERM -f '[c]orekv-$RUN_TAG-'; true" >/dev/null 2>&1 || true
        done
    fi
    if [[ $rc != 0 && -n "${RUN_DIR:-}" ]]; then
        log "run failed (exit $rc); logs in $RUN_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------
discover_nodes

STAMP="$(date +%Y%m%d-%H%M%S)"
mkdir -p "$LOG_ROOT"
RUN_DIR="$LOG_ROOT/$STAMP"
n=1
while [[ -e "$RUN_DIR" ]]; do RUN_DIR="$LOG_ROOT/$STAMP-$n"; n=$((n + 1)); done
mkdir -p "$RUN_DIR"
ln -sfn "$(basename "$RUN_DIR")" "$LOG_ROOT/latest"
REMOTE_DIR="${REMOTE_DIR:-/tmp/corekv-$RUN_TAG}"

# work_dir I — where processes on node I keep pidfiles and outputs.
work_dir() {
    if [[ "$LOCAL" == 1 ]]; then echo "$RUN_DIR"; else echo "$REMOTE_DIR"; fi
}

log "run dir $RUN_DIR ($NSERVERS servers, $NCLIENTS clients, $([[ "$LOCAL" == 1 ]] && echo local || echo ssh))"
{
    echo "servers=$NSERVERS clients=$NCLIENTS local=$LOCAL secs=$SECS warmup=$WARMUP port=$PORT tag=$RUN_TAG"
    echo "server_args=$SERVER_ARGS_STR"
    echo "client_args=$CLIENT_ARGS_STR"
    for ((i = 0; i < NEED; i++)); do echo "node$i=${NODE_HOST[$i]}"; done
} >"$RUN_DIR/run.txt"

if [[ -n "${COREKV_BIN:-}" ]]; then
    BIN="$(cd "$(dirname "$COREKV_BIN")" && pwd)/$(basename "$COREKV_BIN")"
    [[ -x "$BIN" ]] || die "COREKV_BIN '$COREKV_BIN' is not an executable file"
else
    log "building: cargo build --release"
    (cd "$REPO_DIR" && cargo build --release) >"$RUN_DIR/build.log" 2>&1 ||
        die "cargo build --release failed; see $RUN_DIR/build.log"
    BIN="$REPO_DIR/target/release/corekv"
fi

# Binary path on node I.
if [[ "$LOCAL" == 1 || "$SHARED_FS" == 1 ]]; then
    node_bin() { echo "$BIN"; }
else
    node_bin() { echo "$REMOTE_DIR/corekv"; }
    log "shipping $BIN to $NEED nodes"
    pids=()
    for ((i = 0; i < NEED; i++)); do
        (run_on "$i" "mkdir -p $(q "$REMOTE_DIR")" &&
            scp -q -o BatchMode=yes -o StrictHostKeyChecking=accept-new "$BIN" "${NODE_HOST[$i]}:$REMOTE_DIR/corekv") >>"$RUN_DIR/ship.log" 2>&1 &
        pids+=($!)
    done
    for ((i = 0; i < NEED; i++)); do
        wait "${pids[$i]}" || die "copying the binary to $(node_label "$i") failed; see $RUN_DIR/ship.log"
    done
fi

# cpu_range N -> "0-(N-1)"
cpu_range() { if [[ $1 -le 1 ]]; then echo 0; else echo "0-$(($1 - 1))"; fi; }

# local_cpus ROLE INDEX COUNT — split this machine's CPUs: servers take the
# first half, clients the rest (everything shares CPU 0 on a 1-CPU machine);
# within a half, each process gets an equal contiguous slice, or one CPU
# round-robin when there are more processes than CPUs.
local_cpus() {
    local role="$1" idx="$2" count="$3" ncpu half lo hi size per
    ncpu="$(nproc)"
    half=$(((ncpu + 1) / 2))
    if [[ $ncpu -le 1 ]]; then
        echo 0
        return
    fi
    if [[ "$role" == server ]]; then lo=0 size=$half; else lo=$half size=$((ncpu - half)); fi
    if [[ $count -ge $size ]]; then
        echo $((lo + idx % size))
        return
    fi
    per=$((size / count))
    lo=$((lo + idx * per))
    hi=$((lo + per - 1))
    if [[ $lo == "$hi" ]]; then echo "$lo"; else echo "$lo-$hi"; fi
}

cpus_for() { # cpus_for ROLE INDEX NODE
    local role="$1" idx="$2" i="$3" override
    if [[ "$role" == server ]]; then override="${SERVER_CPUS:-}"; else override="${CLIENT_CPUS:-}"; fi
    if [[ -n "$override" ]]; then
        echo "$override"
    elif [[ "$LOCAL" == 1 ]]; then
        local count=$NSERVERS
        [[ "$role" == client ]] && count=$NCLIENTS
        local_cpus "$role" "$idx" "$count"
    else
        cpu_range "$(run_on "$i" nproc)"
    fi
}

server_port() { if [[ "$LOCAL" == 1 ]]; then echo $((PORT + 100 * $1)); else echo "$PORT"; fi; }

# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------
HOSTS_ARG=""
for ((s = 0; s < NSERVERS; s++)); do
    port="$(server_port "$s")"
    bind=0.0.0.0
    [[ "$LOCAL" == 1 ]] && bind=127.0.0.1 # local mode: nothing leaves loopback
    cmd=("$(node_bin "$s")" server --bind "$bind" --node-id "$s" --port "$port")
    has_flag --cpus "${SERVER_ARGS[@]}" || cmd+=(--cpus "$(cpus_for server "$s" "$s")")
    cmd+=("${SERVER_ARGS[@]}")
    start_bg "server$s" "$s" "$(q "${cmd[@]}")"
    HOSTS_ARG+="${HOSTS_ARG:+,}${NODE_HOST[$s]}:$port"
    log "started server$s on $(node_label "$s"): ${cmd[*]:1}"
done

log "waiting for $NSERVERS ready lines (timeout ${READY_TIMEOUT}s)"
deadline=$((SECONDS + READY_TIMEOUT))
for ((s = 0; s < NSERVERS; s++)); do
    until grep -q '^corekv ready node_id=' "$RUN_DIR/server$s.out" 2>/dev/null; do
        if ! alive "server$s"; then
            rc=0
            wait "${P_LPID[server$s]}" || rc=$?
            log "server$s stderr (last lines):"
            tail -n 15 "$RUN_DIR/server$s.err" >&2 || true
            die "server on $(node_label "$s") exited (status $rc) before it was ready"
        fi
        if [[ $SECONDS -ge $deadline ]]; then
            tail -n 15 "$RUN_DIR/server$s.err" >&2 || true
            die "server on $(node_label "$s") not ready after ${READY_TIMEOUT}s (no 'corekv ready' line)"
        fi
        sleep 0.2
    done
    log "ready: $(grep -m1 '^corekv ready' "$RUN_DIR/server$s.out")"
done

# ---------------------------------------------------------------------------
# Monitors (one per server process, one per client node)
# ---------------------------------------------------------------------------
MON_SECS=$((WARMUP + SECS + BENCH_SLACK + 60))
mon_iface="${MON_IFACE:-}"
[[ "$LOCAL" == 1 && -z "$mon_iface" ]] && mon_iface=lo
start_monitor() { # start_monitor NAME NODE [PIDFILE]
    local name="$1" i="$2" pidfile="${3:-}" cmd
    cmd="$(q "$(node_bin "$i")" monitor --secs "$MON_SECS" --interval 1 --out "$(work_dir "$i")/$name.monitor.json")"
    [[ -n "$mon_iface" ]] && cmd+=" $(q --iface "$mon_iface")"
    [[ -n "$pidfile" ]] && cmd+=" --pid \"\$(cat $(q "$pidfile"))\""
    start_bg "$name-monitor" "$i" "$cmd"
}
if [[ "$MONITOR" == 1 ]]; then
    for ((s = 0; s < NSERVERS; s++)); do start_monitor "server$s" "$s" "${P_PIDFILE[server$s]}"; done
    for ((c = 0; c < NCLIENTS; c++)); do start_monitor "client$c" $((NSERVERS + c)); done
fi

# ---------------------------------------------------------------------------
# Clients, all at once
# ---------------------------------------------------------------------------
for ((c = 0; c < NCLIENTS; c++)); do
    i=$((NSERVERS + c))
    cmd=("$(node_bin "$i")" bench --hosts "$HOSTS_ARG" --out "$(work_dir "$i")/client$c")
    has_flag --secs "${CLIENT_ARGS[@]}" || cmd+=(--secs "$SECS")
    has_flag --warmup "${CLIENT_ARGS[@]}" || cmd+=(--warmup "$WARMUP")
    has_flag --cpus "${CLIENT_ARGS[@]}" || cmd+=(--cpus "$(cpus_for client "$c" "$i")")
    cmd+=("${CLIENT_ARGS[@]}")
    start_bg "client$c" "$i" "$(q "${cmd[@]}")"
    log "started client$c on $(node_label "$i"): ${cmd[*]:1}"
done

bench_secs="$SECS"
if has_flag --secs "${CLIENT_ARGS[@]}"; then
    for ((k = 0; k < ${#CLIENT_ARGS[@]}; k++)); do
        case "${CLIENT_ARGS[$k]}" in
        --secs) bench_secs="${CLIENT_ARGS[$((k + 1))]:-$SECS}" ;;
        --secs=*) bench_secs="${CLIENT_ARGS[$k]#--secs=}" ;;
        esac
    done
fi
bench_secs="${bench_secs%%.*}"
is_uint "$bench_secs" || bench_secs="$SECS"
deadline=$((SECONDS + WARMUP + bench_secs + BENCH_SLACK))
log "clients running (~$((WARMUP + bench_secs))s)"
declare -A CDONE=()
while [[ ${#CDONE[@]} -lt $NCLIENTS ]]; do
    for ((c = 0; c < NCLIENTS; c++)); do
        [[ -n "${CDONE[$c]:-}" ]] && continue
        alive "client$c" && continue
        rc=0
        wait "${P_LPID[client$c]}" || rc=$?
        CDONE[$c]=$rc
        if [[ $rc != 0 ]]; then
            log "client$c stderr (last lines):"
            tail -n 15 "$RUN_DIR/client$c.err" >&2 || true
            die "client on $(node_label $((NSERVERS + c))) failed (exit status $rc)"
        fi
        log "client$c on $(node_label $((NSERVERS + c))) finished"
    done
    for ((s = 0; s < NSERVERS; s++)); do
        if ! alive "server$s"; then
            tail -n 15 "$RUN_DIR/server$s.err" >&2 || true
            die "server on $(node_label "$s") died during the benchmark"
        fi
    done
    if [[ $SECONDS -ge $deadline && ${#CDONE[@]} -lt $NCLIENTS ]]; then
        die "clients still running ${BENCH_SLACK}s past the expected end; giving up"
    fi
    if [[ ${#CDONE[@]} -lt $NCLIENTS ]]; then sleep 0.5; fi
done

# ---------------------------------------------------------------------------
# Stop, collect, merge, summarize
# ---------------------------------------------------------------------------
stop_role '*-monitor' TERM 5
stop_role 'server*' TERM 15

if [[ "$LOCAL" != 1 ]]; then
    for ((i = 0; i < NEED; i++)); do
        run_on "$i" "cd $(q "$REMOTE_DIR") && tar --exclude=./corekv --exclude='*.pid' -cf - ." 2>>"$RUN_DIR/collect.err" |
            tar -C "$RUN_DIR" -xf - 2>>"$RUN_DIR/collect.err" ||
            log "warning: collecting files from $(node_label "$i") failed; see $RUN_DIR/collect.err"
        run_on "$i" "rm -rf $(q "$REMOTE_DIR")" >/dev/null 2>&1 || true
    done
fi
rm -f "$RUN_DIR"/*.pid

reports=()
for ((c = 0; c < NCLIENTS; c++)); do
    if [[ -f "$RUN_DIR/client$c/report.json" ]]; then
        reports+=("$RUN_DIR/client$c/report.json")
    else
        log "warning: client$c wrote no report.json"
    fi
done
[[ ${#reports[@]} -gt 0 ]] || die "no client reports in $RUN_DIR"

log "merging ${#reports[@]} reports"
if "$BIN" report merge "${reports[@]}" --out "$RUN_DIR/merged" >"$RUN_DIR/merge.out" 2>"$RUN_DIR/merge.err"; then
    echo "== corekv report merge =="
    cat "$RUN_DIR/merge.out"
else
    log "warning: 'corekv report merge' failed; see $RUN_DIR/merge.err"
fi

python3 "$SCRIPT_DIR/collect.py" "$RUN_DIR" --servers "$NSERVERS" --clients "$NCLIENTS" ||
    die "could not compute totals; see $RUN_DIR"
log "done: $RUN_DIR (logs/latest)"
