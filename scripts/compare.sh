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
#   (o) flashgate over HTTP, open loop at half of (a)'s rate, flashgate-loadtest
#       (latency from each order's intended send time) and, when oha is
#       installed (`cargo install oha --locked`), oha -q at the same rate with
#       its latency correction: the same server's p99 seen by two generators
#   (r) sync replication: wrk against a standalone node and against a sync
#       pair's primary (scripts/bench-replication.sh, part 1)
#   (s) restart with RESTART_ORDERS orders (default 1,000,000) to listening,
#       three cases (scripts/bench-restart.sh)
#   (k) the order core's reservations per second (criterion, cargo bench
#       --bench core -- core_reservations)
#
# Then the speed targets, each with its measured ratio or figure. ROWS limits
# the extra rows (default "o r s k"; ROWS= runs only a, w, b, c, d).
#
# Also prints how long each load tester run's audit took to read back every
# acknowledged order (batched reads), and the machine's load average before
# each run (wall-clock figures on a busy machine are lower and noisier).
#
# Prints one table: orders/s, p99, and each one's ratio to flashgate over HTTP,
# then the targets: the speed table's and the foundation's (flashgate HTTP >=
# 1.5x Redis-Lua, QUIC >= 4x Redis-Lua).
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
rows=${ROWS-o r s k}

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

# Starts a fresh `flashgate serve` named $1 (its data dir, output and pid
# under $work), waits until it listens, and sets fg_http to its HTTP address.
start_flashgate() {
  local name=$1
  target/release/flashgate serve --data-dir "$work/data-$name" --http-addr 127.0.0.1:0 \
    --quic-addr 127.0.0.1:0 --admin-token "$token" >"$work/fg-$name.out" 2>"$work/fg-$name.err" &
  echo $! >"$work/fg-$name.pid"
  fg_http=$(wait_for "$work/fg-$name.out" 'listening on http [0-9.:]*' | awk '{print $4}') ||
    { echo "flashgate did not start: $(cat "$work/fg-$name.err")" >&2; exit 1; }
}

# Results: name -> "orders_per_sec p99_ms" (or "n/a" on either).
declare -A rate p99 note audit

# (a) and (b): one fresh flashgate per transport, driven by flashgate-loadtest.
run_flashgate() {
  local transport=$1 name=$2
  if [ -z "$loadtest" ]; then
    rate[$name]=n/a; p99[$name]=n/a; note[$name]="flashgate-loadtest not built"; return
  fi
  start_flashgate "$transport"
  local http=$fg_http quic fingerprint batch=()
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
  start_flashgate wrk
  addr=$fg_http
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

# (o) Open loop at half of (a)'s closed-loop rate: p99 from the load tester,
# and from oha -q (latency-corrected) on a fresh server at the same rate.
run_open_loop() {
  local name=$1 rate_per_sec
  if [ -z "$loadtest" ] || [ "${rate[a]}" = n/a ]; then
    rate[$name]=n/a; p99[$name]=n/a; note[$name]="needs (a)"; return
  fi
  rate_per_sec=$(awk -v r="${rate[a]}" 'BEGIN { printf "%d", r / 2 }')
  start_flashgate open
  local http=$fg_http load
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "== ($name) flashgate over http: flashgate-loadtest, open loop, $rate_per_sec orders/s, ${duration}s (load average $load)"
  if "$loadtest" --transport http --http "http://$http" --admin-token "$token" --create-skus \
      --skus "$skus" --stock 100000000 --customers 1000000 --model open --rate "$rate_per_sec" \
      --outstanding-max "$buyers" --duration "$duration" --report-json "$work/open.json" \
      >"$work/lt-open.out" 2>&1; then
    rate[$name]=$(jq -r '.throughput_per_sec' "$work/open.json")
    p99[$name]=$(jq -r '.latency_us.overall.p99 / 1000' "$work/open.json")
    note[$name]="open loop at $rate_per_sec/s, p50 $(jq -r '.latency_us.overall.p50 / 1000' "$work/open.json") ms, $(jq -r '.totals.late' "$work/open.json") sent late, load $load"
  else
    tail -20 "$work/lt-open.out" >&2
    rate[$name]=n/a; p99[$name]=n/a; note[$name]="load test failed"
  fi
  tail -4 "$work/lt-open.out"
  stop fg-open
  rate[oha]=n/a; p99[oha]=n/a; note[oha]="oha not installed (cargo install oha --locked)"
  command -v oha >/dev/null || return 0
  start_flashgate oha
  http=$fg_http
  curl -sf -o /dev/null -X PUT "http://$http/v1/skus/OHA" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"stock": 100000000}'
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "== (oha) flashgate over http: oha -q $rate_per_sec --latency-correction, $buyers connections, ${duration}s (load average $load)"
  # One customer, no per-customer limit: every request places a new order.
  oha --no-tui --output-format json -q "$rate_per_sec" --latency-correction -c "$buyers" \
    -z "${duration}s" -m POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"sku": "OHA", "quantity": 1, "customer_id": "oha-buyer"}' "http://$http/v1/orders" \
    >"$work/oha.json" 2>"$work/oha.err" || true
  if jq -e '.summary' "$work/oha.json" >/dev/null 2>&1; then
    rate[oha]=$(jq -r '.statusCodeDistribution["201"] // 0 | . / '"$duration" "$work/oha.json")
    p99[oha]=$(jq -r '.latencyPercentiles.p99 * 1000' "$work/oha.json")
    note[oha]="oha -q $rate_per_sec, latency-corrected, p50 $(jq -r '.latencyPercentiles.p50 * 1000 | . * 100 | round / 100' "$work/oha.json") ms, statuses $(jq -c '.statusCodeDistribution' "$work/oha.json"), load $load"
  else
    tail -5 "$work/oha.err" >&2
    note[oha]="oha failed"
  fi
  stop fg-oha
}

# (r) Sync replication's cost: its own script, part 1, standalone and sync.
run_replication() {
  local name=$1
  echo "== ($name) sync replication: scripts/bench-replication.sh, part 1 (wrk, ${duration}s per mode)"
  SECTIONS=1 MODES="standalone sync" RUNS=${REPLICATION_RUNS:-1} scripts/bench-replication.sh "$duration" \
    | tee "$work/replication.out"
  rate[$name]=$(awk '/^median sync / {print $3}' "$work/replication.out")
  rate[r0]=$(awk '/^median standalone / {print $3}' "$work/replication.out")
  p99[$name]=n/a
  note[$name]="wrk, sync pair's primary; standalone ${rate[r0]:-n/a}/s"
  [ -n "${rate[$name]}" ] || rate[$name]=n/a
}

# (s) Restart with a million orders: its own script.
restart_ms=n/a
run_restart() {
  echo "== (s) restart: scripts/bench-restart.sh ${RESTART_ORDERS:-1000000} ${RESTART_RUNS:-3}"
  scripts/bench-restart.sh "${RESTART_ORDERS:-1000000}" "${RESTART_RUNS:-3}" | tee "$work/restart.out"
  # The slowest case's median is the figure for the target.
  restart_ms=$(sed -n 's/.*process start to listening, median of [0-9]*: \([0-9]*\) ms.*/\1/p' \
    "$work/restart.out" | sort -n | tail -1)
  [ -n "$restart_ms" ] || restart_ms=n/a
}

# (k) The order core: criterion's throughput, reservations per second.
core_rate=n/a
run_core() {
  echo "== (k) order core: cargo bench --bench core -- core_reservations"
  cargo bench --quiet --bench core -- core_reservations 2>&1 | tee "$work/core.out" | grep -E "time:|thrpt:" || true
  # The best case's median throughput (criterion prints [low median high]).
  core_rate=$(awk '/thrpt:/ { v = $(NF-3); u = $(NF-2); m = (u ~ /^M/) ? 1e6 : (u ~ /^K/) ? 1e3 : 1; print v * m }' \
    "$work/core.out" | sort -g | tail -1)
  [ -n "$core_rate" ] || core_rate=n/a
}

run_flashgate http "a"
run_flashgate_wrk "w"
run_flashgate quic "b"
run_redis "c"
run_echo "d"
[[ " $rows " == *" o "* ]] && run_open_loop "o"
[[ " $rows " == *" r "* ]] && run_replication "r"
[[ " $rows " == *" s "* ]] && run_restart
[[ " $rows " == *" k "* ]] && run_core

label() {
  case $1 in
    a) echo "(a) flashgate HTTP, durable" ;;
    b) echo "(b) flashgate QUIC, durable" ;;
    c) echo "(c) Redis 7 Lua, appendfsync always" ;;
    d) echo "(d) actix-web echo (HTTP ceiling)" ;;
    w) echo "(w) flashgate HTTP, durable, wrk" ;;
    o) echo "(o) flashgate HTTP, open loop, half rate" ;;
    oha) echo "(o') same, driven by oha -q" ;;
    r) echo "(r) flashgate HTTP, sync pair, wrk" ;;
  esac
}
ratio() { # $1 / $2, or n/a
  awk -v x="$1" -v y="$2" 'BEGIN { if (x == "n/a" || y == "n/a" || y == 0) print "n/a"; else printf "%.2f", x / y }'
}

echo
echo "== Baselines side by side (${duration}s each, one run, 127.0.0.1, $(nproc) cores)"
printf '%-38s %12s %10s %12s  %s\n' "run" "orders/s" "p99 ms" "x flashgate" "how"
names="a w b c d"
[[ " $rows " == *" o "* ]] && names="$names o oha"
[[ " $rows " == *" r "* ]] && names="$names r"
for name in $names; do
  printf '%-38s %12s %10s %12s  %s\n' "$(label $name)" \
    "$(awk -v r="${rate[$name]}" 'BEGIN { if (r == "n/a") print r; else printf "%.0f", r }')" \
    "$(awk -v p="${p99[$name]}" 'BEGIN { if (p == "n/a") print p; else printf "%.2f", p }')" \
    "$(ratio "${rate[$name]}" "${rate[a]}")" "${note[$name]}"
done
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "n/a" || r == "") print "not measured"; else if (r >= t) print "met"; else print "NOT met" }'; }
at_most() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "n/a" || r == "") print "not measured"; else if (r <= t) print "met"; else print "NOT met" }'; }
target_row() { printf '%-58s %10s  %-8s %s\n' "$1" "$2" "$3" "$4"; }
echo
echo "== Speed targets"
target_row "measure" "measured" "target" "verdict"
r=$(ratio "${rate[w]}" "${rate[d]}"); target_row "flashgate HTTP (wrk) / actix-web echo" "$r" ">= 0.8" "$(verdict "$r" 0.8)"
r=$(ratio "${rate[a]}" "${rate[c]}"); target_row "flashgate HTTP (load tester) / Redis-Lua always" "$r" ">= 1.0" "$(verdict "$r" 1.0)"
r=$(ratio "${rate[a]}" "${rate[w]}"); target_row "flashgate-loadtest / wrk, same server, HTTP" "$r" ">= 0.9" "$(verdict "$r" 0.9)"
r=$(ratio "${rate[b]}" "${rate[c]}"); target_row "flashgate QUIC (load tester) / Redis-Lua always" "$r" ">= 1.5" "$(verdict "$r" 1.5)"
r=$(ratio "${rate[r]:-n/a}" "${rate[r0]:-n/a}"); target_row "sync replication / standalone, HTTP (wrk)" "$r" ">= 0.8" "$(verdict "$r" 0.8)"
target_row "restart with ${RESTART_ORDERS:-1000000} orders to listening, slowest case (ms)" "$restart_ms" "<= 1500" "$(at_most "$restart_ms" 1500)"
r=$(awk -v c="$core_rate" 'BEGIN { if (c == "n/a") print c; else printf "%.2fM", c / 1e6 }')
target_row "order core reservations/s (criterion, best case)" "$r" ">= 5M" "$(verdict "$core_rate" 5000000)"
r=$(awk -v p="${p99[o]:-n/a}" 'BEGIN { if (p == "n/a") print p; else printf "%.2f", p }')
target_row "p99 ms at half the max rate, open loop, HTTP (load tester)" "$r" "<= 2" "$(at_most "${p99[o]:-n/a}" 2)"
r=$(awk -v p="${p99[oha]:-n/a}" 'BEGIN { if (p == "n/a") print p; else printf "%.2f", p }')
target_row "p99 ms at half the max rate, open loop, HTTP (oha -q)" "$r" "<= 2" "$(at_most "${p99[oha]:-n/a}" 2)"
r=$(ratio "${rate[a]}" "${rate[c]}"); target_row "foundation: flashgate HTTP / Redis-Lua always" "$r" ">= 1.5" "$(verdict "$r" 1.5)"
r=$(ratio "${rate[b]}" "${rate[c]}"); target_row "foundation: flashgate QUIC / Redis-Lua always" "$r" ">= 4" "$(verdict "$r" 4)"
echo
echo "audit read-back: (a) ${audit[a]:-n/a}; (b) ${audit[b]:-n/a}"
