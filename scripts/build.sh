#!/usr/bin/env bash
# Configures and builds crescent with CMake + Ninja.
#   scripts/build.sh            Release build in build/
#   scripts/build.sh asan       ASan/UBSan build in build-asan/ (run its tests with
#                               LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp: a UCX leak)
#   scripts/build.sh tsan       ThreadSanitizer build in build-tsan/ (run its tests with
#                               TSAN_OPTIONS=suppressions=$PWD/scripts/tsan.supp and
#                               UCX_MEM_MMAP_HOOK_MODE=none UCX_MEM_MALLOC_HOOKS=no: UCX's
#                               madvise hook crashes TSan at thread exit)
#   scripts/build.sh thread-safety  clang-15 with -Wthread-safety -Werror in build-tsa/:
#                               the libraries whose locks are annotated
#                               (base/thread_annotations.h); a warning fails it
#   scripts/build.sh portable   Release build in build-v3/ for x86-64-v3 (AVX2, no
#                               AVX-512: Zen 2/3, Intel client CPUs) instead of -march=native
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRESCENT_SANITIZE=ON) ;;
  portable) dir=build-v3; flags=(-DCMAKE_BUILD_TYPE=Release -DCRESCENT_NATIVE=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v3) ;;
  tsan) dir=build-tsan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRESCENT_TSAN=ON) ;;
  thread-safety)
    bash scripts/setup.sh >/dev/null
    CC=clang-15 CXX=clang++-15 cmake -S . -B build-tsa -G Ninja -DCMAKE_BUILD_TYPE=Release -DCRESCENT_THREAD_SAFETY=ON \
      -DCRESCENT_TESTS=OFF >/dev/null
    ninja -C build-tsa -j "$(nproc)" crescent_base crescent_transfer crescent_store crescent_engine crescent_server
    # The analysis must bite: a guarded field written without its lock fails.
    probe='#include "base/thread_annotations.h"
struct P { crescent::Mutex mu; int x GUARDED_BY(mu) = 0; void F() { x = 1; } };'
    if echo "$probe" | clang++-15 -std=c++20 -Isrc -Wthread-safety -Werror -fsyntax-only -x c++ - 2>/dev/null; then
      echo "build: -Wthread-safety did not flag an unguarded write" >&2
      exit 1
    fi
    echo "build: thread-safety analysis clean (base, transfer, store, engine, server)"
    exit 0 ;;
  *) echo "usage: $0 [release|asan|tsan|thread-safety|portable]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
ninja -C "$dir" -j "$(nproc)"
