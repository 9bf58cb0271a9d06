#include "model/dummy_model.h"

#include <cmath>
#include <cstring>

#include "base/file.h"
#include "base/hash.h"
#include "base/logging.h"
#include "base/thread_pool.h"
#include "model/safetensors_writer.h"
#include "model/weight_layout.h"

namespace crescent::model {

namespace {

ModelConfig Llama3Base() {
  ModelConfig c;
  c.architecture = Architecture::kLlama;
  c.vocab_size = 128256;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = RopeScaling::Type::kLlama3;
  c.rope_scaling.factor = 32.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = true;
  c.bos_token_id = 128000;
  c.eos_token_ids = {128001, 128008, 128009};
  return c;
}

ModelConfig Llama2Base() {
  ModelConfig c;
  c.architecture = Architecture::kLlama;
  c.vocab_size = 32000;
  c.rope_theta = 10000.0;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = false;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

ModelConfig Qwen3Base() {
  ModelConfig c;
  c.architecture = Architecture::kQwen3;
  c.qk_norm = true;
  c.vocab_size = 151936;
  c.rope_theta = 1000000.0;
  c.max_position_embeddings = 40960;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = true;
  c.bos_token_id = 151643;
  c.eos_token_ids = {151645, 151643};
  return c;
}

// splitmix64: tiny, fast, good enough for random weights.
inline uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Fills `out` with bf16 values: center + uniform noise of the given std.
void FillUniform(uint64_t seed, float center, float stddev, std::vector<uint16_t>& out) {
  constexpr int64_t kBlock = 1 << 16;
  const int64_t n = static_cast<int64_t>(out.size());
  const float half_width = stddev * std::sqrt(3.0f);
  ThreadPool::Default().ParallelFor((n + kBlock - 1) / kBlock, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      uint64_t s = seed ^ (static_cast<uint64_t>(b) * 0xd1b54a32d192ed03ULL);
      int64_t end = std::min(n, (b + 1) * kBlock);
      for (int64_t i = b * kBlock; i < end; ++i) {
        float u = static_cast<float>(SplitMix(s) >> 40) * (1.0f / 16777216.0f);  // [0, 1)
        out[i] = F32ToBf16(center + (2.0f * u - 1.0f) * half_width);
      }
    }
  });
}

// A base config with a model's sizes.
ModelConfig Sized(ModelConfig c, int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads, int64_t kv_heads,
                  int64_t head_dim) {
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  return c;
}

}  // namespace

std::vector<std::string> DummyPresetNames() {
  return {"tiny-llama3", "tiny-qwen3", "tiny-llama2", "llama3-1b", "qwen3-0.6b"};
}

Result<ModelConfig> DummyPresetConfig(std::string_view name) {
  if (name == "tiny-llama3") return Sized(Llama3Base(), 256, 768, 4, 4, 2, 64);
  // Llama 2's tokenizer and hyper-parameters (SentencePiece, MHA).
  if (name == "tiny-llama2") return Sized(Llama2Base(), 256, 768, 4, 4, 4, 64);
  if (name == "llama3-1b") return Sized(Llama3Base(), 2048, 8192, 16, 32, 8, 64);  // Llama-3.2-1B
  // head_dim override: q_dim (512) != hidden_size.
  if (name == "tiny-qwen3") return Sized(Qwen3Base(), 256, 768, 4, 4, 2, 128);
  if (name == "qwen3-0.6b") return Sized(Qwen3Base(), 1024, 3072, 28, 16, 8, 128);  // Qwen3-0.6B
  std::string names;
  for (const auto& n : DummyPresetNames()) names += (names.empty() ? "" : ", ") + n;
  return InvalidArgument("unknown dummy model '" + std::string(name) + "' (presets: " + names +
                         ", or a path to a config.json)");
}

Result<ModelConfig> ResolveDummyConfig(const std::string& name_or_path) {
  if (name_or_path.find('/') != std::string::npos || name_or_path.ends_with(".json")) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(name_or_path));
    return ParseModelConfig(text, name_or_path);
  }
  return DummyPresetConfig(name_or_path);
}

Status WriteDummyModel(const DummyModelSpec& spec) {
  const ModelConfig& c = spec.config;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    if (!FileExists(JoinPath(spec.tokenizer_dir, f))) {
      return NotFound("tokenizer directory " + spec.tokenizer_dir + " has no " + f);
    }
  }
  RETURN_IF_ERROR(MakeDirectories(spec.out_dir));

  std::vector<TensorSpec> specs = ExpectedTensors(c);
  std::vector<std::vector<uint16_t>> data(specs.size());
  std::vector<TensorToWrite> to_write;
  const float residual_scale = 1.0f / std::sqrt(2.0f * static_cast<float>(c.num_layers));
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& t = specs[i];
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    data[i].resize(static_cast<size_t>(numel));
    Hasher128 h;
    h.Update(&spec.seed, sizeof(spec.seed));
    h.Update(t.name.data(), t.name.size());
    uint64_t seed = h.Finish().lo;
    float center = 0, stddev = 0;
    const float fan_in = static_cast<float>(t.shape.back());
    switch (t.init) {
      case TensorSpec::Init::kEmbedding:
        stddev = c.tie_word_embeddings ? 3.0f / std::sqrt(fan_in) : 1.0f;
        break;
      case TensorSpec::Init::kMatrix:
        stddev = 1.0f / std::sqrt(fan_in);
        if (t.name == "lm_head.weight") stddev = 3.0f / std::sqrt(fan_in);
        if (t.name.ends_with("o_proj.weight") || t.name.ends_with("down_proj.weight")) stddev *= residual_scale;
        break;
      case TensorSpec::Init::kNorm:
        center = 1.0f;
        stddev = 0.2f / std::sqrt(3.0f);
        break;
      case TensorSpec::Init::kBias:
        stddev = 0.1f;
        break;
    }
    FillUniform(seed, center, stddev, data[i]);
    to_write.push_back({t.name, DType::kBF16, t.shape,
                        {reinterpret_cast<const std::byte*>(data[i].data()), data[i].size() * 2}});
  }
  RETURN_IF_ERROR(WriteSafetensors(JoinPath(spec.out_dir, "model.safetensors"), to_write));
  ModelConfig written = c;
  written.torch_dtype = DType::kBF16;
  RETURN_IF_ERROR(WriteFileAtomic(JoinPath(spec.out_dir, "config.json"), written.ToJson()));
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(JoinPath(spec.tokenizer_dir, f)));
    RETURN_IF_ERROR(WriteFileAtomic(JoinPath(spec.out_dir, f), text));
  }
  return Status::Ok();
}

}  // namespace crescent::model
