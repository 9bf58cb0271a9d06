#!/usr/bin/env bash
# Configures and builds crescent with CMake + Ninja.
#   scripts/build.sh            Release build in build/
#   scripts/build.sh asan       ASan/UBSan build in build-asan/ (run its tests with
#                               LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp: a UCX leak)
#   scripts/build.sh tsan       ThreadSanitizer build in build-tsan/ (run its tests with
#                               TSAN_OPTIONS=suppressions=$PWD/scripts/tsan.supp and
#                               UCX_MEM_MMAP_HOOK_MODE=none UCX_MEM_MALLOC_HOOKS=no: UCX's
#                               madvise hook crashes TSan at thread exit)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRESCENT_SANITIZE=ON) ;;
  tsan) dir=build-tsan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRESCENT_TSAN=ON) ;;
  *) echo "usage: $0 [release|asan|tsan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
ninja -C "$dir" -j "$(nproc)"
