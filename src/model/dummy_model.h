// Dummy models: random bf16 weights for a real architecture, written in the real
// formats (config.json, model.safetensors) next to a real tokenizer. These are the
// only models on machines that cannot download weights (DESIGN.md).
//
// Weights are deterministic in (seed, tensor name), independent of thread count.
// The init keeps activations finite and informative through all layers:
// projections are uniform with std 1/sqrt(fan_in) (o_proj and down_proj further
// scaled by 1/sqrt(2 * layers)), norm weights 1 +- 0.2, biases std 0.1, and the
// output embedding std 3/sqrt(hidden) so logits have a spread of a few nats.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "model/model_config.h"

namespace crescent::model {

// "tiny-llama3", "tiny-qwen3", "llama3-1b" (Llama-3.2-1B shapes), "qwen3-0.6b".
std::vector<std::string> DummyPresetNames();
Result<ModelConfig> DummyPresetConfig(std::string_view name);
// A preset name, or a path to a config.json.
Result<ModelConfig> ResolveDummyConfig(const std::string& name_or_path);

struct DummyModelSpec {
  ModelConfig config;
  std::string tokenizer_dir;  // holds tokenizer.json and tokenizer_config.json
  std::string out_dir;
  uint64_t seed = 0;
};

// Writes config.json, model.safetensors, tokenizer.json and tokenizer_config.json.
Status WriteDummyModel(const DummyModelSpec& spec);

}  // namespace crescent::model
