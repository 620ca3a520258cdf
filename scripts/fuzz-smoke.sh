#!/usr/bin/env bash
# Builds every fuzz target (fuzz/, cargo-fuzz) and runs each for a bounded
# time on its committed corpus: a smoke run for CI, not a search. Any crash,
# failed assertion, leak, out-of-memory or timeout fails the script, leaving
# the input under fuzz/artifacts/<target>/.
#
#   FUZZ_SMOKE_SECONDS   seconds per target (default 15)
#
# Needs cargo-fuzz (pinned below) and libFuzzer's sanitizer flags, which are
# nightly features: RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# The long runs and their figures are in docs/RELIABILITY.md, "Fuzzing".
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SMOKE_SECONDS:-15}
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/fuzz/target"

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# The fuzz workspace's lock file must be current: fail rather than resolve anew.
cargo fetch --locked --manifest-path fuzz/Cargo.toml

start=$(date +%s)
cargo fuzz build
echo "fuzz-smoke: built every target in $(($(date +%s) - start)) s"

targets=$(cargo fuzz list)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
passed=0
for target in $targets; do
  # New inputs go to a scratch dir: the committed corpus stays as it is.
  mkdir -p "$scratch/$target" "fuzz/corpus/$target"
  echo "fuzz-smoke: $target for ${seconds} s"
  cargo fuzz run "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    2>"$scratch/$target.log" || {
    tail -n 60 "$scratch/$target.log"
    echo "fuzz-smoke: $target FAILED (input under fuzz/artifacts/$target/)"
    exit 1
  }
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$scratch/$target.log" | tr '\n' ' '
  echo
  passed=$((passed + 1))
done
echo "fuzz-smoke: $passed targets ran $((seconds)) s each without a failure, in $(($(date +%s) - start)) s in all"
