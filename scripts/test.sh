#!/usr/bin/env bash
# Sets up (scripts/setup.sh), builds (Release) and runs every test with ctest.
# Extra arguments go to ctest, e.g. scripts/test.sh -R Tokenizer
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
cd build
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"
