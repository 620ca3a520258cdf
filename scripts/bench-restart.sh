#!/usr/bin/env bash
# Restart time with a data dir holding ORDERS orders (default 1,000,000):
# 1. fill it through `flashgate serve` with wrk (distinct customers, 8 SKUs);
# 2. SIGKILL, restart: recovery replays the whole log (no checkpoint yet);
# 3. SIGTERM (final checkpoint), restart: recovery loads the checkpoint.
# Prints the recovery figures flashgate logs at start.
#
#   scripts/bench-restart.sh [orders=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-1000000}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --quiet --bin flashgate

work=$(mktemp -d)
trap '[ -f "$work/pid" ] && kill -9 "$(cat "$work/pid")" 2>/dev/null; rm -rf "$work"' EXIT
token=bench-token-0123456789
# Orders carry the admin token (it may do everything; the check costs what a
# service token's does): wrk-orders.lua and quic_bench read these.
export WRK_TOKEN="$token" FLASHGATE_CREDENTIAL="$token"

start() {
  : >"$work/out"
  FLASHGATE_CHECKPOINT_INTERVAL_SECS=0 target/release/flashgate serve --data-dir "$work/data" \
    --http-addr 127.0.0.1:0 --admin-token "$token" >"$work/out" 2>>"$work/err" &
  echo $! >"$work/pid"
  for _ in $(seq 1 6000); do
    addr=$(grep -o 'listening on http [0-9.:]*' "$work/out" | awk '{print $4}' | head -1 || true)
    [ -n "$addr" ] && return
    sleep 0.05
  done
  echo "flashgate did not start: $(tail -5 "$work/err")" >&2; exit 1
}
recovery_line() { grep 'recovered data dir' "$work/err" | tail -1 | sed 's/\x1b\[[0-9;]*m//g'; }
order_count() { recovery_line | grep -o 'orders=[0-9]*' | cut -d= -f2; }

start
for i in $(seq 0 7); do
  curl -sf -o /dev/null -X PUT "http://$addr/v1/skus/BENCH-$i" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"stock": 100000000}'
done
echo "== filling $addr with $orders orders"
filled=0
while [ "$filled" -lt "$orders" ]; do
  WRK_SKUS=8 wrk -t2 -c64 -d10s -s scripts/wrk-orders.lua "http://$addr" >"$work/wrk"
  filled=$((filled + $(awk '/^status 201:/ {print $3}' "$work/wrk")))
  echo "   $filled orders acknowledged"
done
du -sh "$work/data"

echo "== SIGKILL, restart: replay of the whole log"
kill -9 "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
started=$(date +%s%N); start; ready=$(( ($(date +%s%N) - started) / 1000000 ))
echo "   process start to listening: ${ready} ms"; recovery_line

echo "== SIGTERM (final checkpoint), restart: checkpoint load"
stopping=$(date +%s%N); kill -TERM "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
echo "   shutdown with checkpoint: $(( ($(date +%s%N) - stopping) / 1000000 )) ms"
du -sh "$work/data"
started=$(date +%s%N); start; ready=$(( ($(date +%s%N) - started) / 1000000 ))
echo "   process start to listening: ${ready} ms"; recovery_line
kill -TERM "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
