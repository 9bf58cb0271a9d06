// The tensors a ModelConfig requires, by Hugging Face name and shape, and the
// check that a set of weight files holds exactly those shapes.
//
//   model.embed_tokens.weight                        [vocab, hidden]
//   model.layers.{i}.input_layernorm.weight          [hidden]
//   model.layers.{i}.self_attn.{q,k,v}_proj.weight   [q_dim | kv_dim, hidden]
//   model.layers.{i}.self_attn.{q,k,v}_proj.bias     [q_dim | kv_dim]   (qkv_bias)
//   model.layers.{i}.self_attn.o_proj.weight         [hidden, q_dim]
//   model.layers.{i}.self_attn.o_proj.bias           [hidden]           (o_bias)
//   model.layers.{i}.self_attn.{q,k}_norm.weight     [head_dim]         (qk_norm)
//   model.layers.{i}.post_attention_layernorm.weight [hidden]
//   model.layers.{i}.mlp.{gate,up}_proj.weight       [intermediate, hidden]
//   model.layers.{i}.mlp.down_proj.weight            [hidden, intermediate]
//   model.norm.weight                                [hidden]
//   lm_head.weight                                   [vocab, hidden]    (unless tied)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace crescent::model {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  enum class Init { kMatrix, kNorm, kBias, kEmbedding } init = Init::kMatrix;
};

std::string LayerTensorName(int64_t layer, std::string_view suffix);  // "model.layers.3.<suffix>"

std::vector<TensorSpec> ExpectedTensors(const ModelConfig& config);

// Every expected tensor is present with the expected shape and a supported dtype.
// Tied models may still ship lm_head.weight; it is then checked too.
Status ValidateWeights(const ModelConfig& config, const WeightFiles& weights);

}  // namespace crescent::model
