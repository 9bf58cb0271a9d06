#!/usr/bin/env bash
# Sets up (scripts/setup.sh), builds (Release) and runs every test with ctest.
# Extra arguments go to ctest, e.g. scripts/test.sh -R Tokenizer
#
# Tests on Mooncake's released traces (ctest label "traces") run when
# CRESCENT_TRACES_DIR names a folder holding conversation_trace.jsonl and
# synthetic_trace.jsonl (https://github.com/kvcache-ai/Mooncake, folder
# FAST25-release/traces); everything else runs on data crescent makes itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
traces_line="test: the real-trace group (ctest label 'traces') did not run; set CRESCENT_TRACES_DIR to a folder with Mooncake's conversation_trace.jsonl and synthetic_trace.jsonl to run it"
select=(-LE traces)
if [ -n "${CRESCENT_TRACES_DIR:-}" ]; then
  if ! CRESCENT_TRACES_DIR=$(cd "$CRESCENT_TRACES_DIR" 2>/dev/null && pwd); then
    echo "test: CRESCENT_TRACES_DIR is not a folder" >&2
    exit 1
  fi
  export CRESCENT_TRACES_DIR
  traces_line="test: the real-trace group (ctest label 'traces') ran on $CRESCENT_TRACES_DIR"
  select=()
fi
cd build
rc=0
ctest --output-on-failure --timeout 900 -j "$(nproc)" "${select[@]}" "$@" || rc=$?
echo "$traces_line"
cd ..
# The fuzz targets' smoke run (clang-15, ASan + UBSan): a few seconds each
# from the committed seeds; only on the whole suite (no ctest arguments).
# Then clang's thread-safety analysis over the annotated components.
if [ $# -eq 0 ]; then
  bash scripts/fuzz.sh all 10 || rc=1
  bash scripts/build.sh thread-safety | tail -1 || rc=1
fi
exit $rc
