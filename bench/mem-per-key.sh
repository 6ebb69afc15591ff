#!/usr/bin/env bash
# Memory per key: starts a corekv node, loads KEYS keys ("0".."KEYS-1", 1-7
# bytes, the seed's shape) with VALUE_SIZE-byte values over RESP with
# redis-cli --pipe, and prints used_memory and the RSS growth per key.
#
#   bench/mem-per-key.sh                     # plain SET
#   SET_ARGS="EX 3600" bench/mem-per-key.sh  # every key with a TTL
#   SERVER_ARGS="--maxmemory-policy sieve" SET_ARGS="EX 3600" bench/mem-per-key.sh
#
# Env: COREKV_BIN (default target/release/corekv), KEYS (1000000),
# VALUE_SIZE (128), CPUS (0-1), PORT (17300), RESP_PORT (16680).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${COREKV_BIN:-target/release/corekv}
KEYS=${KEYS:-1000000}
VALUE_SIZE=${VALUE_SIZE:-128}
RESP_PORT=${RESP_PORT:-16680}
[ -x "$BIN" ] || { echo "no $BIN: run 'make release' (or set COREKV_BIN)" >&2; exit 2; }
command -v redis-cli >/dev/null || { echo "redis-cli not found (apt-get install redis-tools)" >&2; exit 2; }
# shellcheck disable=SC2086
"$BIN" server --cpus "${CPUS:-0-1}" --port "${PORT:-17300}" --resp-port "$RESP_PORT" \
  --stats-interval 0 ${SERVER_ARGS:-} >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do redis-cli -p "$RESP_PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 "$PID" 2>/dev/null || { echo "corekv did not start (ports ${PORT:-17300}, $RESP_PORT free?)" >&2; exit 1; }
rss() { awk '/VmRSS/{print $2}' "/proc/$PID/status"; }
base=$(rss)
python3 - "$KEYS" "$VALUE_SIZE" "${SET_ARGS:-}" <<'PY' | redis-cli -p "$RESP_PORT" --pipe >/dev/null
import sys
n, size, extra = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split()
v = "x" * size
w = sys.stdout.write
for i in range(n):
    args = ["SET", str(i), v] + extra
    w("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args))
PY
used=$(redis-cli -p "$RESP_PORT" INFO memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
keys=$(redis-cli -p "$RESP_PORT" DBSIZE)
grown=$(( ($(rss) - base) * 1024 ))
echo "keys=$keys value=${VALUE_SIZE}B set_args='${SET_ARGS:-}' server_args='${SERVER_ARGS:-}'"
echo "used_memory=$used ($((used / keys)) B/key)  RSS growth=$grown ($((grown / keys)) B/key)"
