// The packed form of QuantMatmul's weights and the kernels that multiply one
// tile of it (internal to kernels/; quant_matmul.h is the interface and
// describes the layout): tiles of kTile output rows, and for each the
// results of up to kMaxMt rows of quantized activations. Tiles() runs the
// AVX512-VNNI kernels where the build targets them and a portable loop
// otherwise (or when SetPortable(true)); both give the same results up to
// f32 summation order. Pure functions of their inputs: thread-safe.
#pragma once

#include <cstdint>

#include "base/check.h"
#include "base/large_buffer.h"
#include "base/quant.h"

namespace crescent::kernels::quant_tile {

constexpr int64_t kTile = 64;  // output rows per tile
constexpr int kMaxMt = 4;      // activation rows per kernel call

// kS8: int8 + 128 per byte; kU4: nibbles with a min;
// kK4, kK5: Q4_K and Q5_K with ggml's own scales (the 6-bit scale and min per
// 32 as bytes, f16 d and dmin per 256): 4.625 and 5.625 bits per weight;
// kQ6: Q6_K as ggml stores it, 6-bit values (a nibble plane and a 2-bit
// plane), int8 scales per 16 and an f16 d per 256 (6.5625 bits per weight).
enum class Kind { kS8, kU4, kK4, kK5, kQ6 };
inline bool ByteScales(Kind k) { return k == Kind::kK4 || k == Kind::kK5; }

struct Format {
  Kind kind;
  int s;         // sub-block elements
  bool has_min;
};

inline Format FormatOf(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0: return {Kind::kS8, 32, false};
    case QuantType::kQ6_K: return {Kind::kQ6, 256, false};
    case QuantType::kQ4_0: return {Kind::kU4, 32, true};
    case QuantType::kQ4_K: return {Kind::kK4, 32, true};
    case QuantType::kQ5_K: return {Kind::kK5, 32, true};
    default: CHECK(false) << "not a block type"; return {};
  }
}

// kQ6 layout inside one 256-element block of a tile: 8 units of 32 k; per
// unit and group of 16 rows 4 nibble registers (k 8j..8j+7: low nibble k,
// high k + 4) then 2 plane registers (k 16h..16h+15: byte i holds k = i + 4t
// at bits 2t); then int8 scales [16 sub-blocks][64 rows]; then f16 d [64].
constexpr int64_t kQ6Unit = 4 * 384, kQ6Values = 8 * kQ6Unit, kQ6Scales = 16 * 64, kQ6Block = kQ6Values + kQ6Scales + 128;
// kK4 and kK5 layout of one 256-element block of a tile: 8 sub-blocks of 32
// k, each its values then uint8 scales [64 rows] and uint8 mins [64]; then
// f16 d [64] and f16 dmin [64]: x = d * sc * v - dmin * m. The values per
// group of 16 rows: kU4's 4 nibble registers, and for kK5 then a register of
// the 5th bits (byte i of a row holds k = i + 4t at bit t, t = 0..7).
constexpr int64_t kK4Group = 4 * 64, kK5Group = 5 * 64;

struct Segment {
  Format f;
  int64_t n0 = 0, rows = 0, tiles = 0;
  int64_t vbytes = 0, sub_stride = 0, tile_stride = 0;
  int64_t block_stride = 0;  // kK4, kK5: bytes per 256 k (8 sub-blocks, d, dmin)
  LargeBuffer packed;  // zeroed, huge pages where allowed
};
// The offset in a tile of sub-block b (32 k, or g.f.s) for kinds other than kQ6.
inline int64_t SubOffset(const Segment& g, int64_t b) {
  return ByteScales(g.f.kind) ? (b / 8) * g.block_stride + (b % 8) * g.sub_stride : b * g.sub_stride;
}
// kK4, kK5: the offset of the f16 d [64] (then dmin [64]) of the block holding sub-block b.
inline int64_t SupersOffset(const Segment& g, int64_t b) { return (b / 8) * g.block_stride + 8 * g.sub_stride; }
// One activation row, quantized per block of 32.
struct ActRow {
  const int8_t* xq;
  const float* dx;     // [k / 32]
  const int32_t* xs;   // [k / 16] sums of xq
};

// x[0, k), k a multiple of 32, to one activation row: per block of 32,
// dx = max|x| / 127 (NaN when the block holds a NaN or an infinity, so it
// reaches the outputs as in a float matmul), xq = x * (1 / dx) clamped to
// +-127 and rounded half to even (0 where that product is not finite: dx NaN,
// or 1 / dx overflowing for a block of tiny values; all 0 when dx is 0),
// xs = sums of xq per 16. The vector form (AVX-512, unless SetPortable(true))
// writes the same bytes as the portable loop.
void QuantizeActivations(const float* x, int64_t k, int8_t* xq, float* dx, int32_t* xs);

// nt tiles (1, or 2 with mt = 1: two streams of weights at once), each with
// its own kTile x mt outputs (row-major by activation row), over all of k.
void Tiles(const Segment& g, const uint8_t* const* tiles, int64_t k, const ActRow* a, int mt, int nt,
           float* const* outs);

// Whether Tiles() has vectorized kernels in this build; SetPortable(true)
// makes it and QuantizeActivations() use the portable loops (for tests).
bool Vectorized();
void SetPortable(bool portable);

}  // namespace crescent::kernels::quant_tile
