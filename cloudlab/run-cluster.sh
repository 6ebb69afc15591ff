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
  server_args    extra 'corekv server' flags, one string (default ""); unless
                 they hold --requirepass or --protected-mode, servers get
                 --protected-mode no (clients connect from other hosts)
  client_args    extra 'corekv bench' flags, one string (default ""),
                 e.g. "--clients 128 --batch 8192 --workload YCSB-B"
                 (or the seed's own: "-numClients 128 -batchSize 8192")

Environment:
  LOCAL=1          run everything on this machine over 127.0.0.1 (no ssh)
  NETNS=1          with LOCAL=1 (as root): every node in its own network
                   namespace with its own address (10.x.y.i+1/24, veth pairs
                   on one bridge), so --cluster, MOVED addresses and --bind
                   see distinct hosts as on CloudLab; namespaces, veths and
                   the bridge are removed afterwards (also on failure/Ctrl-C)
  HOSTS_FILE=F     node addresses, one per line (default: tmcc hostnames,
                   then geni-get -a; nodes are node0, node1, ...)
  COREKV_BIN=P     use this binary instead of 'cargo build --release'
  SHARED_FS=1      COREKV_BIN's path is valid on every node (NFS): no scp
  SECS=30 WARMUP=2 measured / warm-up seconds passed to bench (unless given
                   in client_args); local mode: SECS=5 WARMUP=1
  PORT=7000        first shard port (local mode: server i uses PORT+100*i)
  RESP_PORT=6380   RESP port of each server (local mode: PORT+100*i+50);
                   not set when server_args has --resp-port or --no-resp
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
  RUN_TAG=ckv...   alphanumeric tag of this run: every process it starts is
                   named corekv-<tag>-<name> (default: from time and pid)

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
NETNS="${NETNS:-0}"
SHARED_FS="${SHARED_FS:-0}"
if [[ "$LOCAL" == 1 ]]; then def_secs=5 def_warmup=1; else def_secs=30 def_warmup=2; fi
SECS="${SECS:-$def_secs}"
WARMUP="${WARMUP:-$def_warmup}"
PORT="${PORT:-7000}"
RESP_PORT="${RESP_PORT:-6380}"
READY_TIMEOUT="${READY_TIMEOUT:-60}"
BENCH_SLACK="${BENCH_SLACK:-120}"
MONITOR="${MONITOR:-1}"
LOG_ROOT="${LOG_ROOT:-$REPO_DIR/logs}"
RUN_TAG="${RUN_TAG:-ckv$(date +%s)$$}"
[[ "$RUN_TAG" =~ ^[A-Za-z0-9]+$ ]] || { echo "RUN_TAG must be alphanumeric, got '$RUN_TAG'" >&2; exit 2; }
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
is_uint "$RESP_PORT" || die "RESP_PORT must be an integer, got '$RESP_PORT'"

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
for f in --port --bind --node-id --cluster; do
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

# node_role I -> server0.. for I < NSERVERS, then client0..
node_role() { if [[ $1 -lt $NSERVERS ]]; then echo "server$1"; else echo "client$(($1 - NSERVERS))"; fi; }

discover_nodes() {
    local -a found=()
    local src
    if [[ "$LOCAL" == 1 && "$NETNS" == 1 ]]; then
        for ((i = 0; i < NEED; i++)); do NODE_HOST+=("$NETNS_NET.$((i + 1))"); done
        return
    fi
    if [[ "$LOCAL" == 1 ]]; then
        for ((i = 0; i < NEED; i++)); do NODE_HOST+=(127.0.0.1); done
        return
    fi
    if [[ -n "${HOSTS_FILE:-}" ]]; then
        [[ -r "$HOSTS_FILE" ]] || die "HOSTS_FILE '$HOSTS_FILE' is not readable"
        src="HOSTS_FILE $HOSTS_FILE"
        mapfile -t found < <(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$HOSTS_FILE" | grep -v '^$' || true)
        if [[ ${#found[@]} -lt $NEED ]]; then
            local missing=""
            for ((i = ${#found[@]}; i < NEED; i++)); do missing+="${missing:+, }node$i ($(node_role "$i"))"; done
            die "need $NEED nodes ($NSERVERS servers + $NCLIENTS clients) but $src lists ${#found[@]}; missing: $missing"
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
    local missing=""
    for ((i = 0; i < NEED; i++)); do
        [[ "$all" == *" node$i "* ]] || missing+="${missing:+, }node$i ($(node_role "$i"))"
        NODE_HOST+=("node$i")
    done
    [[ -z "$missing" ]] || die "need $NEED nodes ($NSERVERS servers + $NCLIENTS clients); not found via $src: $missing (found:${all% })"
}

node_label() { # node_label I -> "node3 (10.0.0.3)"
    if [[ "$LOCAL" == 1 ]]; then
        echo "local $(node_role "$1") (${NODE_HOST[$1]})"
    else
        echo "node$1 (${NODE_HOST[$1]})"
    fi
}

# run_on I CMDSTRING — run a bash command string on node I and wait.
# This is the only place that decides between ssh and local execution.
run_on() {
    if [[ "$LOCAL" == 1 && "$NETNS" == 1 ]]; then
        ip netns exec "$(netns_name "$1")" bash -c "$2"
    elif [[ "$LOCAL" == 1 ]]; then
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

# start_bg NAME I CMDSTRING [PRE] — start CMDSTRING on node I in the
# background; its stdout/stderr go to RUN_DIR/NAME.out / NAME.err; the remote
# pid to a pidfile. PRE (a shell command string) runs first, in the same
# process. argv[0] becomes corekv-RUN_TAG-NAME so stray processes can be found
# by tag.
start_bg() {
    local name="$1" i="$2" cmd="$3" pre="${4:-}" pidfile
    pidfile="$(work_dir "$i")/$name.pid"
    local wrapped
    wrapped="mkdir -p $(q "$(work_dir "$i")") && echo \$\$ > $(q "$pidfile") && ${pre:+$pre; }exec -a corekv-$RUN_TAG-$name $cmd"
    run_on "$i" "$wrapped" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.err" </dev/null &
    PROCS+=("$name")
    P_NODE[$name]="$i"
    P_LPID[$name]=$!
    P_PIDFILE[$name]="$pidfile"
    printf '%s\n' "$name on $(node_label "$i"): ${cmd}" >>"$RUN_DIR/commands.txt"
}

# alive NAME — the local side of NAME (bash in local mode, ssh otherwise) still
# runs; it exits with the process's status when the process exits.
alive() { kill -0 "${P_LPID[$1]}" 2>/dev/null; }

# Runs on a node as `bash -c "$STOP_SNIPPET" stop SIG TIMEOUT PIDFILE...`:
# sends SIG to every process named by a pidfile that is still up, waits up to
# TIMEOUT s for all of them, SIGKILLs the rest and prints their pidfiles'
# names. Checks the processes themselves (not the local bash/ssh, which a
# Ctrl-C to the process group may have killed first); zombies count as gone.
# shellcheck disable=SC2016 # expanded on the node, not here
STOP_SNIPPET='
up() { local st; [ -r "/proc/$1/stat" ] && read -r _ _ st _ <"/proc/$1/stat" && [ "$st" != Z ]; }
sig=$1 tmo=$2; shift 2; left=""
for f in "$@"; do p=$(cat "$f" 2>/dev/null) || continue; if up "$p"; then kill "-$sig" "$p" 2>/dev/null; left="$left $p"; fi; done
t=0
while [ -n "$left" ] && [ $t -lt $((tmo * 10)) ]; do
  sleep 0.1; t=$((t + 1)); l=""
  for p in $left; do if up "$p"; then l="$l $p"; fi; done; left=$l
done
for f in "$@"; do p=$(cat "$f" 2>/dev/null) || continue; if up "$p"; then kill -KILL "$p" 2>/dev/null; f=${f##*/}; echo "${f%.pid}"; fi; done
true'

# stop_procs SIG TIMEOUT NAME... — on every node at once: signal the named
# processes, wait up to TIMEOUT s, SIGKILL what is left; then reap the local
# bash/ssh of each.
stop_procs() {
    local sig="$1" timeout="$2" name i
    shift 2
    local -A files=()
    local -a pids=() nodes=()
    for name in "$@"; do
        i="${P_NODE[$name]}"
        [[ "$LOCAL" == 1 ]] && i=0 # one machine: one call
        files[$i]+=" $(q "${P_PIDFILE[$name]}")"
    done
    for i in "${!files[@]}"; do
        run_on "$i" "bash -c $(q "$STOP_SNIPPET") stop $sig $timeout ${files[$i]}" >"$RUN_DIR/.stop.$i" 2>/dev/null </dev/null &
        pids+=($!)
        nodes+=("$i")
    done
    for ((k = 0; k < ${#pids[@]}; k++)); do
        wait "${pids[$k]}" || log "warning: stopping processes on $(node_label "${nodes[$k]}") failed"
        while read -r name; do
            [[ -n "$name" ]] && log "$name on $(node_label "${P_NODE[$name]:-${nodes[$k]}}") did not stop ${timeout}s after SIG$sig; killed it"
        done <"$RUN_DIR/.stop.${nodes[$k]}"
        rm -f "$RUN_DIR/.stop.${nodes[$k]}"
    done
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
    # Last resort after a failure: anything still carrying this run's unique
    # tag (e.g. started while we were being interrupted) is killed.
    if [[ ${#PROCS[@]} -gt 0 && $rc != 0 ]]; then
        local n=$NEED
        [[ "$LOCAL" == 1 ]] && n=1
        for ((i = 0; i < n; i++)); do
            run_on "$i" "pkill -KILL -f '[c]orekv-$RUN_TAG-'; true" >/dev/null 2>&1 || true
        done
    fi
    if [[ -n "${RUN_DIR:-}" ]]; then rm -f "$RUN_DIR"/*.pid; fi
    netns_down
    if [[ $rc != 0 && -n "${RUN_DIR:-}" ]]; then
        log "run failed (exit $rc); logs in $RUN_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---------------------------------------------------------------------------
# Network namespaces (NETNS=1): node i is namespace ckvn<id>n<i> with eth0 at
# NETNS_NET.<i+1>/24, its veth peer ckv<id>h<i> on bridge ckv<id>b.
# ---------------------------------------------------------------------------
NETNS_ID="$$"
NETNS_NET="10.$((200 + $$ % 50)).$(($$ / 50 % 256))"
NETNS_MADE=0
netns_name() { echo "ckvn${NETNS_ID}n$1"; }
netns_up() {
    local i ns
    NETNS_MADE=1
    ip link add "ckv${NETNS_ID}b" type bridge || die "NETNS=1: cannot create a bridge (root and iproute2 needed)"
    ip link set "ckv${NETNS_ID}b" up
    for ((i = 0; i < NEED; i++)); do
        ns="$(netns_name "$i")"
        ip netns add "$ns" || die "NETNS=1: cannot create network namespace $ns"
        ip link add "ckv${NETNS_ID}h$i" type veth peer name "ckv${NETNS_ID}p$i"
        ip link set "ckv${NETNS_ID}p$i" netns "$ns"
        ip netns exec "$ns" ip link set "ckv${NETNS_ID}p$i" name eth0
        ip netns exec "$ns" ip addr add "${NODE_HOST[$i]}/24" dev eth0
        ip netns exec "$ns" ip link set eth0 up
        ip netns exec "$ns" ip link set lo up
        ip link set "ckv${NETNS_ID}h$i" master "ckv${NETNS_ID}b"
        ip link set "ckv${NETNS_ID}h$i" up
    done
    log "network namespaces: $NEED nodes on ${NETNS_NET}.0/24 (bridge ckv${NETNS_ID}b)"
}
# Removes what netns_up made (namespaces take their veth pairs with them).
netns_down() {
    [[ "$NETNS_MADE" == 1 ]] || return 0
    local i
    for ((i = 0; i < NEED; i++)); do
        ip link del "ckv${NETNS_ID}h$i" 2>/dev/null || true # takes its peer too
        ip netns del "$(netns_name "$i")" 2>/dev/null || true
    done
    ip link del "ckv${NETNS_ID}b" 2>/dev/null || true
    NETNS_MADE=0
}

# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------
if [[ "$NETNS" == 1 ]]; then
    [[ "$LOCAL" == 1 ]] || die "NETNS=1 needs LOCAL=1"
    [[ "$(id -u)" == 0 ]] || die "NETNS=1 needs root (ip netns)"
    command -v ip >/dev/null || die "NETNS=1 needs iproute2 (ip)"
fi
discover_nodes
[[ "$NETNS" == 1 ]] && netns_up

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

# check_nodes — every node answers over ssh (all checked at once); names
# every node that does not, with ssh's own message, before anything starts.
check_nodes() {
    local -a pids=() bad=()
    local i
    log "checking ssh to $NEED nodes"
    for ((i = 0; i < NEED; i++)); do
        run_on "$i" "true" >"$RUN_DIR/ssh-check.node$i.log" 2>&1 </dev/null &
        pids+=($!)
    done
    for ((i = 0; i < NEED; i++)); do
        if ! wait "${pids[$i]}"; then
            bad+=("$(node_label "$i") [$(node_role "$i")]: $(tail -n 1 "$RUN_DIR/ssh-check.node$i.log")")
        fi
    done
    if [[ ${#bad[@]} -gt 0 ]]; then
        for i in "${bad[@]}"; do log "unreachable: $i"; done
        die "${#bad[@]} node(s) unreachable over ssh: ${bad[*]%%:*}"
    fi
    rm -f "$RUN_DIR"/ssh-check.node*.log
}
[[ "$LOCAL" == 1 ]] || check_nodes

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
# RESP: node port R, shard i on R+1+i. Local mode: PORT+100*i+50, so up to
# 49 shards per server fit between two servers' native port ranges.
resp_port() { if [[ "$LOCAL" == 1 ]]; then echo $((PORT + 100 * $1 + 50)); else echo "$RESP_PORT"; fi; }

# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------
# Every server gets the same --cluster list (node id = position), so the
# servers know the cluster: hash slots split over them, MOVED across nodes.
HOSTS_ARG=""
for ((s = 0; s < NSERVERS; s++)); do
    HOSTS_ARG+="${HOSTS_ARG:+,}${NODE_HOST[$s]}:$(server_port "$s")"
done
for ((s = 0; s < NSERVERS; s++)); do
    port="$(server_port "$s")"
    bind=0.0.0.0
    [[ "$LOCAL" == 1 ]] && bind=127.0.0.1 # local mode: nothing leaves loopback
    [[ "$NETNS" == 1 ]] && bind="${NODE_HOST[$s]}" # its namespace's address
    cmd=("$(node_bin "$s")" server --bind "$bind" --cluster "$HOSTS_ARG" --node-id "$s" --port "$port")
    has_flag --cpus "${SERVER_ARGS[@]}" || cmd+=(--cpus "$(cpus_for server "$s" "$s")")
    if ! has_flag --resp-port "${SERVER_ARGS[@]}" && ! has_flag --no-resp "${SERVER_ARGS[@]}"; then
        cmd+=(--resp-port "$(resp_port "$s")")
    fi
    # Clients and peers reach the servers from other hosts (other nodes, or
    # other namespaces with NETNS=1), which protected mode refuses when no
    # password is set: the experiment's network is private, so turn it off
    # unless server_args set a password or protected mode themselves.
    if ! has_flag --requirepass "${SERVER_ARGS[@]}" && ! has_flag --protected-mode "${SERVER_ARGS[@]}"; then
        cmd+=(--protected-mode no)
    fi
    cmd+=("${SERVER_ARGS[@]}")
    start_bg "server$s" "$s" "$(q "${cmd[@]}")"
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
# Monitors: one per server and client process, on its node, watching it
# (--pid) and the node. A client's monitor waits (up to 10 s) for the
# client's pidfile.
# ---------------------------------------------------------------------------
MON_SECS=$((WARMUP + SECS + BENCH_SLACK + 60))
mon_iface="${MON_IFACE:-}"
[[ "$LOCAL" == 1 && -z "$mon_iface" ]] && mon_iface=lo
[[ "$NETNS" == 1 && -z "${MON_IFACE:-}" ]] && mon_iface=eth0
start_monitor() { # start_monitor NAME NODE PIDFILE
    local name="$1" i="$2" pidfile="$3" cmd pre
    cmd="$(q "$(node_bin "$i")" monitor --secs "$MON_SECS" --interval 1 --out "$(work_dir "$i")/$name.monitor.json")"
    [[ -n "$mon_iface" ]] && cmd+=" $(q --iface "$mon_iface")"
    cmd+=" --pid \"\$(cat $(q "$pidfile"))\""
    pre="t=0; while [ ! -s $(q "$pidfile") ] && [ \$t -lt 100 ]; do sleep 0.1; t=\$((t + 1)); done"
    start_bg "$name-monitor" "$i" "$cmd" "$pre"
}
if [[ "$MONITOR" == 1 ]]; then
    for ((s = 0; s < NSERVERS; s++)); do start_monitor "server$s" "$s" "${P_PIDFILE[server$s]}"; done
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
if [[ "$MONITOR" == 1 ]]; then
    for ((c = 0; c < NCLIENTS; c++)); do start_monitor "client$c" $((NSERVERS + c)) "${P_PIDFILE[client$c]}"; done
fi

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

[[ ${#reports[@]} -eq $NCLIENTS ]] || die "only ${#reports[@]} of $NCLIENTS clients wrote a report.json"

monitors=()
for name in "${PROCS[@]}"; do
    [[ "$name" == *-monitor ]] || continue
    f="$RUN_DIR/${name%-monitor}.monitor.json"
    if [[ -s "$f" ]]; then monitors+=("$f"); else log "warning: ${name} wrote no ${f##*/}; see $RUN_DIR/$name.err"; fi
done

log "merging ${#reports[@]} reports (+ ${#monitors[@]} monitor files)"
merge_cmd=("$BIN" report merge "${reports[@]}" --out "$RUN_DIR/merged")
[[ ${#monitors[@]} -gt 0 ]] && merge_cmd+=(--monitor "${monitors[@]}")
printf '%s\n' "merge: ${merge_cmd[*]}" >>"$RUN_DIR/commands.txt"
if ! "${merge_cmd[@]}" >"$RUN_DIR/merge.out" 2>"$RUN_DIR/merge.err"; then
    cat "$RUN_DIR/merge.err" >&2
    die "'corekv report merge' failed; see $RUN_DIR/merge.err"
fi
echo "== corekv report merge =="
cat "$RUN_DIR/merge.out"

python3 "$SCRIPT_DIR/collect.py" "$RUN_DIR" --servers "$NSERVERS" --clients "$NCLIENTS" | tee "$RUN_DIR/summary.txt" ||
    die "could not compute totals; see $RUN_DIR"
log "plots: $RUN_DIR/merged/{throughput,latency,utilization}.png"
log "done: $RUN_DIR (logs/latest)"
