#!/usr/bin/env bash
# CPU instructions per replicated order, counted by callgrind (repeatable
# whatever the machine's load, unlike wall-clock rates): a standalone node, then
# a sync pair's primary and its standby, each under valgrind, each sent the same
# fixed number of orders over HTTP by the same client at the same concurrency.
#
# Each node's counters are zeroed once it is up and connected, dumped after the
# orders, then zeroed again and dumped after an idle interval as long as the
# load took (heartbeats, timers), which is subtracted: what remains is the
# orders' cost. Printed per node: instructions per order, load and idle parts.
#
#   scripts/callgrind-replication.sh [orders=2000] [concurrency=1]
#   (FLASHGATE_BIN=path measures another build; KEEP=dir keeps the dumps there,
#   for callgrind_annotate)
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-2000}
concurrency=${2:-1}
bin=${FLASHGATE_BIN:-target/release/flashgate}
[ -z "${FLASHGATE_BIN:-}" ] && cargo build --release --quiet --bin flashgate
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq; }

work=$(mktemp -d)
cleanup() {
  for pidfile in "$work"/*.pid; do [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null; done
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$work"/*.cg.* "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
token=bench-token-0123456789
head -c 32 /dev/urandom | base64 >"$work/secret"

# start NAME ARGS...: starts a node under callgrind; prints its HTTP address.
start() {
  local name=$1; shift
  FLASHGATE_HTTP_WORKERS=2 valgrind --tool=callgrind --callgrind-out-file="$work/$name.cg" \
    "$bin" serve --data-dir "$work/$name" --http-addr 127.0.0.1:0 --quic-addr 127.0.0.1:0 \
    --admin-token "$token" --no-quic "$@" >"$work/$name.out" 2>"$work/$name.err" &
  echo $! >"$work/$name.pid"
  for _ in $(seq 1 1200); do
    addr=$(grep -o 'listening on http [0-9.:]*' "$work/$name.out" 2>/dev/null | awk '{print $4}' | head -1 || true)
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.1
  done
  echo "$name did not start: $(cat "$work/$name.err")" >&2; exit 1
}
stop() { [ -f "$work/$1.pid" ] && kill -TERM "$(cat "$work/$1.pid")" 2>/dev/null; wait "$(cat "$work/$1.pid")" 2>/dev/null || true; rm -f "$work/$1.pid"; }
repl_addr() { grep -o 'listening on replication [0-9.:]*' "$work/$1.out" | awk '{print $4}'; }
wait_connected() {
  for _ in $(seq 1 1200); do
    [ "$(curl -s -H "Authorization: Bearer $token" "http://$1/v1/cluster" | jq -r '.peer.connected and (.degraded | not)')" = true ] && return
    sleep 0.1
  done
  echo "standby never connected" >&2; exit 1
}
skus() {
  for i in $(seq 0 7); do
    curl -sf -o /dev/null -X PUT "http://$1/v1/skus/BENCH-$i" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -d '{"stock": 100000000}'
  done
}
# The newest dump's total instruction count.
dumped() {
  local pid=$1 before=$2
  for _ in $(seq 1 600); do
    [ "$(dumps)" -gt "$before" ] && break
    sleep 0.1
  done
  local file
  file=$(find "$work" -maxdepth 1 -name '*.cg.*' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
  awk '/^totals:/ {print $2} /^summary:/ {print $2}' "$file" | head -1
}
dumps() { find "$work" -maxdepth 1 -name '*.cg.*' | wc -l; }
# load ADDR: sends the orders, `concurrency` connections at a time; every
# answer must be a 201.
load() {
  python3 - "$1" "$orders" "$concurrency" "$token" <<'EOF'
import http.client, sys, threading
addr, orders, concurrency, token = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
host, port = addr.rsplit(":", 1)
failed = []
def run(worker):
    connection = http.client.HTTPConnection(host, int(port), timeout=600)
    for n in range(worker, orders, concurrency):
        body = '{"sku":"BENCH-%d","quantity":1,"customer_id":"c-%d"}' % (n % 8, n)
        connection.request("POST", "/v1/orders", body, {"Content-Type": "application/json", "Authorization": "Bearer " + token})
        answer = connection.getresponse()
        answer.read()
        if answer.status != 201:
            failed.append(answer.status)
threads = [threading.Thread(target=run, args=(worker,)) for worker in range(concurrency)]
for thread in threads: thread.start()
for thread in threads: thread.join()
if failed:
    sys.exit("%d orders not answered 201: %s" % (len(failed), sorted(set(failed))))
EOF
}
# measure NAMES... ADDR: zero the nodes, load ADDR, dump; zero, idle as long, dump;
# prints "name load_ir idle_ir seconds" per node.
measure() {
  local addr=${*: -1} names=("${@:1:$#-1}") started elapsed name
  for name in "${names[@]}"; do callgrind_control -z "$(cat "$work/$name.pid")" >/dev/null 2>&1; done
  started=$(date +%s%N)
  load "$addr"
  elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
  declare -A loaded
  for name in "${names[@]}"; do
    local before; before=$(dumps)
    callgrind_control -d "$(cat "$work/$name.pid")" >/dev/null 2>&1
    loaded[$name]=$(dumped "$name" "$before")
  done
  for name in "${names[@]}"; do callgrind_control -z "$(cat "$work/$name.pid")" >/dev/null 2>&1; done
  sleep "$(awk -v ms="$elapsed" 'BEGIN {print ms / 1000}')"
  for name in "${names[@]}"; do
    local before; before=$(dumps)
    callgrind_control -d "$(cat "$work/$name.pid")" >/dev/null 2>&1
    local idle; idle=$(dumped "$name" "$before")
    awk -v n="$name" -v l="${loaded[$name]}" -v i="$idle" -v o="$orders" -v ms="$elapsed" \
      'BEGIN {printf "%-22s %8.0f instructions/order  (load %d, idle %d over %.1f s)\n", n, (l - i) / o, l, i, ms / 1000}'
  done
}

echo "== instructions per order: $orders orders, $concurrency connection(s), $(basename "$bin") (load $(cut -d' ' -f1-3 /proc/loadavg))"
p=$(start standalone)
skus "$p"
measure standalone "$p"
stop standalone

p=$(start primary --replication-addr 127.0.0.1:0 --cluster-secret-file "$work/secret" --replication sync --standby-timeout 60s)
start standby --role standby --follow "$(repl_addr primary)" --replication-addr 127.0.0.1:0 \
  --cluster-secret-file "$work/secret" --replication sync >/dev/null
wait_connected "$p"
skus "$p"
measure primary standby "$p"
stop primary; stop standby
