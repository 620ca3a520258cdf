#!/usr/bin/env bash
# The order core's cost per reservation, for docs/PERFORMANCE.md:
# 1. instructions per reservation, counted by callgrind over the measured loop
#    of `examples/core_instructions` (the load of `cargo bench --bench core`),
#    for each case: fresh shard / warm shard, 1 SKU / 64 SKUs. The count
#    repeats run to run whatever else the machine does;
# 2. unless COUNT_ONLY=1, the criterion figures of `cargo bench --bench core
#    -- core_reservations` (wall clock: take them on a quiet machine), with the
#    load average before and after.
#
#   scripts/count-core.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
cargo build --release --quiet --example core_instructions
binary=${CARGO_TARGET_DIR:-target}/release/examples/core_instructions
orders=10000

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "instructions per reservation (callgrind, ${orders} orders per case):"
for shard in fresh warm; do
  for skus in 1 64; do
    valgrind --tool=callgrind --callgrind-out-file="$work/out" \
      --toggle-collect='*place_orders*' "$binary" "$shard" "$skus" >/dev/null 2>"$work/err"
    total=$(grep -o 'Collected : [0-9]*' "$work/err" | awk '{print $3}')
    printf '  %-5s shard, %2d skus: %6d\n' "$shard" "$skus" $((total / orders))
  done
done

[ "${COUNT_ONLY:-0}" = 1 ] && exit 0
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --bench core -- core_reservations 2>&1 | grep -E '^core_reservations|time:|thrpt:' | grep -v '%'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
