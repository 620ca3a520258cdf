#!/usr/bin/env bash
# Online backup of a node holding ORDERS orders (default 1,000,000), under load:
# 1. generate the data dir with actors' recovery example (ORDERS orders, the
#    last 100,000 in the log after a checkpoint; 2 shards, 8 SKUs);
# 2. start `flashgate serve` on it and load it with wrk (orders, 2 threads,
#    64 connections) for SECS seconds (default 40), sampling the node's
#    `flashgate_orders_total{outcome="created"}` every 0.5 s;
# 3. after a third of the run, take `flashgate backup` of it;
# 4. print the orders/s before the backup, while the node sent it, and while
#    the command checked it (the check runs on this machine and competes for
#    its cores), wrk's latency, the node's longest shard pause, the backup's
#    time and size; then time `flashgate backup verify` and `flashgate
#    restore` of it, and the restored node's start.
#
#   scripts/bench-backup.sh [orders=1000000] [secs=40]
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-1000000}
secs=${2:-40}
bin=target/release/flashgate
gen=target/release/examples/recovery
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
if [ -z "${NO_BUILD:-}" ]; then # NO_BUILD=1: use the binaries as built
  cargo build --release --quiet --bin flashgate
  cargo build --release --quiet -p flashgate-actors --example recovery
fi

work=$(mktemp -d)
trap '[ -f "$work/pid" ] && kill -9 "$(cat "$work/pid")" 2>/dev/null || true; kill "$(cat "$work/sampler" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT
token=bench-token-0123456789
export WRK_TOKEN="$token"
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

echo "== generating a data dir of $orders orders"
"$gen" generate "$work/data" "$orders" 100000 >/dev/null
du -sh "$work/data"

start() { # start DATA_DIR
  : >"$work/out"; : >"$work/err"
  FLASHGATE_CHECKPOINT_INTERVAL_SECS=0 "$bin" serve --data-dir "$1" \
    --http-addr 127.0.0.1:0 --admin-token "$token" >"$work/out" 2>"$work/err" &
  echo $! >"$work/pid"
  for _ in $(seq 1 120000); do
    addr=$(grep -o 'listening on http [0-9.:]*' "$work/out" | awk '{print $4}' | head -1 || true)
    [ -n "$addr" ] && return
    sleep 0.005
  done
  echo "flashgate did not start: $(tail -5 "$work/err")" >&2; exit 1
}
started=$(now_ms); start "$work/data"
echo "== node listening after $(( $(now_ms) - started )) ms at $addr"

( while true; do
    count=$(curl -sf -H "Authorization: Bearer $token" "http://$addr/metrics" |
      awk -F' ' '/^flashgate_orders_total\{outcome="created"\}/ {print $2}')
    echo "$(now_ms) ${count:-0}"
    sleep 0.5
  done >"$work/samples" ) &
echo $! >"$work/sampler"

WRK_SKUS=8 wrk -t2 -c64 -d"${secs}s" --latency -s scripts/wrk-orders.lua "http://$addr" >"$work/wrk" &
wrk_pid=$!
sleep $(( secs / 3 ))
backup_start=$(now_ms)
"$bin" backup --node "http://$addr" --token "$token" --out "$work/backup" 2>&1 |
  while IFS= read -r line; do echo "$(now_ms) $line"; done >"$work/backup.log"
backup_end=$(now_ms)
wait "$wrk_pid"
kill "$(cat "$work/sampler")"; rm -f "$work/sampler"
sent=$(awk '/checking the backup/ {print $1; exit}' "$work/backup.log")

rate() { # rate FROM_MS TO_MS: created orders per second between the samples nearest them
  awk -v from="$1" -v to="$2" '
    $1 >= from && first == "" { first = $1; c0 = $2 }
    $1 <= to { last = $1; c1 = $2 }
    END { if (last > first) printf "%.0f", (c1 - c0) * 1000 / (last - first); else print "n/a" }' "$work/samples"
}
first_sample=$(head -1 "$work/samples" | cut -d' ' -f1)
echo "== orders/s before the backup:         $(rate "$first_sample" "$backup_start")"
echo "== orders/s while the node sent it:    $(rate "$backup_start" "$sent") ($(( sent - backup_start )) ms)"
echo "== orders/s while the command checked: $(rate "$sent" "$backup_end") ($(( backup_end - sent )) ms)"
echo "== wrk over the whole run:"
grep -E 'Requests/sec|Latency|99%|status' "$work/wrk" || true
echo "== node's backup lines:"
grep -E 'backup (snapshot taken|sent)' "$work/err" | sed 's/\x1b\[[0-9;]*m//g'
echo "== backup: $(( backup_end - backup_start )) ms, $(du -sh "$work/backup" | cut -f1)"
ls -l "$work/backup"
cat "$work/backup.log" | tail -3
kill -9 "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; rm -f "$work/pid"

t=$(now_ms); "$bin" backup verify "$work/backup" >/dev/null 2>&1
echo "== verify: $(( $(now_ms) - t )) ms"
t=$(now_ms); "$bin" restore --from "$work/backup" --data-dir "$work/restored" 2>/dev/null
echo "== restore: $(( $(now_ms) - t )) ms"
t=$(now_ms); start "$work/restored"
echo "== restored node listening after $(( $(now_ms) - t )) ms"
grep 'recovered data dir' "$work/err" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'orders=.*' || true
echo "(load average $(cut -d' ' -f1-3 /proc/loadavg))"
