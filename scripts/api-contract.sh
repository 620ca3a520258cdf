#!/usr/bin/env bash
# The published contract, checked against a real node: starts `flashgate serve`
# (standalone, HTTP only, a fresh data dir), creates two SKUs, and runs
# schemathesis against its /openapi.json with a bounded number of examples per
# operation. Fails on any server error other than a documented 503 and on any
# answer that does not conform to the document (status, content type, headers,
# body schema), on a 405 without `Allow`, and on schema-invalid requests that
# are accepted.
#
#   scripts/api-contract.sh [--token TOKEN] [--max-examples N] [--binary PATH]
#                           [--no-auth-checks] [-- SCHEMATHESIS ARGS]
#
# --token: sent as `Authorization: Bearer TOKEN` on every request and given to
#   the node as its admin token (a token that may call everything); default a
#   random one. Env FLASHGATE_CONTRACT_TOKEN works too.
# --max-examples: test cases per operation and phase (default 100; env
#   FLASHGATE_CONTRACT_EXAMPLES).
# --binary: the flashgate binary (default target/debug/flashgate, the one
#   `cargo test` built, else target/release/flashgate).
# --no-auth-checks: skip `missing_required_header`, which expects every
#   operation that requires the bearer credential to refuse a request without
#   one (401). For a build whose routes do not check credentials yet.
# -- ARGS: passed on to `schemathesis run` (e.g. `-- --include-path-regex orders`).
#
# 503s it may legitimately see (documented in the contract, allowed by
# scripts/schemathesis.toml only where the operation documents them):
# `overloaded` (a shard's queue is full under the generated load, with
# Retry-After), `capacity_reached` (a shard holds its maximum of orders), and
# readyz `not_ready` while the node starts or stops. A standalone node never
# answers `not_primary` or `standby_unavailable`.
#
# Needs python3 with the packages pinned in scripts/api-contract.txt
# (`pip install -r scripts/api-contract.txt`).
set -euo pipefail
cd "$(dirname "$0")/.."

token=${FLASHGATE_CONTRACT_TOKEN:-}
examples=${FLASHGATE_CONTRACT_EXAMPLES:-100}
binary=""
extra=()
auth_checks=",missing_required_header"
while [ $# -gt 0 ]; do
  case $1 in
    --token) token=$2; shift 2 ;;
    --max-examples) examples=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --no-auth-checks) auth_checks=""; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  for candidate in "${CARGO_TARGET_DIR:-target}/debug/flashgate" "${CARGO_TARGET_DIR:-target}/release/flashgate"; do
    [ -x "$candidate" ] && { binary=$candidate; break; }
  done
fi
[ -n "$binary" ] && [ -x "$binary" ] || { echo "no flashgate binary: build it (cargo build --bin flashgate) or pass --binary" >&2; exit 2; }
# On PATH, or beside the python3 whose pip installed it.
schemathesis=$(command -v schemathesis || true)
if [ -z "$schemathesis" ]; then
  scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
  [ -n "$scripts_dir" ] && [ -x "$scripts_dir/schemathesis" ] && schemathesis=$scripts_dir/schemathesis
fi
[ -n "$schemathesis" ] || { echo "schemathesis missing: pip install -r scripts/api-contract.txt" >&2; exit 2; }
[ -n "$token" ] || token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

work=$(mktemp -d)
cleanup() {
  if [ -f "$work/node.pid" ]; then
    kill "$(cat "$work/node.pid")" 2>/dev/null || true
    wait "$(cat "$work/node.pid")" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$binary" serve --data-dir "$work/data" --http-addr 127.0.0.1:0 --no-quic --shards 2 \
  --admin-token "$token" >"$work/node.out" 2>"$work/node.err" &
echo $! >"$work/node.pid"
addr=""
for _ in $(seq 1 300); do
  addr=$(grep -o 'listening on http [0-9.:]*' "$work/node.out" 2>/dev/null | awk '{print $4}' | head -1 || true)
  [ -n "$addr" ] && break
  kill -0 "$(cat "$work/node.pid")" 2>/dev/null || break
  sleep 0.1
done
[ -n "$addr" ] || { echo "flashgate did not start:" >&2; cat "$work/node.err" >&2; exit 1; }
base="http://$addr"

# Two SKUs, so generated orders meet stock as well as unknown SKUs.
for sku in tee-black-m mug-white; do
  curl -sf -o /dev/null -X PUT "$base/v1/skus/$sku" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"stock": 1000000, "max_quantity_per_order": 1000000}'
done

started=$(date +%s)
status=0
# The console's event stream does not end, so no request to it completes;
# tests/console.rs checks it (resumption, the cap, refusals) and
# tests/openapi.rs that it is served.
"$schemathesis" --config-file scripts/schemathesis.toml run "$base/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method,allow_header_conformance$auth_checks \
  --exclude-path /v1/console/stream \
  "${extra[@]}" --max-examples "$examples" --seed 1 --workers 1 --phases examples,coverage,fuzzing,stateful \
  --request-timeout 30 --no-color || status=$?
echo "api-contract: schemathesis took $(( $(date +%s) - started )) s against $base"
if ! kill -0 "$(cat "$work/node.pid")" 2>/dev/null; then
  echo "api-contract: the node exited during the run:" >&2; tail -20 "$work/node.err" >&2; exit 1
fi
exit "$status"
