// Causal GQA attention that reads K and V straight from KV pages.
//
// Page layout (DESIGN.md), per layer:
//   K pages: [num_pages][kv_heads][page_tokens][head_dim] in the KV dtype (bf16 by
//   default, f32 for full-precision runs), V pages likewise.
// A sequence's block table lists its pages in token order: token t lives in page
// block_table[t / page_tokens], slot t % page_tokens.
//
//   tokens:  0 .............. start_pos-1 | start_pos ... start_pos+n-1
//            (already in pages: a cached   (this step's queries; their K/V are
//             prefix or earlier steps)      written to pages before attention)
//
// Query token at position p attends to keys [max(0, p-window+1), p]. Query head
// h uses KV head h / (num_heads / num_kv_heads). Thread-safe for disjoint
// outputs; parallelizes itself over (sequence, kv head, block of query tokens)
// on the default ThreadPool.
//
// Two kernels, chosen by the KV dtype and the build alone (never by the shape
// of the step, so a token's result does not depend on how it was batched):
//  - bf16 KV on a CPU with AVX512-BF16 (head_dim a multiple of 8): the flash
//    kernel of attention_bf16.h, Q and P rounded to bf16, products in AMX
//    tiles where the CPU has AMX-BF16 (head_dim a multiple of 32), else in
//    vdpbf16ps; f32 accumulation and softmax. Its bound against exact attention
//    on the same K/V, u = 2^-8, A = scale * max over keys of sum_d |q_d k_d|:
//      |o - o_exact| <= (4 u A + 3 u) * max|v| + u |o_exact|
//    (tested; first order, to ~32K keys). For finite K/V a row's output is
//    bitwise independent of the other rows of the step: prefill in one step or
//    in chunks, after a prefix-cache hit or a preemption give identical bits
//    (and across a P/D split when both sides run the same variant).
//  - f32 KV (--dtype float32), or no AVX512-BF16: math in f32 (error ~1e-6),
//    the reference the bf16 kernel is tested against.
#pragma once

#include <cstdint>
#include <span>

#include "base/dtype.h"

namespace crescent::kernels {

struct KvLayerView {
  void* k = nullptr;  // [num_pages][kv_heads][page_tokens][head_dim] of `dtype`
  void* v = nullptr;
  DType dtype = DType::kBF16;  // kBF16 or kF32
  int64_t page_tokens = 16;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t page_elems() const { return kv_heads * page_tokens * head_dim; }
};

struct AttentionSeq {
  const int32_t* block_table = nullptr;  // covers start_pos + num_tokens tokens
  int64_t start_pos = 0;
  int64_t num_tokens = 0;
  int64_t row = 0;  // index of this sequence's first query row in the batch
};

enum class AttentionKernel : uint8_t {
  kAuto,
  kF32,         // f32 math (bf16 or f32 KV)
  kBf16Avx512,  // bf16 flash, vdpbf16ps
  kBf16Amx,     // bf16 flash, AMX tiles
};

struct AttentionParams {
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;          // usually 1/sqrt(head_dim)
  int64_t sliding_window = 0;  // 0 = unlimited
  // kAuto picks by the KV dtype and the machine (above); the others force a
  // kernel (references, tests, benchmarks) and CHECK that it is available.
  AttentionKernel kernel = AttentionKernel::kAuto;
};

// Whether `k` runs here for this KV dtype and head_dim; the kernel kAuto picks.
bool AttentionKernelAvailable(AttentionKernel k, DType kv_dtype, int64_t head_dim);
AttentionKernel AutoAttentionKernel(DType kv_dtype, int64_t head_dim);
const char* AttentionKernelName(AttentionKernel k);

// Stores each sequence's new K/V rows into its pages (converted to the KV dtype).
// k, v: row r at k + r * stride, kv_heads * head_dim values each.
void WriteKvPages(const KvLayerView& kv, std::span<const AttentionSeq> seqs, const float* k,
                  const float* v, int64_t stride);

// q: row r at q + r * q_stride (num_heads * head_dim values);
// out: row r at out + r * num_heads * head_dim, bf16.
void PagedAttention(const AttentionParams& p, const KvLayerView& kv, std::span<const AttentionSeq> seqs,
                    const float* q, int64_t q_stride, uint16_t* out);

// The same math with f32 output (tests and references).
void PagedAttentionF32(const AttentionParams& p, const KvLayerView& kv, std::span<const AttentionSeq> seqs,
                       const float* q, int64_t q_stride, float* out);

}  // namespace crescent::kernels
