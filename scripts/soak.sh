#!/bin/sh
# The cluster fault soak (docs/cluster.md): `crescent cluster up` with 2
# prefill + 2 decode instances of the tiny dummy under a steady load while
# KILLS random processes (prefill, decode, store master, etcd) are killed
# with -9, one every 3 s, and restarted; prints the counts (requests served,
# wrong outputs, hung requests, errors by status) and fails on any wrong or
# hung one. Usage: scripts/soak.sh [KILLS] (default 100; ~6 minutes).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
kills=${1:-100}
build=${BUILD:-$here/build}
[ -x "$build/src/cli/crescent" ] || { echo "soak: build first (bash scripts/build.sh)"; exit 1; }
exec /usr/bin/python3 "$here/tests/e2e/cluster_test.py" --crescent "$build/src/cli/crescent" \
  --work "${WORK:-/tmp/crescent-soak}" --part faults --kills "$kills"
