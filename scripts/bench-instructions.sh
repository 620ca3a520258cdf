#!/usr/bin/env bash
# CPU instructions per HTTP order on the server, counted by callgrind: unlike
# orders/s on a shared 2-core machine, the count repeats run to run, so it
# shows each step's gain.
#
#   scripts/bench-instructions.sh [orders=20000] [connections=16]
#
# Method: `flashgate serve` (release build, 2 shards, no QUIC, fresh data dir)
# runs under `valgrind --tool=callgrind`; 8 SKUs are created and wrk sends a
# warm-up of 2,000 orders; then callgrind's counters are zeroed, wrk sends
# `orders` more (scripts/wrk-orders.lua with WRK_MAX_ANSWERS: each of wrk's 2
# threads stops after orders/2 answers), and the counters are dumped. The
# orders the server created in that window are read from its /metrics
# (flashgate_orders_total{outcome="created"}, before and after), so a request
# wrk abandoned at its stop is counted if the server served it. Prints the
# instructions per order for the whole process (every thread: HTTP workers,
# shards, log writer, timers).
#
# callgrind counts user-space instructions only: what the kernel does for a
# wake-up, a context switch or a socket call is not in that figure. So a
# second phase runs the same server natively and counts, with `perf stat -p`
# over the same kind of window (`orders` x 5 orders), the CPU time (task-clock),
# system calls and context switches per order: software counters that need no
# hardware counters and so work in a VM.
#
# Environment: FLASHGATE_BIN (default target/release/flashgate, built here
# when that default is used); CALLGRIND_OUT (keep the dump there);
# OUTCOME=sold_out counts sold-out answers instead of created orders: each
# SKU then has one unit, sold before the warm-up, and every order after it
# is refused (the fast path of docs/PERFORMANCE.md, "Sold-out answers").
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-20000}
connections=${2:-16}
skus=8
outcome=${OUTCOME:-created}
case $outcome in
  created) stock=1000000000 ;;
  sold_out) stock=1 ;;
  *) echo "OUTCOME must be created or sold_out" >&2; exit 2 ;;
esac
token=bench-token-0123456789
export WRK_TOKEN="$token" WRK_SKUS=$skus

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v perf >/dev/null || missing+=(linux-perf)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
bin=${FLASHGATE_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --bin flashgate
  bin=target/release/flashgate
fi

work=$(mktemp -d)
out=${CALLGRIND_OUT:-$work/callgrind.out}
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "${native:-}" ]; then kill "$native" 2>/dev/null || true; wait "$native" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Starts the server (under the command given, if any), waits for its address
# and creates the SKUs. Sets pid and addr.
start() { # $1: data dir name; the rest: a wrapper command, if any
  local data=$1; shift
  "$@" "$bin" serve --data-dir "$work/$data" --http-addr 127.0.0.1:0 --no-quic --shards 2 \
    --admin-token "$token" >"$work/$data.out" 2>"$work/$data.err" &
  pid=$!
  addr=
  for _ in $(seq 1 600); do
    addr=$(grep -o 'listening on http [0-9.:]*' "$work/$data.out" 2>/dev/null | awk '{print $4}' | head -1 || true)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "server did not start: $(tail -5 "$work/$data.err")" >&2; exit 1; }
  for i in $(seq 0 $((skus - 1))); do
    curl -sf -o /dev/null -X PUT "http://$addr/v1/skus/BENCH-$i" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -d "{\"stock\": $stock}"
    if [ "$outcome" = sold_out ]; then
      curl -sf -o /dev/null -X POST "http://$addr/v1/orders" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d "{\"sku\": \"BENCH-$i\", \"quantity\": 1, \"customer_id\": \"first\"}"
    fi
  done
}

created() {
  curl -sf -H "Authorization: Bearer $token" "http://$addr/metrics" |
    awk -v o="outcome=\"$outcome\"" '/^flashgate_orders_total\{/ && index($0, o) {sum += $2} END {printf "%d", sum}'
}
send() { # $1: orders
  local goal wrk_pid
  goal=$(($(created) + $1))
  # Each wrk thread stops sending after its share of answers; wrk itself
  # waits out its duration, so it is stopped once the server has served them.
  WRK_MAX_ANSWERS=$(($1 / 2)) wrk -t2 -c"$connections" -d600s -s scripts/wrk-orders.lua \
    "http://$addr" >"$work/wrk.out" &
  wrk_pid=$!
  until [ "$(created)" -ge "$goal" ]; do sleep 2; done
  sleep 1
  kill -INT "$wrk_pid"
  wait "$wrk_pid" || true
  grep -E '^status' "$work/wrk.out" | sed 's/^/  wrk /'
}

echo "== callgrind: flashgate serve under valgrind"
start callgrind valgrind --tool=callgrind --callgrind-out-file="$out"
echo "== warm-up: 2000 orders"
send 2000
before=$(created)
callgrind_control --zero "$pid" >/dev/null
echo "== measured: $orders orders over $connections connections"
send "$orders"
callgrind_control --dump=measured "$pid" >/dev/null
after=$(created)
count=$((after - before))
dump=$(grep -l "^desc: Trigger:.*measured" "$out"* | head -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "orders answered $outcome in the window: $count"
echo "instructions in the window:   $total"
awk -v t="$total" -v n="$count" 'BEGIN { printf "instructions per order:       %.0f\n", t / n }'
echo "(callgrind_annotate $dump lists the functions; see docs/PERFORMANCE.md)"
kill "$pid"; wait "$pid" 2>/dev/null || true
pid=

native_orders=$((orders * 5))
echo "== perf stat: flashgate serve natively, $native_orders orders over $connections connections"
start native
native=$pid
send 5000
before=$(created)
perf stat -e task-clock,context-switches,raw_syscalls:sys_enter -x, -o "$work/perf.csv" -p "$native" &
perf_pid=$!
sleep 0.5
send "$native_orders"
kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
count=$(($(created) - before))
echo "orders answered $outcome in the window: $count"
awk -F, -v n="$count" '
  $3 == "task-clock" { printf "CPU time per order:           %.1f us\n", $1 * 1000 / n }
  $3 == "context-switches" { printf "context switches per order:   %.2f\n", $1 / n }
  $3 == "raw_syscalls:sys_enter" { printf "system calls per order:       %.2f\n", $1 / n }' "$work/perf.csv"
