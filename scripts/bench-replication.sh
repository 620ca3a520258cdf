#!/usr/bin/env bash
# The cost and speed of replication, on one machine (both nodes share its cores):
#  1. throughput: wrk POSTing orders against a standalone node, a sync pair and
#     an async pair (same settings otherwise);
#  2. catch-up: an empty standby joining a primary loaded for N seconds by
#     quic_bench (records/s until its durable LSN reaches the primary's), once
#     from the log alone and once from a checkpoint plus log;
#  3. failover: SIGKILL the primary of a sync pair under load, then time from
#     the promote request to the first 201 on the new primary, R times.
#
#   scripts/bench-replication.sh [duration_secs=15] [catch_up_load_secs=6] [failovers=5]
#   (SECTIONS=13 runs only parts 1 and 3; MODES="standalone sync" limits part 1;
#   RUNS=5 repeats part 1 and prints each mode's median and the sync ratio;
#   FLASHGATE_BIN=path runs another build of the server)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15}
catch_up_secs=${2:-6}
failovers=${3:-5}
connections=64
sections=${SECTIONS:-123}
modes=${MODES:-standalone sync async}
runs=${RUNS:-1}
bin=${FLASHGATE_BIN:-target/release/flashgate}
export WRK_SKUS=8

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq; }
[ -z "${FLASHGATE_BIN:-}" ] && cargo build --release --quiet --bin flashgate
[[ $sections == *2* ]] && cargo build --release --quiet -p flashgate-client --example quic_bench

work=$(mktemp -d)
cleanup() { for pidfile in "$work"/*.pid; do [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
token=bench-token-0123456789
# Orders carry the admin token (it may do everything; the check costs what a
# service token's does): wrk-orders.lua and quic_bench read these.
export WRK_TOKEN="$token" FLASHGATE_CREDENTIAL="$token"
head -c 32 /dev/urandom | base64 >"$work/secret"

# start NAME ARGS...: starts a node in the background; prints its HTTP address.
start() {
  local name=$1; shift
  "$bin" serve --data-dir "$work/$name" --http-addr 127.0.0.1:0 --quic-addr 127.0.0.1:0 \
    --admin-token "$token" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  echo $! >"$work/$name.pid"
  for _ in $(seq 1 200); do
    addr=$(grep -o 'listening on http [0-9.:]*' "$work/$name.out" 2>/dev/null | awk '{print $4}' | head -1 || true)
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.05
  done
  echo "$name did not start: $(cat "$work/$name.err")" >&2; exit 1
}
stop() { [ -f "$work/$1.pid" ] && kill -9 "$(cat "$work/$1.pid")" 2>/dev/null; rm -f "$work/$1.pid"; }
repl_addr() { grep -o 'listening on replication [0-9.:]*' "$work/$1.out" | awk '{print $4}'; }
skus() {
  for i in $(seq 0 $((WRK_SKUS - 1))); do
    curl -sf -o /dev/null -X PUT "http://$1/v1/skus/BENCH-$i" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -d '{"stock": 100000000}'
  done
}
wait_connected() {
  # Up to 60 s: on a loaded machine a standby takes a while to start.
  for _ in $(seq 1 1200); do
    [ "$(curl -s -H "Authorization: Bearer $token" "http://$1/v1/cluster" | jq -r '.peer.connected and (.degraded | not)')" = true ] && return
    sleep 0.05
  done
  echo "standby never connected" >&2; exit 1
}
rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
now_ms() { date +%s%3N; }

if [[ $sections == *1* ]]; then
echo "== 1. throughput (wrk -t2 -c$connections -d${duration}s, $runs run(s) of each mode; load before: $(cut -d' ' -f1-3 /proc/loadavg))"
for run in $(seq 1 "$runs"); do
for mode in $modes; do
  rm -rf "$work/p" "$work/s"
  if [ "$mode" = standalone ]; then
    p=$(start p)
  else
    p=$(start p --replication-addr 127.0.0.1:0 --cluster-secret-file "$work/secret" --replication "$mode")
    s=$(start s --role standby --follow "$(repl_addr p)" --replication-addr 127.0.0.1:0 \
      --cluster-secret-file "$work/secret" --replication "$mode")
    wait_connected "$p"
  fi
  skus "$p"
  wrk -t2 -c$connections -d"${duration}s" --latency -s scripts/wrk-orders.lua "http://$p" >"$work/$mode.wrk"
  grep -q "Non-2xx" "$work/$mode.wrk" && echo "WARNING: non-2xx answers in $mode"
  latency=$(awk '/ 99%/ {print $2}' "$work/$mode.wrk")
  if [ "$mode" != standalone ]; then
    lag=$(curl -s -H "Authorization: Bearer $token" "http://$p/v1/cluster" | jq -c '{lag_records, acked_lsn, durable_lsn}')
  else
    lag=""
  fi
  rate=$(rps "$work/$mode.wrk")
  echo "$rate" >>"$work/$mode.rates"
  printf 'run %d %-10s %8.0f orders/s  p99 %s  %s  (load %s)\n' "$run" "$mode" "$rate" "$latency" "$lag" "$(cut -d' ' -f1 /proc/loadavg)"
  stop p; stop s
done
done
median() { sort -n "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for mode in $modes; do printf 'median %-10s %8.0f orders/s\n' "$mode" "$(median "$work/$mode.rates")"; done
if [ -f "$work/standalone.rates" ] && [ -f "$work/sync.rates" ]; then
  # Per run, then the median of the ratios: each pair ran back to back under
  # about the same load.
  paste "$work/sync.rates" "$work/standalone.rates" | awk '{print $1 / $2}' >"$work/ratio.rates"
  printf 'sync / standalone: per run %s; median %.2f (load after: %s)\n' \
    "$(tr '\n' ' ' <"$work/ratio.rates" | awk '{for (i = 1; i <= NF; i++) printf "%.2f ", $i}')" \
    "$(median "$work/ratio.rates")" "$(cut -d' ' -f1-3 /proc/loadavg)"
fi
fi

if [[ $sections == *2* ]]; then
echo "== 2. catch-up of an empty standby (primary loaded for ${catch_up_secs}s)"
rm -rf "$work/p" "$work/s"
primary_flags=(--replication-addr 127.0.0.1:0 --cluster-secret-file "$work/secret" --standby-loss degrade --standby-timeout 100ms)
export FLASHGATE_CHECKPOINT_INTERVAL_SECS=0
p=$(start p "${primary_flags[@]}")
skus "$p"
quic=$(grep -o 'listening on quic [0-9.:]*' "$work/p.out" | awk '{print $4}')
fingerprint=$(grep -o 'sha256 [0-9a-f]*' "$work/p.out" | awk '{print $2}')
target/release/examples/quic_bench --addr "$quic" --fingerprint "$fingerprint" --secs "$catch_up_secs" \
  | tee "$work/load.out"
primary_lsn=$(curl -s -H "Authorization: Bearer $token" "http://$p/v1/cluster" | jq .durable_lsn)
for checkpoint in without with; do
  rm -rf "$work/s"
  if [ "$checkpoint" = with ]; then
    # A graceful stop writes a checkpoint and trims the log it covers: the
    # standby must start from the checkpoint.
    kill -TERM "$(cat "$work/p.pid")"; while kill -0 "$(cat "$work/p.pid")" 2>/dev/null; do sleep 0.05; done
    rm -f "$work/p.pid"
    p=$(start p "${primary_flags[@]}")
  fi
  started=$(now_ms)
  s=$(start s --role standby --follow "$(repl_addr p)" --cluster-secret-file "$work/secret")
  until [ "$(curl -s -H "Authorization: Bearer $token" "http://$s/v1/cluster" | jq .durable_lsn)" = "$primary_lsn" ]; do sleep 0.02; done
  elapsed=$(( $(now_ms) - started ))
  awk -v n="$primary_lsn" -v ms="$elapsed" -v c="$checkpoint" \
    'BEGIN { printf "%s checkpoint: %d records in %d ms (process start included): %.0f records/s\n", c, n, ms, n / (ms / 1000) }'
  stop s
done
stop p
unset FLASHGATE_CHECKPOINT_INTERVAL_SECS
fi

[[ $sections == *3* ]] && echo "== 3. failover: promote request -> first 201 on the new primary ($failovers runs)"
[[ $sections == *3* ]] && for run in $(seq 1 "$failovers"); do
  rm -rf "$work/p" "$work/s"
  p=$(start p --replication-addr 127.0.0.1:0 --cluster-secret-file "$work/secret")
  s=$(start s --role standby --follow "$(repl_addr p)" --replication-addr 127.0.0.1:0 --cluster-secret-file "$work/secret")
  wait_connected "$p"
  skus "$p"
  wrk -t2 -c$connections -d3s -s scripts/wrk-orders.lua "http://$p" >/dev/null &
  wrk_pid=$!
  sleep 1.5
  stop p
  started=$(now_ms)
  promote_ms=$(curl -sf -o "$work/promote.json" -w '%{time_total}' -X POST "http://$s/v1/admin/promote" \
    -H "Authorization: Bearer $token" | awk '{printf "%d", $1 * 1000}')
  attempts=0
  until [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$s/v1/orders" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d "{\"sku\":\"BENCH-0\",\"quantity\":1,\"customer_id\":\"probe-$run\"}")" = 201 ]; do
    attempts=$((attempts + 1))
  done
  elapsed=$(( $(now_ms) - started ))
  wait "$wrk_pid" || true
  echo "run $run: $elapsed ms (promote request $promote_ms ms, of which the node's promotion $(jq .elapsed_ms "$work/promote.json") ms; $attempts refused probes; epoch $(jq .epoch "$work/promote.json"))"
  stop s
done
# The sections skipped above leave a false test as the last status.
exit 0
