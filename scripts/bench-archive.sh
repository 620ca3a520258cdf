#!/usr/bin/env bash
# What continuous archiving costs the order path: orders/s and latency with
# wrk (orders, 2 threads, 64 connections, SECS seconds, default 20) against a
# fresh node without an archive, then with `--archive-dir` (and an
# `--archive-command` that copies each closed segment), runs interleaved
# ROUNDS times (default 2); then how far the archive lagged.
#
#   scripts/bench-archive.sh [secs=20] [rounds=2]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
rounds=${2:-2}
bin=target/release/flashgate
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --bin flashgate

work=$(mktemp -d)
trap '[ -f "$work/pid" ] && kill -9 "$(cat "$work/pid")" 2>/dev/null || true; rm -rf "$work"' EXIT
token=bench-token-0123456789
export WRK_TOKEN="$token"

run() { # run NAME [serve args...]
  local name=$1; shift
  rm -rf "$work/data" "$work/archive" "$work/copies"; mkdir -p "$work/copies"
  : >"$work/out"; : >"$work/err"
  FLASHGATE_CHECKPOINT_INTERVAL_SECS=0 "$bin" serve --data-dir "$work/data" \
    --http-addr 127.0.0.1:0 --admin-token "$token" "$@" >"$work/out" 2>"$work/err" &
  echo $! >"$work/pid"
  addr=""
  for _ in $(seq 1 60000); do
    addr=$(grep -o 'listening on http [0-9.:]*' "$work/out" | awk '{print $4}' | head -1 || true)
    [ -n "$addr" ] && break
    sleep 0.005
  done
  for i in $(seq 0 7); do
    curl -sf -o /dev/null -X PUT "http://$addr/v1/skus/BENCH-$i" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -d '{"stock": 100000000}'
  done
  WRK_SKUS=8 wrk -t2 -c64 -d"${secs}s" --latency -s scripts/wrk-orders.lua "http://$addr" >"$work/wrk"
  local metrics
  metrics=$(curl -sf -H "Authorization: Bearer $token" "http://$addr/metrics" | grep -E '^flashgate_archive_(lsn|lag_records) ' | tr '\n' ' ' || true)
  echo "$name: $(awk '/Requests\/sec/ {print $2}' "$work/wrk") orders/s, p99 $(awk '/ 99%/ {print $2}' "$work/wrk"), max $(awk '/Latency/ {print $4; exit}' "$work/wrk") $metrics"
  kill -TERM "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; rm -f "$work/pid"
  if [ -d "$work/archive" ]; then
    echo "   archive: $(du -sh "$work/archive" | cut -f1), $(ls "$work/archive" | wc -l) segments, $(ls "$work/copies" | wc -l) copied"
  fi
}
for round in $(seq 1 "$rounds"); do
  run "round $round, no archive"
  run "round $round, archive" --archive-dir "$work/archive" --archive-command "cp %p $work/copies/%f"
done
echo "(load average $(cut -d' ' -f1-3 /proc/loadavg))"
