#include "model/model_config.h"

#include "model/gguf_model.h"

#include <cmath>
#include <span>

#include <boost/json.hpp>

#include "base/file.h"
#include "base/json.h"

namespace crescent::model {

namespace json = boost::json;

std::string_view ArchitectureName(Architecture a) {
  switch (a) {
    case Architecture::kLlama: return "LlamaForCausalLM";
    case Architecture::kMistral: return "MistralForCausalLM";
    case Architecture::kQwen2: return "Qwen2ForCausalLM";
    case Architecture::kQwen3: return "Qwen3ForCausalLM";
  }
  return "?";
}

namespace {

Status ParseArchitecture(JsonReader& r, Architecture* out) {
  std::vector<std::string> archs = r.StringList("architectures");
  RETURN_IF_ERROR(r.status());
  if (archs.size() != 1) {
    r.Fail("architectures", "expected exactly one architecture");
    return r.status();
  }
  for (Architecture a : {Architecture::kLlama, Architecture::kMistral, Architecture::kQwen2,
                         Architecture::kQwen3}) {
    if (archs[0] == ArchitectureName(a)) {
      *out = a;
      return Status::Ok();
    }
  }
  r.Fail("architectures", "unsupported architecture '" + archs[0] +
                              "' (supported: LlamaForCausalLM, MistralForCausalLM, "
                              "Qwen2ForCausalLM, Qwen3ForCausalLM)");
  return r.status();
}

void ParseRopeScaling(JsonReader& r, RopeScaling* out) {
  const json::value* v = r.Object("rope_scaling", /*optional=*/true);
  if (!v) return;
  JsonReader s(*v, "rope_scaling");
  std::string type = s.Has("rope_type") ? s.String("rope_type") : s.StringOr("type", "default");
  if (type == "default") {
    out->type = RopeScaling::Type::kNone;
  } else if (type == "linear") {
    out->type = RopeScaling::Type::kLinear;
    out->factor = s.Number("factor");
  } else if (type == "llama3") {
    out->type = RopeScaling::Type::kLlama3;
    out->factor = s.Number("factor");
    out->low_freq_factor = s.Number("low_freq_factor");
    out->high_freq_factor = s.Number("high_freq_factor");
    out->original_max_position_embeddings = s.Int("original_max_position_embeddings");
  } else {
    s.Fail("rope_type", "unsupported RoPE scaling '" + type + "' (supported: default, linear, llama3)");
  }
  if (!s.status().ok()) r.Fail("rope_scaling", s.status().message());
}

// Upper bounds on the sizes, far above any released model, so that every size
// derived from them (NonEmbeddingParams, weight and KV byte counts) fits in
// int64 with room to spare: 2^17 * 2^24 * 2^12 layers ~ 2^53.
constexpr int64_t kMaxVocab = int64_t{1} << 22;         // the tokenizer's id bound
constexpr int64_t kMaxWidth = int64_t{1} << 17;         // hidden_size
constexpr int64_t kMaxIntermediate = int64_t{1} << 20;  // intermediate_size
constexpr int64_t kMaxCount = int64_t{1} << 12;         // layers, heads, head_dim
constexpr int64_t kMaxPositions = int64_t{1} << 26;     // max_position_embeddings

std::vector<int64_t> ParseEos(JsonReader& r) {
  std::vector<int64_t> out;
  if (!r.Has("eos_token_id")) return out;
  const json::value& v = r.object()->at("eos_token_id");
  if (!v.is_int64() && !v.is_uint64() && !v.is_array()) {
    r.Fail("eos_token_id", "expected an integer or a list of integers, got " + std::string(JsonKindName(v)));
    return out;
  }
  // One id or a list of them, each a token id.
  for (const json::value& e : v.is_array() ? std::span<const json::value>(v.get_array()) : std::span(&v, 1)) {
    std::optional<int64_t> id = ExactInt64(e);
    if (!id || *id < 0 || *id > kMaxVocab) {
      r.Fail("eos_token_id", "expected an integer in [0, " + std::to_string(kMaxVocab) + "] or a list of them");
      return {};
    }
    out.push_back(*id);
  }
  return out;
}

struct SizeField {
  std::string_view name;
  int64_t value;
  int64_t max;
};

Status InRange(JsonReader& r, std::string_view field, int64_t v, int64_t max) {
  if (r.status().ok() && (v <= 0 || v > max)) {
    r.Fail(field, "must be in [1, " + std::to_string(max) + "], got " + std::to_string(v));
  }
  return r.status();
}

}  // namespace

Result<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view where) {
  ASSIGN_OR_RETURN(json::value root, ParseJson(json_text, where));
  JsonReader r(root, std::string(where));
  RETURN_IF_ERROR(r.status());
  ModelConfig c;
  RETURN_IF_ERROR(ParseArchitecture(r, &c.architecture));
  c.vocab_size = r.Int("vocab_size");
  c.hidden_size = r.Int("hidden_size");
  c.intermediate_size = r.Int("intermediate_size");
  c.num_layers = r.Int("num_hidden_layers");
  c.num_heads = r.Int("num_attention_heads");
  c.num_kv_heads = r.IntOr("num_key_value_heads", c.num_heads);
  c.max_position_embeddings = r.IntOr("max_position_embeddings", 4096);
  c.rms_norm_eps = r.NumberOr("rms_norm_eps", 1e-6);
  c.rope_theta = r.NumberOr("rope_theta", 10000.0);
  c.tie_word_embeddings = r.BoolOr("tie_word_embeddings", false);
  std::string act = r.StringOr("hidden_act", "silu");
  if (r.status().ok() && act != "silu") r.Fail("hidden_act", "unsupported activation '" + act + "' (supported: silu)");
  RETURN_IF_ERROR(r.status());
  for (auto [name, v, max] : std::initializer_list<SizeField>{
           {"vocab_size", c.vocab_size, kMaxVocab},
           {"hidden_size", c.hidden_size, kMaxWidth},
           {"intermediate_size", c.intermediate_size, kMaxIntermediate},
           {"num_hidden_layers", c.num_layers, kMaxCount},
           {"num_attention_heads", c.num_heads, kMaxCount},
           {"num_key_value_heads", c.num_kv_heads, kMaxCount},
           {"max_position_embeddings", c.max_position_embeddings, kMaxPositions}}) {
    RETURN_IF_ERROR(InRange(r, name, v, max));
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    r.Fail("num_key_value_heads", "must divide num_attention_heads");
    return r.status();
  }
  if (r.Has("head_dim")) {
    c.head_dim = r.Int("head_dim");
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      r.Fail("num_attention_heads", "must divide hidden_size when head_dim is absent");
      return r.status();
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  RETURN_IF_ERROR(InRange(r, "head_dim", c.head_dim, kMaxCount));  // given or derived
  if (c.head_dim % 2 != 0) {
    r.Fail("head_dim", "must be even for RoPE");
    return r.status();
  }
  ParseRopeScaling(r, &c.rope_scaling);
  switch (c.architecture) {
    case Architecture::kQwen2:
      c.qkv_bias = true;
      if (r.BoolOr("use_sliding_window", false)) c.sliding_window = r.IntOr("sliding_window", 0);
      break;
    case Architecture::kQwen3:
      c.qk_norm = true;
      c.qkv_bias = c.o_bias = r.BoolOr("attention_bias", false);
      if (r.BoolOr("use_sliding_window", false)) c.sliding_window = r.IntOr("sliding_window", 0);
      break;
    case Architecture::kLlama:
      c.qkv_bias = c.o_bias = r.BoolOr("attention_bias", false);
      break;
    case Architecture::kMistral:
      c.sliding_window = r.IntOr("sliding_window", 0);
      break;
  }
  if (r.Has("torch_dtype")) {
    std::string dt = r.String("torch_dtype");
    if (dt == "bfloat16") c.torch_dtype = DType::kBF16;
    else if (dt == "float16") c.torch_dtype = DType::kF16;
    else if (dt == "float32") c.torch_dtype = DType::kF32;
    else r.Fail("torch_dtype", "unsupported dtype '" + dt + "'");
  }
  c.bos_token_id = r.Has("bos_token_id") ? r.Int("bos_token_id") : -1;
  c.eos_token_ids = ParseEos(r);
  RETURN_IF_ERROR(r.status());
  // Boost.JSON reads a number past double's range (1E8000) as infinity.
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) {
    r.Fail("rope_theta", "must be positive and finite");
    return r.status();
  }
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    r.Fail("rms_norm_eps", "must be positive and finite");
    return r.status();
  }
  if (c.sliding_window < 0) c.sliding_window = 0;
  if (c.sliding_window > kMaxPositions) {
    r.Fail("sliding_window", "must be at most " + std::to_string(kMaxPositions));
    return r.status();
  }
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type != RopeScaling::Type::kNone &&
      (!(rs.factor > 0) || !std::isfinite(rs.factor) || !std::isfinite(rs.high_freq_factor))) {
    r.Fail("rope_scaling", "factor must be positive and finite");
    return r.status();
  }
  if (rs.type == RopeScaling::Type::kLlama3 &&
      (!(rs.low_freq_factor > 0) || !(rs.high_freq_factor > rs.low_freq_factor) ||
       rs.original_max_position_embeddings <= 0 || rs.original_max_position_embeddings > kMaxPositions)) {
    r.Fail("rope_scaling", "llama3 needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings in [1, " +
                               std::to_string(kMaxPositions) + "]");
    return r.status();
  }
  return c;
}

Result<ModelConfig> LoadModelConfig(const std::string& dir) {
  ASSIGN_OR_RETURN(auto gguf, FindGgufModel(dir));
  if (gguf) {
    ASSIGN_OR_RETURN(std::vector<GgufFile> parts, OpenGgufModel(*gguf));
    return GgufModelConfig(parts);
  }
  std::string path = JoinPath(dir, "config.json");
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseModelConfig(text, path);
}

int64_t ModelConfig::NonEmbeddingParams() const {
  int64_t per_layer = hidden_size * q_dim() + 2 * hidden_size * kv_dim() + q_dim() * hidden_size +
                      3 * hidden_size * intermediate_size + 2 * hidden_size;
  if (qkv_bias) per_layer += q_dim() + 2 * kv_dim();
  if (o_bias) per_layer += hidden_size;
  if (qk_norm) per_layer += 2 * head_dim;
  return num_layers * per_layer + hidden_size + vocab_size * hidden_size;
}

std::string ModelConfig::ToJson() const {
  json::object o;
  o["architectures"] = json::array{json::string(ArchitectureName(architecture))};
  o["model_type"] = architecture == Architecture::kLlama     ? "llama"
                    : architecture == Architecture::kMistral ? "mistral"
                    : architecture == Architecture::kQwen2   ? "qwen2"
                                                             : "qwen3";
  o["vocab_size"] = vocab_size;
  o["hidden_size"] = hidden_size;
  o["intermediate_size"] = intermediate_size;
  o["num_hidden_layers"] = num_layers;
  o["num_attention_heads"] = num_heads;
  o["num_key_value_heads"] = num_kv_heads;
  o["head_dim"] = head_dim;
  o["max_position_embeddings"] = max_position_embeddings;
  o["rms_norm_eps"] = rms_norm_eps;
  o["rope_theta"] = rope_theta;
  o["hidden_act"] = "silu";
  o["tie_word_embeddings"] = tie_word_embeddings;
  if (architecture == Architecture::kLlama || architecture == Architecture::kQwen3) {
    o["attention_bias"] = qkv_bias;
  }
  if (sliding_window > 0) {
    o["sliding_window"] = sliding_window;
    if (architecture != Architecture::kMistral) o["use_sliding_window"] = true;
  } else if (architecture == Architecture::kMistral) {
    o["sliding_window"] = nullptr;
  }
  if (rope_scaling.type == RopeScaling::Type::kLlama3) {
    o["rope_scaling"] = json::object{
        {"rope_type", "llama3"},
        {"factor", rope_scaling.factor},
        {"low_freq_factor", rope_scaling.low_freq_factor},
        {"high_freq_factor", rope_scaling.high_freq_factor},
        {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
  } else if (rope_scaling.type == RopeScaling::Type::kLinear) {
    o["rope_scaling"] = json::object{{"rope_type", "linear"}, {"factor", rope_scaling.factor}};
  } else {
    o["rope_scaling"] = nullptr;
  }
  o["torch_dtype"] = torch_dtype == DType::kBF16 ? "bfloat16" : torch_dtype == DType::kF16 ? "float16" : "float32";
  if (bos_token_id >= 0) o["bos_token_id"] = bos_token_id;
  if (eos_token_ids.size() == 1) {
    o["eos_token_id"] = eos_token_ids[0];
  } else if (!eos_token_ids.empty()) {
    json::array a;
    for (int64_t e : eos_token_ids) a.push_back(e);
    o["eos_token_id"] = a;
  }
  return json::serialize(o);
}

Hash128 ModelConfig::Fingerprint() const {
  std::string s = ToJson();
  return HashBytes128(s.data(), s.size());
}

}  // namespace crescent::model
