#!/usr/bin/env bash
# setup-node.sh — idempotent CloudLab node setup for corekv (see usage).
set -euo pipefail

usage() {
    cat <<EOF2
Usage: $(basename "$0") [--rust] [--no-redis-tools] [--stop-irqbalance] [-h]

Prepares a node for corekv runs; safe to re-run. Needs root (uses sudo if not).
  - apt packages: build-essential git pkg-config python3 (+ redis-tools)
  - /etc/security/limits.d/corekv.conf: memlock unlimited for every user and
    root (io_uring), and raises memlock for the current shell where allowed
  - CPU frequency governor 'performance' wherever scaling_governor is writable
Options:
  --rust             install a Rust toolchain with rustup (to build on the node)
  --no-redis-tools   skip redis-tools (redis-cli / redis-benchmark for RESP tests)
  --stop-irqbalance  stop and disable irqbalance (pin NIC IRQs yourself)
EOF2
}

RUST=0
REDIS_TOOLS=1
STOP_IRQBALANCE=0
for a in "$@"; do
    case "$a" in
    --rust) RUST=1 ;;
    --no-redis-tools) REDIS_TOOLS=0 ;;
    --stop-irqbalance) STOP_IRQBALANCE=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $a" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '[setup-node %s] %s\n' "$(hostname -s 2>/dev/null || echo node)" "$*"; }
SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo -n); fi
as_root() { "${SUDO[@]}" "$@"; }

# --- packages ---------------------------------------------------------------
pkgs=(build-essential git pkg-config python3 curl ca-certificates)
[[ $REDIS_TOOLS == 1 ]] && pkgs+=(redis-tools)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
else
    log "packages already installed"
fi

# --- Rust (optional) --------------------------------------------------------
if [[ $RUST == 1 ]]; then
    if command -v cargo >/dev/null 2>&1 || [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        log "rust already installed"
    else
        log "installing rust with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    fi
fi

# --- memlock ----------------------------------------------------------------
# pam_limits' '*' does not cover root, hence the second line.
LIMITS=/etc/security/limits.d/corekv.conf
want=$'# corekv: io_uring rings need locked memory\n* - memlock unlimited\nroot - memlock unlimited'
if [[ -f $LIMITS && "$(cat "$LIMITS")" == "$want" ]]; then
    log "memlock limit already configured"
else
    log "writing $LIMITS"
    printf '%s\n' "$want" | as_root tee "$LIMITS" >/dev/null
fi
if ulimit -l unlimited 2>/dev/null; then
    log "memlock unlimited for this shell"
else
    log "memlock for this shell stays $(ulimit -l) (takes effect at next login)"
fi

# --- CPU governor -----------------------------------------------------------
n=0
for g in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do
    [[ -e $g ]] || continue
    [[ "$(cat "$g")" == performance ]] && continue
    if echo performance | as_root tee "$g" >/dev/null 2>&1; then n=$((n + 1)); fi
done
log "governor set to performance on $n CPUs (others: already set, absent or not writable)"

# --- irqbalance (optional) --------------------------------------------------
if [[ $STOP_IRQBALANCE == 1 ]] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-active --quiet irqbalance 2>/dev/null; then
        as_root systemctl disable --now irqbalance && log "irqbalance stopped"
    else
        log "irqbalance not running"
    fi
fi
log "done"
