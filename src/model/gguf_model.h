// A GGUF model as crescent's model parts: where its files are, its config
// (from the {arch}.* metadata), and its tensors under Hugging Face names.
//
// Paths: `x.gguf`, a split set named by any of its parts (`x-00001-of-00003.gguf`:
// every part must be there, split.count agrees), or a folder that holds one
// GGUF model and no config.json.
//
// Architectures: llama (Llama 3; Llama 2 and Mistral files carry SentencePiece
// tokenizers, which model/gguf_tokenizer.h refuses for now), qwen2, qwen3. Names:
//   token_embd.weight -> model.embed_tokens.weight    output.weight -> lm_head.weight
//   output_norm.weight -> model.norm.weight           blk.N.attn_norm -> input_layernorm
//   blk.N.attn_{q,k,v,output} -> self_attn.{q,k,v,o}_proj (weight and bias)
//   blk.N.attn_{q,k}_norm -> self_attn.{q,k}_norm      blk.N.ffn_norm -> post_attention_layernorm
//   blk.N.ffn_{gate,up,down} -> mlp.{gate,up,down}_proj
// llama.cpp's converter reorders the rows of llama's q and k within each head
// for its interleaved RoPE (row 2j+i of a head holds Hugging Face row
// i*head_dim/2 + j), biases too; the reader puts them back, so the rotate-half RoPE of the
// engine sees Hugging Face's weights. Llama 3's rope_freqs.weight is matched to
// the llama3 rope scaling it was computed from (other frequency tables are
// refused). An unknown architecture or tensor is an error naming it.
// Thread-safety: functions of their arguments.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "model/gguf.h"
#include "model/model_config.h"

namespace crescent::model {

// The GGUF files of the model at `path` in split order, or nullopt when `path`
// is not a GGUF model (a safetensors folder). Errors for a broken split set or
// a folder with several GGUF models.
Result<std::optional<std::vector<std::string>>> FindGgufModel(const std::string& path);

// Opens every part of a split set (or the one file) and checks split.* agree.
Result<std::vector<GgufFile>> OpenGgufModel(const std::vector<std::string>& files);

// The config of the model (metadata from the first part; biases and tied
// embeddings from which tensors exist), checked as config.json would be.
Result<ModelConfig> GgufModelConfig(const std::vector<GgufFile>& parts);

// The Hugging Face name of a GGUF tensor ("" for tensors crescent derives
// elsewhere, like rope_freqs.weight); an error for one it does not know.
Result<std::string> GgufToHfName(const std::string& gguf_name);
// The inverse, for writers.
std::string HfToGgufName(const std::string& hf_name);

// Row order between Hugging Face's q/k and llama.cpp's for `rows` rows of
// heads of `head_dim`: the GGUF row that holds Hugging Face row r.
int64_t GgufRowOfHfRow(int64_t r, int64_t head_dim);
// Whether the architecture's q/k rows are reordered in GGUF (llama yes, qwen no).
bool GgufPermutesQk(Architecture a);

// llama3 rope scaling's per-dimension frequency divisors (what rope_freqs.weight holds).
std::vector<float> Llama3RopeFreqFactors(const ModelConfig& c);

}  // namespace crescent::model
