#!/usr/bin/env bash
# Runs the e2e tests (or those matching $1, a ctest regex) on the TSan build
# and fails when any process they started wrote a ThreadSanitizer report.
# Tests that fail on time alone under TSan's slowdown are listed in
# docs/reliability.md; this script's verdict is the reports, not ctest's.
#   scripts/tsan_e2e.sh ['^e2e\.(serve_pd|cluster)']
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh tsan >/dev/null || exit 1
reports=$(mktemp -d /tmp/crescent-tsan.XXXXXX)
(cd build-tsan && TSAN_OPTIONS="suppressions=$PWD/../scripts/tsan.supp:log_path=$reports/r:second_deadlock_stack=1" \
  UCX_MEM_MMAP_HOOK_MODE=none UCX_MEM_MALLOC_HOOKS=no ctest -R "${1:-^e2e\.}" -j1 --timeout 900 --output-on-failure) \
  | grep -E "Test +#|tests passed"
n=$(ls "$reports" | wc -l)
if [ "$n" -gt 0 ]; then
  echo "tsan_e2e: $n ThreadSanitizer report(s) in $reports" >&2
  exit 1
fi
echo "tsan_e2e: no ThreadSanitizer reports"
