#!/usr/bin/env bash
# Checks deploy/flashgate.service with `systemd-analyze verify` (unit syntax,
# every directive known to this systemd, the ExecStart binary runnable),
# pointing ExecStart at a binary this checkout built, since the unit's own
# path (/usr/local/bin/flashgate) exists only once installed.
#
#   scripts/verify-deploy.sh [flashgate binary, default target/debug/flashgate]
#
# Without systemd-analyze (a machine without systemd) it says so and passes.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:-target/debug/flashgate}")
if ! command -v systemd-analyze >/dev/null; then
  echo "verify-deploy: SKIPPED: systemd-analyze is not installed (Debian package systemd)"
  exit 0
fi
[ -x "$binary" ] || { echo "verify-deploy: no flashgate binary at $binary (build it first)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s#^ExecStart=/usr/local/bin/flashgate #ExecStart=$binary #" deploy/flashgate.service \
  >"$work/flashgate.service"
grep -q "^ExecStart=$binary " "$work/flashgate.service" ||
  { echo "verify-deploy: the unit's ExecStart is not /usr/local/bin/flashgate serve ..." >&2; exit 1; }
# verify prints problems on stderr but exits 0 for some of them: any output fails.
if ! systemd-analyze verify "$work/flashgate.service" >"$work/out" 2>&1 || [ -s "$work/out" ]; then
  cat "$work/out" >&2
  echo "verify-deploy: deploy/flashgate.service has problems (above)" >&2
  exit 1
fi
echo "verify-deploy: deploy/flashgate.service passes systemd-analyze verify"
