#include "model/gguf_convert.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <vector>

#include "base/file.h"
#include "base/quant.h"
#include "model/gguf_model.h"
#include "model/gguf_tokenizer.h"
#include "model/gguf_writer.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/weight_layout.h"

namespace crescent::model {

namespace {

// llama.cpp's llama_ftype numbers (general.file_type).
struct FileType {
  std::string_view name;
  QuantType base;
  bool mixed;  // the _M mixes
  uint32_t ftype;
};
constexpr FileType kFileTypes[] = {
    {"f32", QuantType::kF32, false, 0},    {"f16", QuantType::kF16, false, 1},
    {"bf16", QuantType::kBF16, false, 32}, {"q8_0", QuantType::kQ8_0, false, 7},
    {"q4_0", QuantType::kQ4_0, false, 2},  {"q4_k_m", QuantType::kQ4_K, true, 15},
    {"q5_k_m", QuantType::kQ5_K, true, 17}, {"q4_k", QuantType::kQ4_K, false, 14},
    {"q5_k", QuantType::kQ5_K, false, 16}, {"q6_k", QuantType::kQ6_K, false, 18},
};

// llama.cpp's use_more_bits: the first and last eighth of the layers and every
// third one between.
bool UseMoreBits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

QuantType Fallback(QuantType t, int64_t row) {
  if (row % QuantBlockElems(t) == 0) return t;
  if (row % QuantBlockElems(QuantType::kQ8_0) == 0) return QuantType::kQ8_0;
  return QuantType::kF16;
}

std::string ArchName(Architecture a) {
  switch (a) {
    case Architecture::kQwen2: return "qwen2";
    case Architecture::kQwen3: return "qwen3";
    default: return "llama";  // Llama and Mistral
  }
}

const FileType* FindFileType(std::string_view name) {
  for (const auto& f : kFileTypes) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// The layer of "model.layers.N.<...>", or -1.
int64_t LayerOf(const std::string& hf) {
  const std::string prefix = "model.layers.";
  if (!hf.starts_with(prefix)) return -1;
  return std::strtoll(hf.c_str() + prefix.size(), nullptr, 10);
}

}  // namespace

Result<QuantType> TensorTypeFor(std::string_view file_type, const std::string& hf_name,
                                const std::vector<int64_t>& shape, const ModelConfig& c) {
  const FileType* ft = FindFileType(file_type);
  if (!ft) {
    return InvalidArgument("unknown quantization '" + std::string(file_type) +
                           "' (f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q4_k, q5_k, q6_k)");
  }
  if (shape.size() < 2) return QuantType::kF32;
  QuantType type = ft->base;
  if (ft->mixed) {
    const bool tied_embed = hf_name == "model.embed_tokens.weight" && c.tie_word_embeddings;
    if (hf_name == "lm_head.weight" || tied_embed) type = QuantType::kQ6_K;
    const int64_t layer = LayerOf(hf_name);
    if ((hf_name.ends_with("v_proj.weight") || hf_name.ends_with("down_proj.weight")) &&
        UseMoreBits(layer, c.num_layers)) {
      type = QuantType::kQ6_K;
    }
  }
  return Fallback(type, shape.back());
}

Status ConvertToGguf(const std::string& model_dir, const std::string& out_path, std::string_view file_type) {
  const FileType* ft = FindFileType(file_type);
  if (!ft) RETURN_IF_ERROR(TensorTypeFor(file_type, "", {}, ModelConfig()).status());
  ASSIGN_OR_RETURN(ModelConfig c, LoadModelConfig(model_dir));
  ASSIGN_OR_RETURN(WeightFiles files, WeightFiles::Open(model_dir));
  RETURN_IF_ERROR(ValidateWeights(c, files));
  if (c.rope_scaling.type == RopeScaling::Type::kLlama3 &&
      (c.rope_scaling.low_freq_factor != 1.0 || c.rope_scaling.high_freq_factor != 4.0 ||
       c.rope_scaling.original_max_position_embeddings != 8192)) {
    return Unimplemented("llama3 rope scaling other than low 1, high 4, original 8192 has no GGUF form crescent reads");
  }
  if (c.sliding_window > 0) return Unimplemented("sliding-window models are not written to GGUF");
  ASSIGN_OR_RETURN(std::string tokenizer_json, ReadFileToString(JoinPath(model_dir, "tokenizer.json")));
  std::string tokenizer_config;
  if (FileExists(JoinPath(model_dir, "tokenizer_config.json"))) {
    ASSIGN_OR_RETURN(tokenizer_config, ReadFileToString(JoinPath(model_dir, "tokenizer_config.json")));
  }

  GgufWriter w;
  const std::string arch = ArchName(c.architecture);
  auto key = [&](std::string_view k) { return arch + "." + std::string(k); };
  w.AddString("general.architecture", arch);
  w.AddString("general.name", "crescent " + std::string(ArchitectureName(c.architecture)));
  w.AddU32("general.file_type", ft->ftype);
  w.AddU32("general.quantization_version", 2);
  w.AddU32(key("context_length"), static_cast<uint32_t>(c.max_position_embeddings));
  w.AddU32(key("embedding_length"), static_cast<uint32_t>(c.hidden_size));
  w.AddU32(key("block_count"), static_cast<uint32_t>(c.num_layers));
  w.AddU32(key("feed_forward_length"), static_cast<uint32_t>(c.intermediate_size));
  w.AddU32(key("attention.head_count"), static_cast<uint32_t>(c.num_heads));
  w.AddU32(key("attention.head_count_kv"), static_cast<uint32_t>(c.num_kv_heads));
  w.AddU32(key("attention.key_length"), static_cast<uint32_t>(c.head_dim));
  w.AddU32(key("attention.value_length"), static_cast<uint32_t>(c.head_dim));
  w.AddU32(key("rope.dimension_count"), static_cast<uint32_t>(c.head_dim));
  w.AddF32(key("rope.freq_base"), static_cast<float>(c.rope_theta));
  w.AddF32(key("attention.layer_norm_rms_epsilon"), static_cast<float>(c.rms_norm_eps));
  w.AddU32(key("vocab_size"), static_cast<uint32_t>(c.vocab_size));
  if (c.rope_scaling.type == RopeScaling::Type::kLinear) {
    w.AddString(key("rope.scaling.type"), "linear");
    w.AddF32(key("rope.scaling.factor"), static_cast<float>(c.rope_scaling.factor));
  }
  ASSIGN_OR_RETURN(TokenizerIds ids, AddTokenizerToGguf(tokenizer_json, tokenizer_config, w));
  // config.json's bos and its other end-of-generation ids, where the
  // tokenizer's own files do not name them (llama.cpp keeps one eos plus an
  // end-of-turn and an end-of-message token).
  if (ids.bos < 0 && c.bos_token_id >= 0 && c.bos_token_id < c.vocab_size) {
    w.AddU32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(c.bos_token_id));
  }
  int64_t eos = ids.eos;
  std::vector<int64_t> extra;
  for (int64_t id : c.eos_token_ids) {
    if (eos < 0) {
      eos = id;
      w.AddU32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(id));
    } else if (id != eos) {
      extra.push_back(id);
    }
  }
  if (extra.size() > 2) {
    return Unimplemented("config.json has " + std::to_string(extra.size() + 1) +
                         " eos ids; GGUF keeps three (eos, eot, eom)");
  }
  // The id whose text names an end of message goes to eom, the other to eot.
  if (extra.size() == 2 && ids.text(extra[0]).find("eom") != std::string::npos) std::swap(extra[0], extra[1]);
  if (!extra.empty()) w.AddU32("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(extra[0]));
  if (extra.size() > 1) w.AddU32("tokenizer.ggml.eom_token_id", static_cast<uint32_t>(extra[1]));

  // Tensors: converted into buffers that live until the file is written.
  std::vector<std::unique_ptr<std::byte[]>> buffers;
  std::vector<float> freqs;
  if (c.rope_scaling.type == RopeScaling::Type::kLlama3) {
    freqs = Llama3RopeFreqFactors(c);
    w.AddTensor("rope_freqs.weight", QuantType::kF32, {static_cast<int64_t>(freqs.size())},
                {reinterpret_cast<const std::byte*>(freqs.data()), freqs.size() * 4});
  }
  const bool permute = GgufPermutesQk(c.architecture);
  std::vector<TensorSpec> specs = ExpectedTensors(c);
  for (const TensorSpec& spec : specs) {
    ASSIGN_OR_RETURN(TensorView t, files.Get(spec.name));
    const std::string gname = HfToGgufName(spec.name);
    const int64_t row = t.shape.back(), rows = t.numel() / row;
    ASSIGN_OR_RETURN(QuantType type, TensorTypeFor(file_type, spec.name, t.shape, c));
    ASSIGN_OR_RETURN(int64_t row_bytes, QuantBytes(type, row));
    auto buf = std::make_unique<std::byte[]>(static_cast<size_t>(row_bytes * rows));
    std::vector<float> x(static_cast<size_t>(row));
    const bool qk = permute && (spec.name.ends_with("q_proj.weight") || spec.name.ends_with("k_proj.weight") ||
                                spec.name.ends_with("q_proj.bias") || spec.name.ends_with("k_proj.bias"));
    if (qk && spec.shape.size() == 1) {
      // A bias: one row whose elements are reordered.
      std::vector<float> in(static_cast<size_t>(row));
      t.Row(0, in.data());
      for (int64_t r = 0; r < row; ++r) x[static_cast<size_t>(GgufRowOfHfRow(r, c.head_dim))] = in[static_cast<size_t>(r)];
      QuantizeRow(type, x.data(), buf.get(), row);
    } else {
      for (int64_t r = 0; r < rows; ++r) {
        t.Row(r, x.data());
        const int64_t dst = qk ? GgufRowOfHfRow(r, c.head_dim) : r;
        QuantizeRow(type, x.data(), buf.get() + dst * row_bytes, row);
      }
    }
    std::vector<int64_t> ne(t.shape.rbegin(), t.shape.rend());
    w.AddTensor(gname, type, std::move(ne), {buf.get(), static_cast<size_t>(row_bytes * rows)});
    buffers.push_back(std::move(buf));
  }
  return w.Write(out_path);
}

}  // namespace crescent::model
