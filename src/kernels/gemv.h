// GemvBf16Blocked: y[m, n] (+)= x[m, k] · Wᵀ (+ bias) for m <= kGemvMaxRows,
// reading W in oneDNN's blocked bf16 layout "BA16a64b2a":
//
//   [ceil(N/64) blocks][ceil(K/32) blocks][16 k-pairs][64 n][2 k]   zero-padded
//
// For one block of 64 outputs all of K streams contiguously, and each 64-byte
// load holds 16 outputs x one k-pair: exactly vdpbf16ps's operand against a
// broadcast (x[2p], x[2p+1]). No horizontal sums; threads split the N blocks so
// each streams one contiguous range. Rows go four at a time (16 accumulators)
// and K in 256 KB slices of a block, so only the first row group reads a slice
// from memory and the others find it in L2. This is the decode (small batch)
// path: memory-bound at M = 1, so the goal there is streaming bandwidth; up to
// M = 32 it also beats oneDNN's brgemm on this layout (bench/kernels_bench.cc).
// Requires AVX512-BF16 (kGemvAvailable). Thread-safe; runs on the default pool.
#pragma once

#include <cstdint>

namespace crescent::kernels {

constexpr int64_t kGemvMaxRows = 32;
#if defined(__AVX512BF16__)
constexpr bool kGemvAvailable = true;
#else
constexpr bool kGemvAvailable = false;
#endif

// w: blocked weights for [K, N]; x: [m, k] bf16; y: [m, n] f32; bias: [n] or null.
// REQUIRES: kGemvAvailable, 1 <= m <= kGemvMaxRows.
void GemvBf16Blocked(const uint16_t* w, int64_t n, int64_t k, const uint16_t* x, int64_t m, const float* bias,
                     float* y, bool accumulate);

}  // namespace crescent::kernels
