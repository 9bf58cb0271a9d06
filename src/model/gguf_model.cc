#include "model/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numbers>
#include <set>

#include <fmt/format.h>

#include "base/file.h"

namespace crescent::model {

namespace {

namespace fs = std::filesystem;

// "x-00002-of-00003.gguf" -> ("x", 2, 3); nullopt when not a split name.
struct SplitName {
  std::string stem;
  int no = 0, count = 0;
};
std::optional<SplitName> ParseSplit(const std::string& file) {
  // -NNNNN-of-NNNNN.gguf: 20 characters.
  if (file.size() < 21 || !file.ends_with(".gguf")) return std::nullopt;
  const std::string tail = file.substr(file.size() - 20);
  int no = 0, count = 0;
  char of[3] = {};
  if (std::sscanf(tail.c_str(), "-%5d-%2c-%5d.gguf", &no, of, &count) != 3 || std::string(of, 2) != "of" ||
      tail[0] != '-' || no < 1 || count < 1 || no > count) {
    return std::nullopt;
  }
  return SplitName{file.substr(0, file.size() - 20), no, count};
}

std::string SplitFileName(const std::string& stem, int no, int count) {
  char b[32];
  std::snprintf(b, sizeof b, "-%05d-of-%05d.gguf", no, count);
  return stem + b;
}

const std::pair<std::string_view, std::string_view> kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};
const std::pair<std::string_view, std::string_view> kTopNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

const GgufTensor* FindTensor(const std::vector<GgufFile>& parts, const std::string& name) {
  for (const auto& p : parts) {
    for (const auto& t : p.tensors()) {
      if (t.name == name) return &t;
    }
  }
  return nullptr;
}

// A value stored as f32 read back as the decimal it was written from
// (1e-5, not 9.99999974e-6): the shortest digits that round-trip the f32.
double ShortestOfF32(double v) { return std::stod(fmt::format("{}", static_cast<float>(v))); }

}  // namespace

Result<std::optional<std::vector<std::string>>> FindGgufModel(const std::string& path) {
  std::string file = path;
  if (IsDirectory(path)) {
    if (FileExists(JoinPath(path, "config.json"))) return std::optional<std::vector<std::string>>();
    std::set<std::string> models;  // one entry per model (a split set counts once)
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(path, ec)) {
      const std::string name = e.path().filename().string();
      if (!name.ends_with(".gguf")) continue;
      auto split = ParseSplit(name);
      models.insert(split ? split->stem : name);
      if (!split || split->no == 1) file = JoinPath(path, split ? SplitFileName(split->stem, 1, split->count) : name);
    }
    if (models.empty()) return std::optional<std::vector<std::string>>();
    if (file == path) return NotFound(path + ": its GGUF split set has no part 1");
    if (models.size() > 1) {
      return InvalidArgument(path + ": holds " + std::to_string(models.size()) +
                             " GGUF models; name the .gguf file to serve");
    }
  } else if (!path.ends_with(".gguf")) {
    return std::optional<std::vector<std::string>>();
  }
  if (!FileExists(file)) return NotFound(file + ": no such file");
  const std::string dir = DirName(file), base = fs::path(file).filename().string();
  auto split = ParseSplit(base);
  if (!split) return std::optional<std::vector<std::string>>(std::vector<std::string>{file});
  std::vector<std::string> files;
  for (int i = 1; i <= split->count; ++i) {
    std::string part = JoinPath(dir, SplitFileName(split->stem, i, split->count));
    if (!FileExists(part)) {
      return NotFound(part + ": part " + std::to_string(i) + " of " + std::to_string(split->count) + " is missing");
    }
    files.push_back(std::move(part));
  }
  return std::optional<std::vector<std::string>>(std::move(files));
}

Result<std::vector<GgufFile>> OpenGgufModel(const std::vector<std::string>& files) {
  std::vector<GgufFile> parts;
  std::set<std::string> names;
  for (size_t i = 0; i < files.size(); ++i) {
    ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(files[i]));
    if (files.size() > 1) {
      auto count = g.Int("split.count"), no = g.Int("split.no");
      if (!count.ok() || !no.ok() || *count != static_cast<int64_t>(files.size()) || *no != static_cast<int64_t>(i)) {
        return InvalidArgument(files[i] + ": split.count/split.no do not say part " + std::to_string(i + 1) + " of " +
                               std::to_string(files.size()));
      }
    }
    for (const auto& t : g.tensors()) {
      if (!names.insert(t.name).second) return InvalidArgument(files[i] + ": tensor '" + t.name + "' is in two parts");
    }
    parts.push_back(std::move(g));
  }
  if (parts.empty()) return InvalidArgument("no GGUF file");
  return parts;
}

Result<std::string> GgufToHfName(const std::string& g) {
  for (const auto& [from, to] : kTopNames) {
    if (g == from) return std::string(to);
  }
  if (g == "rope_freqs.weight") return std::string();
  if (g.starts_with("blk.")) {
    const size_t dot = g.find('.', 4);
    if (dot != std::string::npos && dot > 4 && dot - 4 <= 6 &&
        g.substr(4, dot - 4).find_first_not_of("0123456789") == std::string::npos) {
      const std::string rest = g.substr(dot + 1);
      for (const auto& [from, to] : kLayerNames) {
        if (rest == from) return "model.layers." + g.substr(4, dot - 4) + "." + std::string(to);
      }
    }
  }
  return InvalidArgument("tensor '" + g + "' is not one crescent knows (llama, qwen2, qwen3)");
}

std::string HfToGgufName(const std::string& hf) {
  for (const auto& [from, to] : kTopNames) {
    if (hf == to) return std::string(from);
  }
  const std::string prefix = "model.layers.";
  if (hf.starts_with(prefix)) {
    const size_t dot = hf.find('.', prefix.size());
    const std::string rest = hf.substr(dot + 1);
    for (const auto& [from, to] : kLayerNames) {
      if (rest == to) return "blk." + hf.substr(prefix.size(), dot - prefix.size()) + "." + std::string(from);
    }
  }
  return hf;
}

int64_t GgufRowOfHfRow(int64_t r, int64_t head_dim) {
  const int64_t half = head_dim / 2, head = r / head_dim, in = r % head_dim;
  const int64_t i = in / half, j = in % half;
  return head * head_dim + 2 * j + i;
}

bool GgufPermutesQk(Architecture a) { return a == Architecture::kLlama || a == Architecture::kMistral; }

std::vector<float> Llama3RopeFreqFactors(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const double freq = std::pow(c.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim));
    const double wavelen = 2 * std::numbers::pi / freq;
    double f = 1.0;
    if (wavelen > low_wavelen) {
      f = s.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      f = 1.0 / ((1 - smooth) / s.factor + smooth);
    }
    out.push_back(static_cast<float>(f));
  }
  return out;
}

Result<ModelConfig> GgufModelConfig(const std::vector<GgufFile>& parts) {
  const GgufFile& g = parts.front();
  const std::string& w = g.path();
  ASSIGN_OR_RETURN(std::string arch, g.String("general.architecture"));
  ModelConfig c;
  if (arch == "llama") {
    c.architecture = Architecture::kLlama;
  } else if (arch == "qwen2") {
    c.architecture = Architecture::kQwen2;
  } else if (arch == "qwen3") {
    c.architecture = Architecture::kQwen3;
  } else {
    return Status(StatusCode::kUnimplemented,
                  w + ": architecture '" + arch + "' is not supported (llama, qwen2, qwen3)");
  }
  auto key = [&](const std::string& k) { return arch + "." + k; };
  auto need_int = [&](const std::string& k, int64_t* out) -> Status {
    ASSIGN_OR_RETURN(*out, g.Int(key(k)));
    return Status::Ok();
  };
  RETURN_IF_ERROR(need_int("embedding_length", &c.hidden_size));
  RETURN_IF_ERROR(need_int("block_count", &c.num_layers));
  RETURN_IF_ERROR(need_int("feed_forward_length", &c.intermediate_size));
  RETURN_IF_ERROR(need_int("attention.head_count", &c.num_heads));
  c.num_kv_heads = c.num_heads;
  if (g.Has(key("attention.head_count_kv"))) {
    ASSIGN_OR_RETURN(c.num_kv_heads, g.Int(key("attention.head_count_kv")));
  }
  RETURN_IF_ERROR(need_int("context_length", &c.max_position_embeddings));
  if (g.Has(key("attention.key_length"))) {
    ASSIGN_OR_RETURN(c.head_dim, g.Int(key("attention.key_length")));
  } else if (c.num_heads > 0) {
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (g.Has(key("rope.dimension_count"))) {
    ASSIGN_OR_RETURN(int64_t rot, g.Int(key("rope.dimension_count")));
    if (rot != c.head_dim) {
      return Status(StatusCode::kUnimplemented, w + ": partial RoPE (rope.dimension_count " + std::to_string(rot) +
                                                    " of head_dim " + std::to_string(c.head_dim) + ") is not supported");
    }
  }
  ASSIGN_OR_RETURN(c.rms_norm_eps, g.Float(key("attention.layer_norm_rms_epsilon")));
  c.rms_norm_eps = ShortestOfF32(c.rms_norm_eps);
  c.rope_theta = 10000.0;
  if (g.Has(key("rope.freq_base"))) {
    ASSIGN_OR_RETURN(c.rope_theta, g.Float(key("rope.freq_base")));
    c.rope_theta = ShortestOfF32(c.rope_theta);
  }
  // The vocabulary is the tokenizer's (llama.cpp's n_vocab); the embedding must agree.
  ASSIGN_OR_RETURN(const GgufArray* tokens, g.Array("tokenizer.ggml.tokens"));
  c.vocab_size = static_cast<int64_t>(tokens->size());
  if (g.Has(key("vocab_size"))) {
    ASSIGN_OR_RETURN(c.vocab_size, g.Int(key("vocab_size")));
  }
  if (g.Has(key("rope.scaling.type"))) {
    ASSIGN_OR_RETURN(std::string type, g.String(key("rope.scaling.type")));
    if (type == "linear") {
      c.rope_scaling.type = RopeScaling::Type::kLinear;
      ASSIGN_OR_RETURN(c.rope_scaling.factor, g.Float(key("rope.scaling.factor")));
    } else if (type != "none") {
      return Status(StatusCode::kUnimplemented, w + ": rope scaling '" + type + "' is not supported (linear, llama3)");
    }
  }
  c.tie_word_embeddings = FindTensor(parts, "output.weight") == nullptr;
  if (c.architecture == Architecture::kLlama) c.qkv_bias = c.o_bias = FindTensor(parts, "blk.0.attn_q.bias") != nullptr;
  if (g.Has("tokenizer.ggml.bos_token_id")) {
    ASSIGN_OR_RETURN(c.bos_token_id, g.Int("tokenizer.ggml.bos_token_id"));
  }
  // Generation ends at eos and at the end-of-turn / end-of-message tokens
  // (llama.cpp's end-of-generation set).
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (!g.Has(k)) continue;
    ASSIGN_OR_RETURN(int64_t id, g.Int(k));
    if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end()) {
      c.eos_token_ids.push_back(id);
    }
  }
  // Llama 3: the frequency table must be the llama3 scaling of some factor;
  // the original context and band edges are Llama 3's (8192, 1, 4).
  if (const GgufTensor* freqs = FindTensor(parts, "rope_freqs.weight")) {
    if (freqs->type != QuantType::kF32 || c.head_dim < 2 || freqs->numel() != c.head_dim / 2) {
      return InvalidArgument(w + ": rope_freqs.weight must be f32 [head_dim / 2]");
    }
    std::vector<float> table(static_cast<size_t>(freqs->numel()));
    DequantizeRow(QuantType::kF32, freqs->bytes.data(), table.data(), freqs->numel());
    ModelConfig l3 = c;
    l3.rope_scaling.type = RopeScaling::Type::kLlama3;
    l3.rope_scaling.factor = ShortestOfF32(*std::max_element(table.begin(), table.end()));
    l3.rope_scaling.low_freq_factor = 1.0;
    l3.rope_scaling.high_freq_factor = 4.0;
    l3.rope_scaling.original_max_position_embeddings = 8192;
    const std::vector<float> want = Llama3RopeFreqFactors(l3);
    for (size_t i = 0; i < table.size(); ++i) {
      if (!(std::fabs(table[i] - want[i]) <= 1e-3f * std::max(1.0f, want[i]))) {
        return Status(StatusCode::kUnimplemented,
                      w + ": rope_freqs.weight is not Llama 3's rope scaling (low 1, high 4, original context 8192)");
      }
    }
    if (l3.rope_scaling.factor != 1.0) c.rope_scaling = l3.rope_scaling;
  }
  // Through config.json's parser: one set of bounds and checks for both formats.
  return ParseModelConfig(c.ToJson(), w);
}

}  // namespace crescent::model
