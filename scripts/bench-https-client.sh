#!/usr/bin/env bash
# Orders/s through flashgate's own client (the load tester, closed loop) over
# plain HTTP, then over HTTPS (TLS 1.3 negotiated by rustls on both ends),
# against a fresh release node each time: what TLS costs a client of the
# library, server and client on the same cores. Every run ends with the load
# tester's audit; its figure counts only acknowledged (durable) orders.
#
#   scripts/bench-https-client.sh [duration_secs=10] [buyers=64]
#
# Needs target/release/flashgate and target/release/flashgate-loadtest
# (cargo build --release -p flashgate --bin flashgate -p flashgate-loadtest
# --bin flashgate-loadtest) and openssl for the throwaway CA.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
buyers=${2:-64}
bin=${CARGO_TARGET_DIR:-target}/release
for program in flashgate flashgate-loadtest; do
  [ -x "$bin/$program" ] || { echo "no $bin/$program: build it (see the header of $0)" >&2; exit 2; }
done

work=$(mktemp -d)
cleanup() { for pidfile in "$work"/*.pid; do [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT

# A CA and a certificate for localhost it signed (ECDSA P-256).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=flashgate bench CA" -keyout "$work/ca-key.pem" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$work/key.pem" -out "$work/cert.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$work/ext.cnf"
openssl x509 -req -in "$work/cert.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" \
  -CAcreateserial -days 1 -extfile "$work/ext.cnf" -out "$work/cert.pem" 2>/dev/null

token=bench-token-0123456789
start() {
  local name=$1; shift
  "$bin/flashgate" serve --data-dir "$work/$name-data" --http-addr 127.0.0.1:0 \
    --admin-token "$token" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  echo $! >"$work/$name.pid"
  for _ in $(seq 1 100); do
    addr=$(grep -o 'listening on https\? [0-9.:]*' "$work/$name.out" 2>/dev/null | awk '{print $4}' | head -1 || true)
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.1
  done
  echo "server did not start: $(cat "$work/$name.err")" >&2; exit 1
}

run() {
  local name=$1 url=$2; shift 2
  "$bin/flashgate-loadtest" --http "$url" "$@" --create-skus --admin-token "$token" \
    --credential "$token" --skus 8 --stock 100000000 --buyers "$buyers" \
    --duration "$duration" --report-json "$work/$name.json" >"$work/$name.summary"
  jq -r '"\(.throughput_per_sec | floor) orders/s, audit passed: \(.audit.passed), p50 \(.latency_us.overall.p50) µs, p99 \(.latency_us.overall.p99) µs"' "$work/$name.json"
}

command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq; }
addr=$(start plain)
echo "== plain HTTP ($addr): $buyers buyers, ${duration}s"
plain=$(run plain "http://$addr"); echo "$plain"
kill "$(cat "$work/plain.pid")"; rm "$work/plain.pid"

addr=$(start tls --http-tls-cert "$work/cert.pem" --http-tls-key "$work/key.pem")
port=${addr##*:}
echo "== HTTPS (localhost:$port): $buyers buyers, ${duration}s"
tls=$(run tls "https://localhost:$port" --cert "$work/ca.pem"); echo "$tls"
awk -v p="${plain%% *}" -v t="${tls%% *}" 'BEGIN { printf "HTTPS / plain: %.2f\n", t / p }'
