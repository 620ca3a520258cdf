#!/usr/bin/env bash
# Baselines side by side, in one run on this machine, everything on 127.0.0.1:
#
#   (a) flashgate over HTTP  } flashgate-loadtest, closed loop, 64 buyers, every
#   (b) flashgate over QUIC  } acknowledgement durable (sled flush + fsync)
#   (c) Redis 7, appendonly yes + appendfsync always, the usual flash-sale Lua
#       reservation (check stock, decrement, record the order), EVALSHA driven by
#       redis-benchmark with 64 clients and distinct customers
#   (d) the actix-web echo endpoint (examples/echo.rs), wrk with 64 connections:
#       the HTTP stack's ceiling, nothing durable
#   (w) flashgate over HTTP driven by wrk (64 connections, scripts/wrk-orders.lua),
#       a fresh server started as for (a): (a) / (w) is what the load tester
#       costs, the rate it reaches as a share of wrk's on the same server
#
# Also prints how long each load tester run's audit took to read back every
# acknowledged order (batched reads), and the machine's load average before
# each run (wall-clock figures on a busy machine are lower and noisier).
#
# Prints one table: orders/s, p99, and each one's ratio to flashgate over HTTP,
# then the targets (flashgate HTTP >= 1.5x Redis-Lua, QUIC >= 4x Redis-Lua).
#
#   scripts/compare.sh [duration_secs=15] [buyers=64]
#
# Environment: QUIC_BATCH=N passes --batch N to the QUIC run (default: the load
# tester's own default). Each run starts its own fresh server and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15}
buyers=${2:-64}
skus=8
token=bench-token-0123456789
# Orders carry the admin token (it may do everything; the check costs what a
# service token's does): wrk-orders.lua and quic_bench read these.
export WRK_TOKEN="$token" FLASHGATE_CREDENTIAL="$token"
redis_stock=1000000000

# Tools from Debian packages, installed only if missing.
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

cargo build --release --quiet --bin flashgate --example echo
loadtest=target/release/flashgate-loadtest
if ! cargo build --release --quiet -p flashgate-loadtest; then
  echo "WARNING: flashgate-loadtest does not build; rows (a) and (b) will be n/a" >&2
  loadtest=
fi

work=$(mktemp -d)
cleanup() {
  for pidfile in "$work"/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    # Wait, bounded, so the data dirs are not removed under a live process.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Stops the process recorded in $work/$1.pid, waiting (bounded) for it to exit.
stop() {
  local pidfile=$work/$1.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# Waits (at most 10 s) until a regex matches the file; prints the match.
wait_for() {
  local file=$1 pattern=$2 found
  for _ in $(seq 1 100); do
    found=$(grep -o "$pattern" "$file" 2>/dev/null | head -1 || true)
    [ -n "$found" ] && { echo "$found"; return 0; }
    sleep 0.1
  done
  return 1
}

# A free TCP port on 127.0.0.1 (for Redis, which cannot report port 0).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Results: name -> "orders_per_sec p99_ms" (or "n/a" on either).
declare -A rate p99 note audit

# (a) and (b): one fresh flashgate per transport, driven by flashgate-loadtest.
run_flashgate() {
  local transport=$1 name=$2
  if [ -z "$loadtest" ]; then
    rate[$name]=n/a; p99[$name]=n/a; note[$name]="flashgate-loadtest not built"; return
  fi
  target/release/flashgate serve --data-dir "$work/data-$transport" --http-addr 127.0.0.1:0 \
    --quic-addr 127.0.0.1:0 --admin-token "$token" >"$work/fg-$transport.out" 2>"$work/fg-$transport.err" &
  echo $! >"$work/fg-$transport.pid"
  if ! wait_for "$work/fg-$transport.out" 'listening on http [0-9.:]*' >/dev/null; then
    echo "flashgate did not start: $(cat "$work/fg-$transport.err")" >&2; exit 1
  fi
  local http quic fingerprint batch=()
  http=$(grep -o 'listening on http [0-9.:]*' "$work/fg-$transport.out" | awk '{print $4}' | head -1)
  quic=$(grep -o 'listening on quic [0-9.:]*' "$work/fg-$transport.out" | awk '{print $4}' | head -1)
  fingerprint=$(grep -o 'sha256 [0-9a-f]*' "$work/fg-$transport.out" | awk '{print $2}' | head -1)
  if [ "$transport" = quic ] && [ -n "${QUIC_BATCH:-}" ]; then batch=(--batch "$QUIC_BATCH"); fi
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "== ($name) flashgate over $transport: flashgate-loadtest, closed loop, $buyers buyers, ${duration}s (load average $load)"
  if "$loadtest" --transport "$transport" --http "http://$http" --quic "$quic" \
      --fingerprint "$fingerprint" --admin-token "$token" --create-skus --skus "$skus" \
      --stock 100000000 --customers 1000000 --model closed --buyers "$buyers" \
      --duration "$duration" --report-json "$work/$transport.json" "${batch[@]}" \
      >"$work/lt-$transport.out" 2>&1; then
    rate[$name]=$(jq -r '.throughput_per_sec' "$work/$transport.json")
    p99[$name]=$(jq -r '.latency_us.overall.p99 / 1000' "$work/$transport.json")
    note[$name]="closed loop, $buyers buyers${batch:+, batch ${QUIC_BATCH:-}}, load $load"
    audit[$name]=$(jq -r '"\(.audit.orders_checked) orders read back in \(.read_back_secs * 100 | round / 100) s"' "$work/$transport.json")
  else
    tail -20 "$work/lt-$transport.out" >&2
    echo "WARNING: flashgate-loadtest over $transport failed (see above)" >&2
    rate[$name]=n/a; p99[$name]=n/a; note[$name]="load test failed"
  fi
  tail -5 "$work/lt-$transport.out"
  stop "fg-$transport"
}

# (c) Redis 7, every write fsynced before the reply, the Lua reservation.
run_redis() {
  local name=$1 port sha sample_rate requests
  port=$(free_port)
  mkdir -p "$work/redis"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$work/redis" --appendonly yes \
    --appendfsync always --save '' --daemonize no --protected-mode yes --logfile "$work/redis.log" &
  echo $! >"$work/redis.pid"
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$port" ping >/dev/null || { echo "redis did not start: $(cat "$work/redis.log")" >&2; exit 1; }
  redis-cli -p "$port" set stock:BENCH "$redis_stock" >/dev/null
  # KEYS[1]: the SKU's stock; KEYS[2]: the customer's order record.
  # ARGV[1]: the SKU; ARGV[2]: the quantity.
  sha=$(redis-cli -p "$port" script load "
    local qty = tonumber(ARGV[2])
    local s = tonumber(redis.call('GET', KEYS[1]))
    if s == nil or s < qty then return 0 end
    redis.call('DECRBY', KEYS[1], qty)
    redis.call('HSET', KEYS[2], 'sku', ARGV[1], 'quantity', qty)
    return 1")
  local command=(EVALSHA "$sha" 2 stock:BENCH order:__rand_int__ BENCH 1)
  # redis-benchmark counts requests, not seconds: a short run measures the
  # rate, the real one is sized to last about $duration seconds.
  sample_rate=$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$buyers" -n 20000 -r 100000000 --csv \
    "${command[@]}" | awk -F'"' 'NR == 2 {print $4}')
  requests=$(awk -v r="$sample_rate" -v d="$duration" 'BEGIN { printf "%d", r * d }')
  echo "== ($name) Redis $(redis-server --version | grep -o 'v=[0-9.]*'), appendfsync always, Lua reservation: redis-benchmark -c $buyers -n $requests (about ${duration}s)"
  redis-benchmark -h 127.0.0.1 -p "$port" -c "$buyers" -n "$requests" -r 100000000 --csv \
    "${command[@]}" | tee "$work/redis.csv"
  rate[$name]=$(awk -F'"' 'NR == 2 {print $4}' "$work/redis.csv")
  p99[$name]=$(awk -F'"' 'NR == 2 {print $14}' "$work/redis.csv")
  # Every reservation succeeded: the stock went down by exactly the requests sent.
  local left sold
  left=$(redis-cli -p "$port" get stock:BENCH)
  sold=$((redis_stock - left))
  echo "redis: $sold units sold over $((20000 + requests)) requests, $(redis-cli -p "$port" dbsize) keys, aof $(du -sh "$work/redis" | cut -f1)"
  note[$name]="$buyers clients, EVALSHA, no pipelining"
  stop redis
}

# (d) The echo endpoint, wrk: the HTTP stack's ceiling.
run_echo() {
  local name=$1 addr
  target/release/examples/echo 127.0.0.1:0 >"$work/echo.out" 2>"$work/echo.err" &
  echo $! >"$work/echo.pid"
  addr=$(wait_for "$work/echo.out" 'listening on http [0-9.:]*' | awk '{print $4}') ||
    { echo "echo did not start: $(cat "$work/echo.err")" >&2; exit 1; }
  echo "== ($name) echo endpoint: wrk -t2 -c$buyers -d${duration}s"
  WRK_SKUS=$skus wrk -t2 -c"$buyers" -d"${duration}s" --latency -s scripts/wrk-orders.lua \
    "http://$addr" | tee "$work/echo.wrk"
  rate[$name]=$(awk '/^Requests\/sec/ {print $2}' "$work/echo.wrk")
  p99[$name]=$(awk '/^latency_us p50/ {print $5 / 1000}' "$work/echo.wrk")
  note[$name]="wrk, $buyers connections, not durable"
  stop echo
}

# (w) flashgate over HTTP under wrk: a fresh server started as for (a), its
# SKUs created as wrk-orders.lua names them.
run_flashgate_wrk() {
  local name=$1 addr load
  target/release/flashgate serve --data-dir "$work/data-wrk" --http-addr 127.0.0.1:0 \
    --quic-addr 127.0.0.1:0 --admin-token "$token" >"$work/fg-wrk.out" 2>"$work/fg-wrk.err" &
  echo $! >"$work/fg-wrk.pid"
  addr=$(wait_for "$work/fg-wrk.out" 'listening on http [0-9.:]*' | awk '{print $4}') ||
    { echo "flashgate did not start: $(cat "$work/fg-wrk.err")" >&2; exit 1; }
  for i in $(seq 0 $((skus - 1))); do
    curl -sf -o /dev/null -X PUT "http://$addr/v1/skus/BENCH-$i" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -d '{"stock": 100000000}'
  done
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "== ($name) flashgate over http: wrk -t2 -c$buyers -d${duration}s (load average $load)"
  WRK_SKUS=$skus wrk -t2 -c"$buyers" -d"${duration}s" --latency -s scripts/wrk-orders.lua \
    "http://$addr" | tee "$work/fg.wrk"
  rate[$name]=$(awk '/^Requests\/sec/ {print $2}' "$work/fg.wrk")
  p99[$name]=$(awk '/^latency_us p50/ {print $5 / 1000}' "$work/fg.wrk")
  note[$name]="wrk, $buyers connections, durable, load $load"
  if grep -q "Non-2xx" "$work/fg.wrk"; then note[$name]="${note[$name]}; NON-2xx ANSWERS"; fi
  stop fg-wrk
}

run_flashgate http "a"
run_flashgate_wrk "w"
run_flashgate quic "b"
run_redis "c"
run_echo "d"

label() {
  case $1 in
    a) echo "(a) flashgate HTTP, durable" ;;
    b) echo "(b) flashgate QUIC, durable" ;;
    c) echo "(c) Redis 7 Lua, appendfsync always" ;;
    d) echo "(d) actix-web echo (HTTP ceiling)" ;;
    w) echo "(w) flashgate HTTP, durable, wrk" ;;
  esac
}
ratio() { # $1 / $2, or n/a
  awk -v x="$1" -v y="$2" 'BEGIN { if (x == "n/a" || y == "n/a" || y == 0) print "n/a"; else printf "%.2f", x / y }'
}

echo
echo "== Baselines side by side (${duration}s each, one run, 127.0.0.1, $(nproc) cores)"
printf '%-38s %12s %10s %12s  %s\n' "run" "orders/s" "p99 ms" "x flashgate" "how"
for name in a w b c d; do
  printf '%-38s %12s %10s %12s  %s\n' "$(label $name)" \
    "$(awk -v r="${rate[$name]}" 'BEGIN { if (r == "n/a") print r; else printf "%.0f", r }')" \
    "$(awk -v p="${p99[$name]}" 'BEGIN { if (p == "n/a") print p; else printf "%.2f", p }')" \
    "$(ratio "${rate[$name]}" "${rate[a]}")" "${note[$name]}"
done
http_vs_redis=$(ratio "${rate[a]}" "${rate[c]}")
quic_vs_redis=$(ratio "${rate[b]}" "${rate[c]}")
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "n/a") print "not measured"; else if (r >= t) print "met"; else print "NOT met" }'; }
echo
echo "targets: flashgate HTTP >= 1.5x Redis-Lua: $http_vs_redis ($(verdict "$http_vs_redis" 1.5));" \
  "flashgate QUIC >= 4x Redis-Lua: $quic_vs_redis ($(verdict "$quic_vs_redis" 4))"
loadtest_vs_wrk=$(ratio "${rate[a]}" "${rate[w]}")
echo "flashgate-loadtest / wrk, same server, HTTP, $buyers buyers: $loadtest_vs_wrk (target >= 0.9: $(verdict "$loadtest_vs_wrk" 0.9))"
echo "audit read-back: (a) ${audit[a]:-n/a}; (b) ${audit[b]:-n/a}"
