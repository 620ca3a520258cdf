#!/usr/bin/env bash
# Orders/s over HTTP: wrk POSTing orders (64 connections, distinct customers, a
# handful of SKUs with ample stock) against `flashgate serve`, then, in the same
# run, against the echo example (parse + echo the JSON: the HTTP stack's
# ceiling). Prints both figures and the ratio. Every flashgate 201 is durable.
#
#   scripts/bench-http.sh [duration_secs=20] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
connections=${2:-64}
skus=${WRK_SKUS:-8}
export WRK_SKUS=$skus

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
[ -n "${FLASHGATE_BIN:-}" ] || cargo build --release --quiet --bin flashgate --example echo

work=$(mktemp -d)
cleanup() { for pidfile in "$work"/*.pid; do [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT

# Starts a server in the background and waits for its "listening on http ADDR" line.
start() {
  local log=$1; shift
  "$@" >"$log.out" 2>"$log.err" &
  echo $! >"$log.pid"
  for _ in $(seq 1 100); do
    addr=$(grep -o 'listening on http [0-9.:]*' "$log.out" 2>/dev/null | awk '{print $4}' | head -1 || true)
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.1
  done
  echo "server did not start: $(cat "$log.err")" >&2; exit 1
}

token=bench-token-0123456789
# Orders carry the admin token (it may do everything; the check costs what a
# service token's does): wrk-orders.lua and quic_bench read these.
export WRK_TOKEN="$token" FLASHGATE_CREDENTIAL="$token"
addr=$(start "$work/flashgate" "${FLASHGATE_BIN:-target/release/flashgate}" serve --data-dir "$work/data" \
  --http-addr 127.0.0.1:0 --admin-token "$token")
for i in $(seq 0 $((skus - 1))); do
  curl -sf -o /dev/null -X PUT "http://$addr/v1/skus/BENCH-$i" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"stock": 100000000}'
done
echo "== flashgate serve ($addr): wrk -t2 -c$connections -d${duration}s"
wrk -t2 -c"$connections" -d"${duration}s" --latency -s scripts/wrk-orders.lua "http://$addr" | tee "$work/flashgate.wrk"
curl -s -H "Authorization: Bearer $token" "http://$addr/metrics" | grep -E '^flashgate_log_batch_records_(sum|count)' || true
kill "$(cat "$work/flashgate.pid")"; rm "$work/flashgate.pid"

echo_addr=$(start "$work/echo" target/release/examples/echo 127.0.0.1:0)
echo "== echo endpoint ($echo_addr): wrk -t2 -c$connections -d${duration}s"
wrk -t2 -c"$connections" -d"${duration}s" --latency -s scripts/wrk-orders.lua "http://$echo_addr" | tee "$work/echo.wrk"

rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
flashgate_rps=$(rps "$work/flashgate.wrk")
echo_rps=$(rps "$work/echo.wrk")
if grep -q "Non-2xx" "$work/flashgate.wrk"; then echo "WARNING: flashgate answered non-2xx; see status lines above"; fi
awk -v f="$flashgate_rps" -v e="$echo_rps" 'BEGIN { printf "flashgate %.0f orders/s, echo %.0f requests/s, ratio %.2f\n", f, e, f / e }'
