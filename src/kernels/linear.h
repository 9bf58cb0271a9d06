// Linear: y[M, N] (+)= x[M, K] · Wᵀ + b, through oneDNN's matmul.
//
// W arrives in Hugging Face layout [N, K] (out_features x in_features), bf16 or
// f32. At Create it is reordered once into oneDNN's blocked layout (chosen with
// format_tag::any), the layout its brgemm kernels need to run at memory speed
// for M = 1; the reordered buffer is anonymous memory owned by the Linear, so the
// source (an mmapped file) may be dropped afterwards. Activations x are bf16 for
// bf16 weights and f32 for f32 weights; y is always f32; accumulation is f32.
//
// Primitives are built lazily per (M, accumulate) and cached.
//
// CreateQuantized holds ggml block-quantized weights instead (kernels/
// quant_matmul.h: integer dot products on int8-quantized activations, every
// M); its dtype() is the activations' (bf16 or f32). With bf16 activations,
// M > 32 (prefill) dequantizes the weights to bf16 a chunk of columns at a
// time into a buffer per thread that stays in L2, and multiplies each chunk
// there with oneDNN: threads take chunks in turn on the hot team
// (base/thread_pool.h), each running single-threaded primitives.
// Thread-safety: Forward may be called from one thread at a time (the engine's
// step thread); it runs on all cores (oneDNN's OpenMP team or the hot team).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "base/dtype.h"
#include "base/status.h"
#include "kernels/quant_matmul.h"

namespace crescent::kernels {

class Linear {
 public:
  // weights: [N, K] row-major in `dtype`; bias: [N] f32 or nullptr.
  static Result<Linear> Create(int64_t n, int64_t k, DType dtype, const void* weights, const float* bias);
  // segments: consecutive groups of output rows, each in one block type;
  // activations in `act` (bf16 or f32).
  static Result<Linear> CreateQuantized(int64_t k, std::span<const QuantSegment> segments, const float* bias,
                                        DType act = DType::kBF16);
  Linear();
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;
  Linear(const Linear&) = delete;
  Linear& operator=(const Linear&) = delete;

  int64_t n() const;
  int64_t k() const;
  DType dtype() const;
  // Bytes of weights read by one Forward (the reordered buffer).
  int64_t weight_bytes() const;

  // x: [M, K] in dtype() (bf16 as uint16_t bits, or f32); y: [M, N] f32.
  // With accumulate, y += x·Wᵀ + b (the residual add is fused into the matmul).
  void Forward(const void* x, int64_t m, float* y, bool accumulate = false) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace crescent::kernels
