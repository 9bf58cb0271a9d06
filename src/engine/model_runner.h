// ModelRunner: one forward pass of a decoder-only transformer over a flattened
// batch of sequences, reading and writing K/V in a KvPagePool.
//
// Each ForwardSeq contributes `tokens` (its next prompt chunk, or its one newest
// token in decode) at positions start_pos.. . All sequences' tokens are stacked
// into one [T, hidden] activation so each projection is a single matmul over the
// whole batch; only attention looks at sequences one by one.
//
//   per layer:  h = rmsnorm(x)             -> bf16 [T, hidden]
//               qkv = h · Wqkvᵀ (+b)       -> f32  [T, q_dim + 2 kv_dim]  (fused q|k|v)
//               (q,k) = rope(qk_norm(q,k)); K/V rows -> pages
//               a = attention(q, pages)    -> bf16 [T, q_dim]
//               x += a · Woᵀ               (residual fused into the matmul)
//               h = rmsnorm(x); gu = h · Wguᵀ -> f32 [T, 2 * intermediate]
//               x += (silu(g) * u) · Wdownᵀ
//   logits for the last token of each sequence that asks: rmsnorm -> lm_head.
//
// Weights are copied out of the mapped files at Load into oneDNN's reordered
// buffers (anonymous memory); block-quantized weights (a GGUF file, or
// RunnerOptions::quantization) into kernels/quant_matmul.h's tiles, which
// compute on int8-quantized activations. The compute dtype (vLLM's --dtype) is bf16 for bf16
// models by default: bf16 matmul inputs, bf16 KV pages, f32 accumulation and f32
// everywhere else. float32 runs weights, activations and KV in f32 (half the
// speed, for reference checks and f16/f32 models).
// Thread-compatible: one caller at a time (the engine's step thread); the work
// itself runs on all cores.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/kv_cache.h"
#include "model/model_config.h"

namespace crescent::engine {

struct ForwardSeq {
  std::span<const int32_t> tokens;  // new tokens, at positions start_pos ...
  int64_t start_pos = 0;            // tokens already in kv
  SequenceKv* kv = nullptr;         // REQUIRES: pages cover start_pos + tokens.size()
  bool want_logits = true;          // logits of the last new token
  bool all_logits = false;          // logits of every new token (their rows in order; the last is the one above)
};

struct RunnerOptions {
  // nullopt = auto: bf16 when every matrix in the files is bf16, else f32.
  std::optional<DType> dtype;
  // Quantize the matrices at load as a GGUF of this type would hold them
  // ("q8_0", "q4_k_m", ...; model/gguf_convert.h); "" keeps the files' types.
  // Tensors already block-quantized (a GGUF) are kept as they are.
  std::string quantization;
  // The reference path: block-quantized weights dequantized at load and run
  // by the dense kernels in `dtype` (f32 for checks), no integer arithmetic.
  bool dequantize = false;
  // Called as tensors load: (done, total). May be empty.
  std::function<void(int64_t, int64_t)> progress;
};

// "auto" | "bfloat16" | "float32" (as vLLM's --dtype; also "bf16", "f32").
Result<std::optional<DType>> ParseComputeDType(const std::string& name);

// A model's identity without any KV geometry: its config and weights' content
// (what a front that loads no weights checks instances against).
Hash128 ModelHash(const model::ModelConfig& config, const Hash128& weights_hash);

class ModelRunner {
 public:
  // Loads config.json and the safetensors weights of a model folder.
  static Result<std::unique_ptr<ModelRunner>> Load(const std::string& dir, const RunnerOptions& options = {});
  ~ModelRunner();

  const model::ModelConfig& config() const;
  DType dtype() const;  // compute dtype = KV dtype
  KvCacheShape kv_shape(int64_t page_tokens = 16) const;
  // Weight bytes one decode step reads (every projection and the lm_head).
  int64_t weight_bytes_per_step() const;
  // XXH3-128 of every tensor's content (model/weights_hash.h).
  const Hash128& weights_hash() const;
  // The model's KV fingerprint (base/kv_identity.h) for this geometry.
  Hash128 KvFingerprint(int64_t page_tokens, int64_t chunk_tokens) const;
  // FLOPs of a forward over `new_tokens` tokens after `start_pos` cached ones
  // (matmuls, attention, and the lm_head for one row).
  double ForwardFlops(int64_t start_pos, int64_t new_tokens) const;

  // Writes K/V of every sequence's new tokens to its pages and, for those with
  // want_logits, the next-token logits (f32 [count, vocab], in order) into *logits
  // (a sequence with all_logits has one row per new token there).
  // Validates token ids and page coverage (InvalidArgument / OutOfRange).
  // `layer_written` (may be empty): called on the calling thread with l = 0, 1,
  // ... as soon as layer l's K/V of every new token are in the pages, before
  // layer l + 1 starts; this forward never writes layer l's pages again, so
  // the hook may start moving them (a prefill instance streaming its KV to a
  // decode instance while the following layers compute). It must not block
  // for long: the forward waits for it.
  Status Forward(std::span<const ForwardSeq> seqs, KvPagePool& pool, std::vector<float>* logits,
                 const std::function<void(int64_t layer)>& layer_written = {});

 private:
  ModelRunner();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace crescent::engine
