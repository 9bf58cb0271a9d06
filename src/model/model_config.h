// ModelConfig: the parts of a Hugging Face config.json that define a decoder-only
// transformer crescent can run (Llama, Mistral, Qwen2, Qwen3 families).
//
// Parsing is strict where a wrong guess would give silently wrong outputs: an
// unknown architecture, a missing required field, a field of the wrong type, an
// unsupported activation or RoPE scaling type is an InvalidArgument that names
// the field. Unknown extra fields are ignored (HF configs carry many).
// Values only; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "base/dtype.h"

namespace crescent::model {

enum class Architecture { kLlama, kMistral, kQwen2, kQwen3 };

std::string_view ArchitectureName(Architecture a);  // "LlamaForCausalLM", ...

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // config's head_dim, else hidden_size / num_heads
  int64_t max_position_embeddings = 0;
  int64_t sliding_window = 0;  // 0 = full attention
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2; Llama with attention_bias
  bool o_bias = false;    // Llama with attention_bias
  bool qk_norm = false;   // Qwen3: RMSNorm over head_dim on q and k
  DType torch_dtype = DType::kBF16;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // Parameters excluding the input embedding (the lm_head counts even when tied).
  int64_t NonEmbeddingParams() const;
  // A stable hash of every field above: part of the KV fingerprint.
  Hash128 Fingerprint() const;
  // The config as HF config.json text (what make-model writes).
  std::string ToJson() const;
};

Result<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view where);
// Reads <dir>/config.json.
Result<ModelConfig> LoadModelConfig(const std::string& dir);

}  // namespace crescent::model
