#!/usr/bin/env bash
# Configures and builds crescent with CMake + Ninja.
#   scripts/build.sh            Release build in build/
#   scripts/build.sh asan       ASan/UBSan build in build-asan/ (run its tests with
#                               LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp: a UCX leak)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRESCENT_SANITIZE=ON) ;;
  *) echo "usage: $0 [release|asan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
ninja -C "$dir" -j "$(nproc)"
