#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang-15 with ASan and UBSan) in
# build-fuzz/ and runs them.
#   scripts/fuzz.sh                 every target, 20 s each
#   scripts/fuzz.sh TARGET [SECONDS]  one target (fuzz_json_schema, ...)
#   scripts/fuzz.sh all SECONDS       every target, SECONDS each
# Each run starts from the committed seeds (fuzz/corpus/<target>/) and grows a
# corpus of its own in build-fuzz/corpus/<target>/; a crash leaves its input
# in build-fuzz/crashes/ and fails the script. Prints each target's runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
targets=(fuzz_openai_request fuzz_json_schema fuzz_chat_template fuzz_safetensors fuzz_tokenizer_json fuzz_trace
         fuzz_model_config fuzz_http_request fuzz_metadata fuzz_gguf fuzz_store_records)
which=${1:-all}
seconds=${2:-20}
if [ "$which" != all ]; then targets=("$which"); fi
CC=clang-15 CXX=clang++-15 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCRESCENT_FUZZ=ON -DCRESCENT_TESTS=OFF >/dev/null
ninja -C build-fuzz "${targets[@]}" | tail -1
mkdir -p build-fuzz/crashes
rc=0
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  mkdir -p "$corpus"
  dict=()
  if [ -f "fuzz/$t.dict" ]; then dict=(-dict="fuzz/$t.dict"); fi
  log=build-fuzz/$t.log
  if ! "build-fuzz/fuzz/$t" "$corpus" "fuzz/corpus/$t" "${dict[@]}" -max_total_time="$seconds" -timeout=10 \
       -rss_limit_mb=4096 -max_len=65536 -artifact_prefix=build-fuzz/crashes/ -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzz: $t FAILED (input in build-fuzz/crashes/, log $log)"
    tail -30 "$log"
    rc=1
    continue
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo '?')
  echo "fuzz: $t: $runs runs in ${seconds} s, coverage $cov edges, no crash"
done
exit $rc
