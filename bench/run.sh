#!/usr/bin/env bash
# `make run`: start a local corekv server on this machine's CPUs, exercise it,
# print a readable report, stop it. (The short benchmark replaces the CLI
# round trip once `corekv bench` lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${COREKV_BIN:-target/release/corekv}
PORT=${PORT:-7000}
log=$(mktemp)
"$BIN" server --port "$PORT" --no-resp --stats-interval 0 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "corekv ready" "$log" && break; kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }; sleep 0.1; done
grep "corekv ready" "$log"
"$BIN" put --hosts 127.0.0.1:$PORT hello world
"$BIN" get --hosts 127.0.0.1:$PORT hello
"$BIN" stats --hosts 127.0.0.1:$PORT
