#!/usr/bin/env bash
# Restart time with a data dir holding ORDERS orders (default 1,000,000):
# 1. fill it through `flashgate serve` with wrk (8 SKUs, periodic checkpoints off),
#    each wrk thread stopping at its share of the count (WRK_MAX_ANSWERS), so
#    the data dir holds ORDERS orders, not a run's worth more;
# 2. SIGKILL: restarts that replay the whole log (no checkpoint yet);
# 3. SIGTERM (final checkpoint): restarts that load the checkpoint;
# 4. TAIL more orders (default 100,000), SIGKILL: restarts that load the
#    checkpoint and replay the log after it.
# Each case restarts RUNS times (default 5; each restart is SIGKILLed once it
# listens, which changes nothing in the data dir) and prints every run's
# figures (process start to the "listening" line, and flashgate's own
# recovery line), then the median and the machine's load average.
#
#   [SKU_LIMIT=N] scripts/bench-restart.sh [orders=1000000] [runs=5] [tail=100000] [binary]
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-1000000}
runs=${2:-5}
tail_orders=${3:-100000}
bin=${4:-target/release/flashgate}
# SKU_LIMIT=N gives every SKU a per-customer limit of N: its shard then
# counts each buyer's units (every order has a buyer of its own, so the
# limit never refuses one).
limit_field=${SKU_LIMIT:+, \"per_customer_limit\": $SKU_LIMIT}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
[ -n "${4:-}" ] || cargo build --release --quiet --bin flashgate

work=$(mktemp -d)
trap '[ -f "$work/pid" ] && kill -9 "$(cat "$work/pid")" 2>/dev/null || true; rm -rf "$work"' EXIT
token=bench-token-0123456789
# Orders carry the admin token (it may do everything; the check costs what a
# service token's does): wrk-orders.lua reads it.
export WRK_TOKEN="$token" FLASHGATE_CREDENTIAL="$token"

start() {
  : >"$work/out"
  : >"$work/err"
  FLASHGATE_CHECKPOINT_INTERVAL_SECS=0 "$bin" serve --data-dir "$work/data" \
    --http-addr 127.0.0.1:0 --admin-token "$token" >"$work/out" 2>"$work/err" &
  echo $! >"$work/pid"
  for _ in $(seq 1 60000); do
    addr=$(grep -o 'listening on http [0-9.:]*' "$work/out" | awk '{print $4}' | head -1 || true)
    [ -n "$addr" ] && return
    kill -0 "$(cat "$work/pid")" 2>/dev/null || break
    sleep 0.005
  done
  echo "flashgate did not start: $(tail -5 "$work/err")" >&2; exit 1
}
kill_node() {
  kill "-$1" "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
}
recovery_line() {
  grep 'recovered data dir' "$work/err" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' |
    grep -o 'orders=.*recovery_ms=[0-9]*'
}
fill() { # fill COUNT: COUNT more acknowledged orders, give or take wrk's connections
  # wrk runs until its duration even once every thread has stopped at its
  # share (WRK_MAX_ANSWERS), so the duration comes from the rate of a first
  # 2-second run, with a margin.
  local filled=0 rate=0 half secs
  while [ "$filled" -lt "$1" ]; do
    half=$(( ($1 - filled + 1) / 2 ))
    if [ "$rate" -gt 0 ]; then secs=$(( 2 * ($1 - filled) / rate + 2 )); else secs=2; fi
    WRK_MAX_ANSWERS=$half WRK_SKUS=8 wrk -t2 -c64 -d${secs}s -s scripts/wrk-orders.lua "http://$addr" >"$work/wrk"
    local got; got=$(awk '/^status 201:/ {print $3}' "$work/wrk")
    [ "$rate" -gt 0 ] || rate=$(( got / 2 + 1 ))
    filled=$((filled + got))
    echo "   $filled orders acknowledged"
  done
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
restarts() { # restarts CASE: RUNS restarts of the stopped node, each SIGKILLed once it listens
  : >"$work/times"
  for run in $(seq 1 "$runs"); do
    started=$(date +%s%N); start; ready=$(( ($(date +%s%N) - started) / 1000000 ))
    echo "   run $run: listening after ${ready} ms; $(recovery_line)"
    echo "$ready" >>"$work/times"
    kill_node 9
  done
  echo "== $1: process start to listening, median of $runs: $(median <"$work/times") ms" \
    "(load average $(cut -d' ' -f1-3 /proc/loadavg))"
}

start
for i in $(seq 0 7); do
  curl -sf -o /dev/null -X PUT "http://$addr/v1/skus/BENCH-$i" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "{\"stock\": 100000000${limit_field}}"
done
echo "== filling $addr with $orders orders"
fill "$orders"
du -sh "$work/data"
kill_node 9
echo "== SIGKILL, restarts: replay of the whole log"
restarts "log only"

start
stopping=$(date +%s%N); kill_node TERM
echo "== SIGTERM: shutdown with the final checkpoint took $(( ($(date +%s%N) - stopping) / 1000000 )) ms"
du -sh "$work/data"
echo "== restarts: checkpoint load"
restarts "checkpoint"

start
echo "== $tail_orders more orders, then SIGKILL"
fill "$tail_orders"
kill_node 9
echo "== restarts: checkpoint load and replay of the log after it"
restarts "checkpoint + log tail"
