// A Hugging Face model folder (safetensors, config.json, tokenizer.json) to one
// GGUF file in the layout llama.cpp's convert_hf_to_gguf.py and llama-quantize
// write (the values are crescent's quantizers': min/max fits, not ggml's
// searched ones, so slightly less accurate than llama-quantize's):
// the {arch}.* metadata, the tokenizer (model/gguf_tokenizer.h), llama's q/k
// rows in llama.cpp's order, Llama 3's rope_freqs.weight, and tensors in
//
//   f32 | f16 | bf16   every matrix in that type
//   q8_0               every matrix Q8_0 (the embedding too)
//   q4_k_m | q5_k_m    Q4_K (Q5_K); output.weight (or a tied embedding) Q6_K;
//                      attn_v and ffn_down Q6_K on llama.cpp's "more bits" layers
//   q4_0 | q4_k | q5_k | q6_k   every matrix that type ("pure", for tests)
//
// 1-D tensors (norms, biases) are always F32. A matrix whose rows are not whole
// blocks of the chosen type falls back to Q8_0, then F16 (llama.cpp goes to
// Q5_0/Q5_1, which crescent does not read). Single-threaded; the whole file
// is built in memory before it is written (about twice its size at peak).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/quant.h"
#include "base/status.h"
#include "model/model_config.h"

namespace crescent::model {

Status ConvertToGguf(const std::string& model_dir, const std::string& out_path, std::string_view file_type);

// The type a tensor (Hugging Face name and shape) gets in `file_type`, by the
// rules above; InvalidArgument for an unknown file type. The same choice for
// a GGUF file and for `--quantization` at load (matrices and the embedding),
// so both hold the same values.
Result<QuantType> TensorTypeFor(std::string_view file_type, const std::string& hf_name,
                                const std::vector<int64_t>& shape, const ModelConfig& c);

}  // namespace crescent::model
