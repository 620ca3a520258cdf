#!/usr/bin/env bash
# Orders/s over one QUIC connection (pipelined batch frames, client library)
# against wrk over HTTP (64 connections), on the same server in the same run.
# Every counted order was acknowledged, and flashgate acknowledges only durable
# orders. Prints both figures and the ratio.
#
#   scripts/bench-quic.sh [duration_secs=20] [tasks=8] [batch=64]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
tasks=${2:-8}
batch=${3:-64}
skus=8
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --quiet --bin flashgate
cargo build --release --quiet -p flashgate-client --example quic_bench

work=$(mktemp -d)
trap '[ -f "$work/pid" ] && kill "$(cat "$work/pid")" 2>/dev/null || true; rm -rf "$work"' EXIT
token=bench-token-0123456789
# Orders carry the admin token (it may do everything; the check costs what a
# service token's does): wrk-orders.lua and quic_bench read these.
export WRK_TOKEN="$token" FLASHGATE_CREDENTIAL="$token"
target/release/flashgate serve --data-dir "$work/data" --http-addr 127.0.0.1:0 --quic-addr 127.0.0.1:0 \
  --admin-token "$token" >"$work/out" 2>"$work/err" &
echo $! >"$work/pid"
for _ in $(seq 1 100); do
  grep -q 'listening on http' "$work/out" && break
  sleep 0.1
done
http=$(grep -o 'listening on http [0-9.:]*' "$work/out" | awk '{print $4}')
quic=$(grep -o 'listening on quic [0-9.:]*' "$work/out" | awk '{print $4}')
fingerprint=$(grep -o 'sha256 [0-9a-f]*' "$work/out" | awk '{print $2}')
[ -n "$http" ] && [ -n "$quic" ] || { echo "flashgate did not start: $(cat "$work/err")" >&2; exit 1; }
for i in $(seq 0 $((skus - 1))); do
  curl -sf -o /dev/null -X PUT "http://$http/v1/skus/BENCH-$i" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"stock": 1000000000}'
done

echo "== HTTP: wrk -t2 -c64 -d${duration}s POST /v1/orders"
WRK_SKUS=$skus wrk -t2 -c64 -d"${duration}s" --latency -s scripts/wrk-orders.lua "http://$http" | tee "$work/http"
echo "== QUIC: one connection, $tasks pipelined tasks x batches of $batch orders, ${duration}s"
target/release/examples/quic_bench --addr "$quic" --fingerprint "$fingerprint" --secs "$duration" \
  --tasks "$tasks" --batch "$batch" --skus "$skus" | tee "$work/quic"
curl -s -H "Authorization: Bearer $token" "http://$http/metrics" | grep -E '^flashgate_log_batch_records_(sum|count)' || true

http_rps=$(awk '/^Requests\/sec/ {print $2}' "$work/http")
quic_rps=$(awk '/^quic orders\/s/ {print $3}' "$work/quic")
grep -q "Non-2xx" "$work/http" && echo "WARNING: HTTP run had non-2xx answers"
awk -v h="$http_rps" -v q="$quic_rps" 'BEGIN { printf "QUIC %.0f orders/s, HTTP %.0f orders/s, ratio %.2f\n", q, h, q / h }'
