#!/usr/bin/env bash
# Order events on NATS JetStream under a sale: a release node publishing to a
# real nats-server (JetStream, a throwaway store), the load tester driving a
# closed-loop sale over HTTP with confirms and cancels. Samples the
# publisher's lag (`/v1/cluster` → `events`) every 100 ms during the sale,
# then waits until it has caught up, and prints orders/s, events published,
# events/s, and the lag (records and ms) at its worst and at its median.
#
#   scripts/bench-events.sh [duration_secs=10] [buyers=64]
#
# Needs target/release/flashgate and target/release/flashgate-loadtest,
# nats-server (Debian nats-server) and jq.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
buyers=${2:-64}
bin=${CARGO_TARGET_DIR:-target}/release
for program in flashgate flashgate-loadtest; do
  [ -x "$bin/$program" ] || { echo "no $bin/$program: cargo build --release --bin flashgate --bin flashgate-loadtest" >&2; exit 2; }
done
command -v nats-server >/dev/null || { echo "no nats-server (apt-get install nats-server)" >&2; exit 2; }
command -v jq >/dev/null || { echo "no jq (apt-get install jq)" >&2; exit 2; }

work=$(mktemp -d)
cleanup() { for pidfile in "$work"/*.pid; do [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; done; sleep 0.2; rm -rf "$work"; }
trap cleanup EXIT

nats_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$work/nats" >"$work/nats.log" 2>&1 &
echo $! >"$work/nats.pid"
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/"$nats_port") 2>/dev/null && break; sleep 0.1; done

token=bench-token-0123456789
"$bin/flashgate" serve --data-dir "$work/data" --http-addr 127.0.0.1:0 --no-quic \
  --admin-token "$token" --events-nats-url "nats://127.0.0.1:$nats_port" \
  >"$work/node.out" 2>"$work/node.err" &
echo $! >"$work/node.pid"
addr=
for _ in $(seq 1 100); do
  addr=$(grep -o 'listening on http [0-9.:]*' "$work/node.out" 2>/dev/null | awk '{print $4}' | head -1 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "node did not start: $(cat "$work/node.err")" >&2; exit 1; }
cluster() { curl -s "http://$addr/v1/cluster" -H "Authorization: Bearer $token"; }

# Sample the lag while the sale runs.
( while true; do cluster | jq -c '[.events.lag_records, .events.lag_ms]' >>"$work/lag"; sleep 0.1; done ) &
echo $! >"$work/sampler.pid"
started=$(date +%s.%N)
"$bin/flashgate-loadtest" --http "http://$addr" --create-skus --admin-token "$token" \
  --credential "$token" --skus 8 --stock 100000000 --buyers "$buyers" \
  --duration "$duration" --confirm-ratio 0.5 --cancel-ratio 0.1 \
  --report-json "$work/run.json" >"$work/run.summary"
sale_end=$(date +%s.%N)
kill "$(cat "$work/sampler.pid")" 2>/dev/null || true
# Then until the publisher has everything.
for _ in $(seq 1 600); do
  [ "$(cluster | jq '.events.lag_records')" = 0 ] && break
  sleep 0.1
done
caught_up=$(date +%s.%N)
published=$(cluster | jq '.events.published')
jq -r '"sale: \(.throughput_per_sec | floor) orders/s acknowledged, audit passed: \(.audit.passed)"' "$work/run.json"
echo "events published: $published in $(echo "$caught_up - $started" | bc) s ($(echo "$published / ($caught_up - $started)" | bc) events/s); caught up $(echo "$caught_up - $sale_end" | bc) s after the sale ended"
sort -t, -k1 -n "$work/lag" | jq -s -r 'map(select(.[0] != null)) | (map(.[0]) | sort) as $r | (map(.[1]) | sort) as $m |
  "publish lag during the sale (\(length) samples): records median \($r[length/2|floor]) max \($r[-1]); ms median \($m[length/2|floor]) max \($m[-1])"'
