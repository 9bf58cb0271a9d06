// The bf16 flash-attention kernel behind PagedAttention (kernels-internal: the
// engine calls PagedAttention, which picks this kernel by the KV dtype alone).
//
// One call attends one block of query tokens of one sequence for one KV head:
// the block's rows (query tokens x the query heads of the group) are packed to
// bf16, 16 rows to a vector (a lane per row), and the keys stream through in
// chunks of 32 tokens at fixed positions (multiples of 32), so
//   S  = Q K^T  is vdpbf16ps with each key's d-pairs broadcast straight from its
//               page (no repacking of K), or with AMX one tile product of the
//               page's 16 K rows (A, loaded from the page) by the packed Q (B);
//   softmax     is vertical (a running max and sum per lane, f32), in log2
//               units (log2 e folded into Q's scale, so P = 2^(s - max) by a
//               degree-4 polynomial, relative error < 3e-6, far inside u);
//               chunks that every lane of a vector sees whole skip the masks
//               (all-true masks change no bit); the running sum adds the
//               bf16-rounded P that P V uses (a dot product with ones);
//   O += P V    is vdpbf16ps with P rounded to bf16 and V re-paired per chunk,
//               or with AMX a tile product of V^T (re-paired and transposed)
//               by P (B, already in pairs of keys), into O^T.
// Accumulation is f32 throughout; Q (after scaling) and P are rounded to bf16
// (round to nearest even, denormals to zero), K and V are bf16 already; a
// rescale below 2^-126 is set to 0 rather than left an f32 denormal, so no
// bit depends on the thread's FTZ/DAZ setting.
//
// Error bound (stated in attention.h, tested in attention_bf16_test.cc):
// against exact attention on the same bf16 K/V, with u = 2^-8 and A_r = scale
// * sum_d |q_d k_d| maximised over the row's keys,
//   |o - o_exact| <= (4 u A_r + 3 u) * max|v| + u |o_exact|
// (first order in u; the f32 running sums over n keys add at most about
// n 2^-24 max|v|, inside the bound's slack up to ~32K keys).
//
// Determinism: for finite K/V, a row's output depends only on its own query,
// position and the keys it sees, never on the other rows of its block, its
// block's size or the step's batch (each lane's arithmetic is the same
// sequence of operations: chunks at absolute positions, masked keys adding
// exact zeros, sums in a fixed order). So a token's attention is bitwise the
// same whether it is prefilled in one step, in chunks split anywhere, after a
// prefix-cache hit, or recomputed after preemption; across a P/D pair it is
// the same when both machines run the same variant (AMX and vdpbf16ps round
// alike but are not promised to be bit-equal). Unwritten page slots past the
// last key may hold anything (NaN included): they are masked or zeroed. A
// non-finite V of a key that a row does not see can still reach that row
// (0 x inf), as in the f32 kernel: K/V are finite in a healthy model.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/attention.h"

namespace crescent::kernels::internal {

// Whether this build has the kernel (AVX512-BF16 targeted at compile time)
// and it applies to this head dimension (a multiple of 8, <= 256).
bool Bf16FlashApplies(int64_t head_dim);

// Whether the AMX variant applies: this build targets AMX-BF16, the kernel
// granted the tile state, and head_dim is a multiple of 32 (<= 256). It
// computes S = K x Qp and O^T += V^T x P as tile products (TDPBF16PS) with the
// same chunks, masks and softmax, so the same bound and determinism hold.
bool AmxFlashApplies(int64_t head_dim);

// Query tokens per block for a GQA group size: about 128 rows (8 vectors), so
// each K/V chunk fetched from the pool serves 128 rows (64 measured ~15%
// slower at 16K keys; 256 no faster).
int64_t Bf16FlashBlockTokens(int64_t group);

// Attends query tokens [i0, i1) of `s` for KV head g; out as in PagedAttention.
void Bf16FlashBlock(const AttentionParams& p, const KvLayerView& kv, const AttentionSeq& s, int64_t g, int64_t i0,
                    int64_t i1, const float* q, int64_t q_stride, uint16_t* out, std::vector<float>& scratch, bool amx);
void Bf16FlashBlock(const AttentionParams& p, const KvLayerView& kv, const AttentionSeq& s, int64_t g, int64_t i0,
                    int64_t i1, const float* q, int64_t q_stride, float* out, std::vector<float>& scratch, bool amx);

}  // namespace crescent::kernels::internal
