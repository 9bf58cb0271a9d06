// QuantMatmul: y[M, N] (+)= x[M, K] · Wᵀ (+ bias) with W in a ggml block type
// (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; base/quant.h), computed in integers: each row
// of x is quantized to int8 per block of 32 (scale max|x|/127, round half to
// even) and each weight sub-block's integer dot product is scaled once. (ggml
// does the same for Q8_0/Q4_0 with round-half-away; for the K-quants it
// quantizes x per 256 with one scale, so results differ from llama.cpp's by
// the activations' rounding, not only by summation order.) Against a
// dequantize-then-multiply in f32 the result differs only by the
// activations' 8-bit rounding (the tests bound it) and f32 summation order:
// every type keeps its scales exactly (Q4_0's min, 8 d, in f16; the
// K-quants' integer scales times their f16 d and dmin, exact in f32).
// NaN or infinite activations make their block's outputs NaN.
//
// Layout (repacked at Pack, owned anonymous memory): W's rows in tiles of 64.
// Within a tile, for each K sub-block of 32 elements:
//   values  4 groups of 16 rows; a 64-byte register holds 16 rows x 4 k bytes
//           (int8 + 128 for Q8_0) or 16 rows x 8 k nibbles (Q4_0, Q4_K,
//           Q5_K: byte i of a row holds k = i and k = i + 4); Q5_K's group
//           has a fifth register of its 5th bits (byte i: k = i + 4t at bit t)
//   scales  Q8_0, Q4_0: 64 f16, the sub-block's scale per row (Q4_0: d), and
//           for Q4_0 64 f16 mins (8 d); Q4_K, Q5_K: 64 bytes of the 6-bit
//           scale and 64 of the 6-bit min, and after every 8 sub-blocks the
//           f16 d and dmin of the 64 rows (x = d * sc * v - dmin * m)
// so one vpdpbusd multiplies 16 rows by 4 k against a broadcast of 4
// activation bytes, all of one tile's K streams contiguously, and threads
// split the tiles. Q4_K reads 4.625 bits per weight and Q5_K 5.625 (ggml
// packs the 6-bit pairs into 4.5 and 5.5; an f16 scale and min per 32, as
// before, read 5 and, with Q5_K's values in bytes, 9). Q6_K keeps ggml's own
// parts per 256 elements: the 6-bit
// values as a nibble plane and a 2-bit plane in the same register order, the
// int8 scales per 16 and d, so it reads 6.5625 bits per weight as ggml does.
// A matrix may be made of segments of different types along N (a fused
// q|k|v whose v is Q6_K in a Q4_K_M file).
//
// At M = 1 (decode) a thread walks two of its tiles side by side (the two
// halves of its part of each segment, in one kernel), so two streams of
// weights are in flight per core; one stream left memory idle for the 4- and
// 6-bit types (BM_Quant M = 1, 2048 x 8192 from DRAM: Q4_K 24 -> 27-28,
// Q6_K 19 -> 23-24 GB/s; Q8_0 unchanged within 27-31).
//
// AVX512-VNNI where the build targets it; a portable loop otherwise (same
// layout, same results up to f32 summation order; the tile kernels are in
// quant_tile.h). Thread-safe after Pack;
// Forward runs on the default pool.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/quant.h"
#include "base/status.h"

namespace crescent::kernels {

struct QuantSegment {
  QuantType type;
  int64_t rows;        // output rows (N) of this segment
  const void* data;    // rows x QuantBytes(type, k), ggml block rows
};

class QuantMatmul {
 public:
  // Every segment's type must be block-quantized and k a multiple of its block.
  static Result<QuantMatmul> Pack(int64_t k, std::span<const QuantSegment> segments, const float* bias);
  QuantMatmul();
  ~QuantMatmul();
  QuantMatmul(QuantMatmul&&) noexcept;
  QuantMatmul& operator=(QuantMatmul&&) noexcept;

  int64_t n() const;
  int64_t k() const;
  // Bytes one Forward reads of weights (the packed tiles).
  int64_t weight_bytes() const;

  // Writes W's tiles [t0, t1) (output rows 64 t0 .. 64 t1, zero past n) as
  // bf16 in oneDNN's blocked layout BA16a64b2a for [K, 64 (t1 - t0)] (see
  // kernels/gemv.h), the weights of a bf16 matmul over those rows: prefill
  // shapes run there a chunk at a time (kernels/linear.h). Runs on the calling
  // thread; out is 64 (t1 - t0) K elements. False (nothing written) when the
  // build lacks AVX512-BF16, -VNNI or -VBMI, or a segment other than the last
  // is not whole tiles of 64 rows.
  bool DequantizeBf16Blocked(int64_t t0, int64_t t1, uint16_t* out) const;
  bool CanDequantizeBf16Blocked() const;
  // ceil(n / 64): the tiles DequantizeBf16Blocked numbers, where every
  // segment but the last is whole tiles (CanDequantizeBf16Blocked); with
  // partial segments the packed form holds more tiles than this.
  int64_t tiles() const;
  const float* bias() const;         // [n] or null

  // x: [m, k] bf16 bits (or f32 with x_f32); y: [m, n] f32. With accumulate, y += x·Wᵀ + b.
  void Forward(const uint16_t* x, int64_t m, float* y, bool accumulate = false) const;
  void ForwardF32(const float* x, int64_t m, float* y, bool accumulate = false) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether this build has the VNNI kernel (else the portable loop runs).
bool QuantMatmulVectorized();
// Tests: run the portable loop even where the VNNI kernel exists (process-wide).
void SetQuantMatmulPortableForTesting(bool portable);

}  // namespace crescent::kernels
