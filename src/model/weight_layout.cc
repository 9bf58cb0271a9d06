#include "model/weight_layout.h"

namespace crescent::model {

std::string LayerTensorName(int64_t layer, std::string_view suffix) {
  return "model.layers." + std::to_string(layer) + "." + std::string(suffix);
}

std::vector<TensorSpec> ExpectedTensors(const ModelConfig& c) {
  using I = TensorSpec::Init;
  std::vector<TensorSpec> t;
  const int64_t h = c.hidden_size;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, I::kEmbedding});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    auto n = [&](std::string_view s) { return LayerTensorName(l, s); };
    t.push_back({n("input_layernorm.weight"), {h}, I::kNorm});
    t.push_back({n("self_attn.q_proj.weight"), {c.q_dim(), h}, I::kMatrix});
    t.push_back({n("self_attn.k_proj.weight"), {c.kv_dim(), h}, I::kMatrix});
    t.push_back({n("self_attn.v_proj.weight"), {c.kv_dim(), h}, I::kMatrix});
    if (c.qkv_bias) {
      t.push_back({n("self_attn.q_proj.bias"), {c.q_dim()}, I::kBias});
      t.push_back({n("self_attn.k_proj.bias"), {c.kv_dim()}, I::kBias});
      t.push_back({n("self_attn.v_proj.bias"), {c.kv_dim()}, I::kBias});
    }
    t.push_back({n("self_attn.o_proj.weight"), {h, c.q_dim()}, I::kMatrix});
    if (c.o_bias) t.push_back({n("self_attn.o_proj.bias"), {h}, I::kBias});
    if (c.qk_norm) {
      t.push_back({n("self_attn.q_norm.weight"), {c.head_dim}, I::kNorm});
      t.push_back({n("self_attn.k_norm.weight"), {c.head_dim}, I::kNorm});
    }
    t.push_back({n("post_attention_layernorm.weight"), {h}, I::kNorm});
    t.push_back({n("mlp.gate_proj.weight"), {c.intermediate_size, h}, I::kMatrix});
    t.push_back({n("mlp.up_proj.weight"), {c.intermediate_size, h}, I::kMatrix});
    t.push_back({n("mlp.down_proj.weight"), {h, c.intermediate_size}, I::kMatrix});
  }
  t.push_back({"model.norm.weight", {h}, I::kNorm});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, h}, I::kMatrix});
  return t;
}

namespace {
std::string ShapeString(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}
}  // namespace

Status ValidateWeights(const ModelConfig& config, const WeightFiles& weights) {
  std::vector<TensorSpec> specs = ExpectedTensors(config);
  if (config.tie_word_embeddings && weights.Has("lm_head.weight")) {
    specs.push_back({"lm_head.weight", {config.vocab_size, config.hidden_size}, TensorSpec::Init::kMatrix});
  }
  for (const TensorSpec& spec : specs) {
    ASSIGN_OR_RETURN(TensorView v, weights.Get(spec.name));
    if (v.shape != spec.shape) {
      return InvalidArgument("tensor '" + spec.name + "' has shape " + v.ShapeString() +
                             " but config.json implies " + ShapeString(spec.shape));
    }
  }
  return Status::Ok();
}

}  // namespace crescent::model
