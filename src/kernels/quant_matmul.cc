#include "kernels/quant_matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "base/check.h"
#include "base/dtype.h"
#include "base/large_buffer.h"
#include "base/thread_pool.h"
#include "kernels/convert.h"
#include "kernels/quant_tile.h"

namespace crescent::kernels {

namespace {

using quant_tile::ActRow;
using quant_tile::Format;
using quant_tile::FormatOf;
using quant_tile::ByteScales;
using quant_tile::kK4Group;
using quant_tile::kK5Group;
using quant_tile::Kind;
using quant_tile::kMaxMt;
using quant_tile::kQ6Block;
using quant_tile::kQ6Scales;
using quant_tile::kQ6Unit;
using quant_tile::kQ6Values;
using quant_tile::kTile;
using quant_tile::Segment;
using quant_tile::SubOffset;
using quant_tile::SupersOffset;
using quant_tile::Tiles;

// One row of `t` as stored values (the packed form's bytes before
// interleaving), and f32 scale and min per sub-block: x = scale * v - min for
// the types with a min, x = scale * (v - 128) for Q8_0. (Pack keeps the
// K-quants' own scale bytes, d and dmin instead of these products.)
void DecodeRow(QuantType t, const uint8_t* src, int64_t k, uint8_t* v, float* scale, float* min) {
  const int64_t be = QuantBlockElems(t), bb = QuantBlockBytes(t);
  for (int64_t blk = 0; blk < k / be; ++blk, src += bb) {
    uint8_t* vb = v + blk * be;
    switch (t) {
      case QuantType::kQ8_0: {
        const auto* b = reinterpret_cast<const BlockQ8_0*>(src);
        for (int i = 0; i < 32; ++i) vb[i] = static_cast<uint8_t>(b->qs[i] + 128);
        scale[blk] = F16ToF32(b->d);
        break;
      }
      case QuantType::kQ4_0: {
        const auto* b = reinterpret_cast<const BlockQ4_0*>(src);
        for (int j = 0; j < 16; ++j) vb[j] = b->qs[j] & 15, vb[j + 16] = b->qs[j] >> 4;
        scale[blk] = F16ToF32(b->d);
        min[blk] = 8.0f * scale[blk];
        break;
      }
      case QuantType::kQ4_K:
      case QuantType::kQ5_K: {
        const bool five = t == QuantType::kQ5_K;
        const auto* b4 = reinterpret_cast<const BlockQ4K*>(src);
        const auto* b5 = reinterpret_cast<const BlockQ5K*>(src);
        const uint8_t* scales = five ? b5->scales : b4->scales;
        const uint8_t* qs = five ? b5->qs : b4->qs;
        const float d = F16ToF32(five ? b5->d : b4->d), dmin = F16ToF32(five ? b5->dmin : b4->dmin);
        for (int j = 0; j < 8; ++j) {
          uint8_t sc, m;
          KQuantScaleMin(scales, j, &sc, &m);
          scale[blk * 8 + j] = d * sc;
          min[blk * 8 + j] = dmin * m;
          const uint8_t* q = qs + 32 * (j / 2);
          for (int l = 0; l < 32; ++l) {
            int val = j % 2 == 0 ? q[l] & 15 : q[l] >> 4;
            if (five && (b5->qh[l] >> j) & 1) val += 16;
            vb[32 * j + l] = static_cast<uint8_t>(val);
          }
        }
        break;
      }
      default: CHECK(false) << "not a block type";
    }
  }
}

// Q6_K's raw parts of one row: q (0..63) per element, int8 scale per 16, d per 256.
void DecodeQ6Row(const uint8_t* src, int64_t k, uint8_t* q, int8_t* sc, float* d) {
  for (int64_t blk = 0; blk < k / 256; ++blk, src += sizeof(BlockQ6K)) {
    const auto* b = reinterpret_cast<const BlockQ6K*>(src);
    d[blk] = F16ToF32(b->d);
    for (int s = 0; s < 16; ++s) sc[blk * 16 + s] = b->scales[s];
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b->ql + 64 * h;
      const uint8_t* qh = b->qh + 32 * h;
      uint8_t* o = q + blk * 256 + 128 * h;
      for (int l = 0; l < 32; ++l) {
        o[l] = static_cast<uint8_t>((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4));
        o[l + 32] = static_cast<uint8_t>((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4));
        o[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
        o[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
      }
    }
  }
}

}  // namespace

bool QuantMatmulVectorized() { return quant_tile::Vectorized(); }
void SetQuantMatmulPortableForTesting(bool portable) { quant_tile::SetPortable(portable); }

struct QuantMatmul::Impl {
  int64_t n = 0, k = 0, bytes = 0;
  std::vector<Segment> segments;
  std::vector<float> bias;

  void Run(const float* xf, const uint16_t* xb, int64_t m, float* y, bool accumulate) const;
};

QuantMatmul::QuantMatmul() : impl_(std::make_unique<Impl>()) {}
QuantMatmul::~QuantMatmul() = default;
QuantMatmul::QuantMatmul(QuantMatmul&&) noexcept = default;
QuantMatmul& QuantMatmul::operator=(QuantMatmul&&) noexcept = default;

int64_t QuantMatmul::n() const { return impl_->n; }
int64_t QuantMatmul::k() const { return impl_->k; }
int64_t QuantMatmul::weight_bytes() const { return impl_->bytes; }

Result<QuantMatmul> QuantMatmul::Pack(int64_t k, std::span<const QuantSegment> segments, const float* bias) {
  QuantMatmul qm;
  Impl& im = *qm.impl_;
  im.k = k;
  for (const QuantSegment& src : segments) {
    if (!IsBlockQuantized(src.type)) return InvalidArgument("QuantMatmul: segment of a plain type");
    if (k <= 0 || k % QuantBlockElems(src.type) != 0) {
      return InvalidArgument("QuantMatmul: k = " + std::to_string(k) + " is not whole " +
                             std::string(QuantTypeName(src.type)) + " blocks");
    }
    Segment g;
    g.f = FormatOf(src.type);
    g.n0 = im.n;
    g.rows = src.rows;
    g.tiles = (src.rows + kTile - 1) / kTile;
    const int s = g.f.s;
    const Kind kind = g.f.kind;
    g.vbytes = kind == Kind::kS8 ? kTile * s : kTile * s / 2;
    g.sub_stride = g.vbytes + (g.f.has_min ? 4 : 2) * kTile;
    g.tile_stride = (k / s) * g.sub_stride;
    if (kind == Kind::kQ6) g.vbytes = kQ6Values, g.sub_stride = kQ6Block, g.tile_stride = (k / s) * kQ6Block;
    if (ByteScales(kind)) {
      // Byte scale and min per row of a sub-block; d and dmin after 8 of them.
      g.vbytes = 4 * (kind == Kind::kK5 ? kK5Group : kK4Group);
      g.sub_stride = g.vbytes + 2 * kTile;
      g.block_stride = 8 * g.sub_stride + 4 * kTile;
      g.tile_stride = (k / 256) * g.block_stride;
    }
    const size_t total = static_cast<size_t>(g.tiles * g.tile_stride);
    auto buf = LargeBuffer::Allocate(total);
    if (!buf.ok()) return ResourceExhausted("QuantMatmul: no memory for " + std::to_string(total) + " bytes of weights");
    g.packed = std::move(*buf);
    const int64_t row_bytes = QuantBytes(src.type, k).value();
    std::vector<uint8_t> v(static_cast<size_t>(k));
    std::vector<float> scale(static_cast<size_t>(k / s)), min(static_cast<size_t>(k / s));
    std::vector<int8_t> q6sc(static_cast<size_t>(k / 16));
    for (int64_t r = 0; r < src.rows && g.f.kind == Kind::kQ6; ++r) {
      DecodeQ6Row(static_cast<const uint8_t*>(src.data) + r * row_bytes, k, v.data(), q6sc.data(), scale.data());
      const int64_t t = r / kTile, rt = r % kTile, q = rt / 16, lane = rt % 16;
      for (int64_t blk = 0; blk < k / 256; ++blk) {
        uint8_t* p = g.packed.data() + t * g.tile_stride + blk * kQ6Block;
        const uint8_t* vb = v.data() + blk * 256;
        for (int u = 0; u < 8; ++u) {
          uint8_t* base = p + u * kQ6Unit + q * 384;
          const uint8_t* vu = vb + 32 * u;
          for (int j = 0; j < 4; ++j)
            for (int i = 0; i < 4; ++i)
              base[j * 64 + lane * 4 + i] = static_cast<uint8_t>((vu[8 * j + i] & 15) | ((vu[8 * j + 4 + i] & 15) << 4));
          for (int h = 0; h < 2; ++h)
            for (int i = 0; i < 4; ++i) {
              uint8_t bits = 0;
              for (int tt = 0; tt < 4; ++tt) bits |= static_cast<uint8_t>(((vu[16 * h + i + 4 * tt] >> 4) & 3) << (2 * tt));
              base[256 + h * 64 + lane * 4 + i] = bits;
            }
        }
        for (int sb = 0; sb < 16; ++sb) reinterpret_cast<int8_t*>(p + kQ6Values)[sb * 64 + rt] = q6sc[blk * 16 + sb];
        reinterpret_cast<uint16_t*>(p + kQ6Values + kQ6Scales)[rt] = F32ToF16(scale[blk]);
      }
    }
    for (int64_t r = 0; r < src.rows && g.f.kind != Kind::kQ6; ++r) {
      DecodeRow(src.type, static_cast<const uint8_t*>(src.data) + r * row_bytes, k, v.data(), scale.data(), min.data());
      const int64_t t = r / kTile, rt = r % kTile, q = rt / 16, lane = rt % 16;
      uint8_t* tile = g.packed.data() + t * g.tile_stride;
      const uint8_t* row = static_cast<const uint8_t*>(src.data) + r * row_bytes;
      for (int64_t b = 0; b < k / s; ++b) {
        uint8_t* p = tile + SubOffset(g, b);
        const uint8_t* vb = v.data() + b * s;
        if (kind == Kind::kS8) {
          for (int j = 0; j < s / 4; ++j)
            for (int i = 0; i < 4; ++i) p[q * 16 * s + j * 64 + lane * 4 + i] = vb[4 * j + i];
        } else {
          // Nibbles (low: k = 8j + i, high: k = 8j + 4 + i), and kK5's 5th
          // bits after them (k = i + 4t at bit t).
          uint8_t* group = p + q * (kind == Kind::kK5 ? kK5Group : kK4Group);
          for (int j = 0; j < s / 8; ++j)
            for (int i = 0; i < 4; ++i)
              group[j * 64 + lane * 4 + i] = static_cast<uint8_t>((vb[8 * j + i] & 15) | ((vb[8 * j + 4 + i] & 15) << 4));
          if (kind == Kind::kK5) {
            for (int i = 0; i < 4; ++i) {
              uint8_t bits = 0;
              for (int t5 = 0; t5 < 8; ++t5) bits |= static_cast<uint8_t>(((vb[i + 4 * t5] >> 4) & 1) << t5);
              group[4 * 64 + lane * 4 + i] = bits;
            }
          }
        }
        if (ByteScales(kind)) {
          // ggml's own scale and min bytes, d and dmin: x = d * sc * v - dmin * m.
          const uint8_t* at = row + (b / 8) * QuantBlockBytes(src.type);
          const auto* b4 = reinterpret_cast<const BlockQ4K*>(at);
          const auto* b5 = reinterpret_cast<const BlockQ5K*>(at);
          const bool five = kind == Kind::kK5;
          KQuantScaleMin(five ? b5->scales : b4->scales, static_cast<int>(b % 8), p + g.vbytes + rt,
                         p + g.vbytes + kTile + rt);
          auto* supers = reinterpret_cast<uint16_t*>(tile + SupersOffset(g, b));
          supers[rt] = five ? b5->d : b4->d;
          supers[kTile + rt] = five ? b5->dmin : b4->dmin;
          continue;
        }
        uint16_t* sc = reinterpret_cast<uint16_t*>(p + g.vbytes);
        sc[rt] = F32ToF16(scale[b]);
        if (g.f.has_min) sc[kTile + rt] = F32ToF16(min[b]);
      }
    }
    im.bytes += static_cast<int64_t>(total);
    im.n += src.rows;
    im.segments.push_back(std::move(g));
  }
  if (bias) im.bias.assign(bias, bias + im.n);
  return qm;
}

void QuantMatmul::Impl::Run(const float* xf, const uint16_t* xb, int64_t m, float* y, bool accumulate) const {
  // Activations: int8 per block of 32, with scales and sums.
  thread_local std::vector<int8_t> xq;
  thread_local std::vector<float> dx;
  thread_local std::vector<int32_t> xs;
  xq.resize(static_cast<size_t>(m * k));
  dx.resize(static_cast<size_t>(m * k / 32));
  xs.resize(static_cast<size_t>(m * k / 16));
  int8_t* xqp = xq.data();
  float* dxp = dx.data();
  int32_t* xsp = xs.data();
  ThreadPool::Default().ParallelFor(m, [&](int64_t b, int64_t e) {
    thread_local std::vector<float> row;  // a bf16 row widened (kept: no allocation per call)
    if (!xf) row.resize(static_cast<size_t>(k));
    for (int64_t r = b; r < e; ++r) {
      const float* x = xf ? xf + r * k : row.data();
      if (!xf) Bf16ToF32(xb + r * k, row.data(), k);
      quant_tile::QuantizeActivations(x, k, xqp + r * k, dxp + r * k / 32, xsp + r * k / 16);
    }
  }, 1);
  int64_t total_tiles = 0;
  for (const Segment& g : segments) total_tiles += g.tiles;
  // Rows of x in blocks of 64: a block's activations stay in cache while the
  // thread's tiles stream past them.
  constexpr int64_t kMBlock = 64;
  ThreadPool::Default().RunOnAll([&](int t, int nt) {
    alignas(64) float out[2][kMaxMt * kTile];
    // Tile `tile` of g's results for rows m0 .. m0 + mt into y.
    const auto emit = [&](const Segment& g, int64_t tile, int64_t m0, int mt, const float* res) {
      const int64_t r0 = tile * kTile, len = std::min(kTile, g.rows - r0);
      for (int i = 0; i < mt; ++i) {
        float* yr = y + (m0 + i) * n + g.n0 + r0;
        const float* o = res + i * kTile;
        const float* bs = bias.empty() ? nullptr : bias.data() + g.n0 + r0;
        for (int64_t j = 0; j < len; ++j) {
          const float v = o[j] + (bs ? bs[j] : 0.0f);
          yr[j] = accumulate ? yr[j] + v : v;
        }
      }
    };
    float* const outs[2] = {out[0], out[1]};
    const int64_t t0 = total_tiles * t / nt, t1 = total_tiles * (t + 1) / nt;
    for (int64_t mb = 0; mb < m; mb += kMBlock) {
      const int64_t me = std::min(m, mb + kMBlock);
      int64_t base = 0;
      for (const Segment& g : segments) {
        const int64_t lo = std::max(t0, base) - base, hi = std::min(t1, base + g.tiles) - base;
        base += g.tiles;
        if (lo >= hi) continue;
        if (m == 1) {
          // Decode: two streams of tiles, the range's halves side by side
          // (TileVnni), and the odd one out alone.
          const int64_t half = (hi - lo) / 2;
          const ActRow a{xqp, dxp, xsp};
          for (int64_t i = 0; i < half; ++i) {
            const int64_t ta = lo + i, tb = lo + half + i;
            const uint8_t* const tp[2] = {g.packed.data() + ta * g.tile_stride, g.packed.data() + tb * g.tile_stride};
            Tiles(g, tp, k, &a, 1, 2, outs);
            emit(g, ta, 0, 1, out[0]);
            emit(g, tb, 0, 1, out[1]);
          }
          if ((hi - lo) % 2 != 0) {
            const uint8_t* const tp[1] = {g.packed.data() + (hi - 1) * g.tile_stride};
            Tiles(g, tp, k, &a, 1, 1, outs);
            emit(g, hi - 1, 0, 1, out[0]);
          }
          continue;
        }
        for (int64_t tile = lo; tile < hi; ++tile) {
          const uint8_t* const tp[1] = {g.packed.data() + tile * g.tile_stride};
          for (int64_t m0 = mb; m0 < me; m0 += kMaxMt) {
            const int mt = static_cast<int>(std::min<int64_t>(kMaxMt, me - m0));
            ActRow a[kMaxMt];
            for (int i = 0; i < mt; ++i) a[i] = {xqp + (m0 + i) * k, dxp + (m0 + i) * k / 32, xsp + (m0 + i) * k / 16};
            Tiles(g, tp, k, a, mt, 1, outs);
            emit(g, tile, m0, mt, out[0]);
          }
        }
      }
    }
  });
}

int64_t QuantMatmul::tiles() const { return (impl_->n + kTile - 1) / kTile; }
const float* QuantMatmul::bias() const { return impl_->bias.empty() ? nullptr : impl_->bias.data(); }

#if defined(__AVX512BF16__) && defined(__AVX512VNNI__) && defined(__AVX512VBMI__)
namespace {

// A register of 16 rows x 4 k bytes (lane = row) as 4 vectors of 16 rows,
// k by k, the bytes sign- or zero-extended: one vpermb makes it k-major.
inline void SplitK4(__m512i v, bool is_signed, __m512i* out) {
  const __m512i kmajor = _mm512_set_epi8(63, 59, 55, 51, 47, 43, 39, 35, 31, 27, 23, 19, 15, 11, 7, 3,   //
                                         62, 58, 54, 50, 46, 42, 38, 34, 30, 26, 22, 18, 14, 10, 6, 2,   //
                                         61, 57, 53, 49, 45, 41, 37, 33, 29, 25, 21, 17, 13, 9, 5, 1,    //
                                         60, 56, 52, 48, 44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 0);
  const __m512i t = _mm512_permutexvar_epi8(kmajor, v);
  out[0] = is_signed ? _mm512_cvtepi8_epi32(_mm512_castsi512_si128(t)) : _mm512_cvtepu8_epi32(_mm512_castsi512_si128(t));
  out[1] = is_signed ? _mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(t, 1)) : _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(t, 1));
  out[2] = is_signed ? _mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(t, 2)) : _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(t, 2));
  out[3] = is_signed ? _mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(t, 3)) : _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(t, 3));
}

// The 32 k values (f32, 16 rows each) of group q of a tile's 32-k block kb.
void GroupValues(const Segment& g, const uint8_t* tile, int64_t kb, int q, __m512* vals) {
  const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03);
  __m512i w[4];
  if (g.f.kind == Kind::kQ6) {
    const int64_t blk = kb / 8;
    const int u = static_cast<int>(kb % 8);
    const uint8_t* p = tile + blk * kQ6Block;
    const uint8_t* base = p + u * kQ6Unit + q * 384;
    const int8_t* scs = reinterpret_cast<const int8_t*>(p + kQ6Values);
    const __m512 d = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p + kQ6Values + kQ6Scales) + q));
    __m512 sc[2];
    for (int h = 0; h < 2; ++h) {
      sc[h] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                   _mm_load_si128(reinterpret_cast<const __m128i*>(scs + (2 * u + h) * 64 + 16 * q)))));
    }
    const __m512i pl[2] = {_mm512_load_si512(base + 256), _mm512_load_si512(base + 320)};
    const __m512i m32 = _mm512_set1_epi32(32);
    for (int jj = 0; jj < 8; ++jj) {  // k 4jj .. 4jj+3
      const __m512i nib = _mm512_load_si512(base + (jj / 2) * 64);
      const __m512i lo = jj % 2 ? _mm512_and_si512(_mm512_srli_epi16(nib, 4), low4) : _mm512_and_si512(nib, low4);
      const __m512i top = _mm512_and_si512(_mm512_srli_epi16(pl[jj / 4], static_cast<unsigned>(2 * (jj % 4))), low2);
      SplitK4(_mm512_or_si512(lo, _mm512_slli_epi16(top, 4)), false, w);
      for (int i = 0; i < 4; ++i) vals[4 * jj + i] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(w[i], m32)), sc[jj / 4]);
    }
    return;
  }
  const uint8_t* p = tile + SubOffset(g, kb);
  const uint16_t* scales = reinterpret_cast<const uint16_t*>(p + g.vbytes);
  __m512 sc, mn;
  if (ByteScales(g.f.kind)) {
    const auto bytes = [&](int64_t off) {
      return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(p + off))));
    };
    const uint16_t* supers = reinterpret_cast<const uint16_t*>(tile + SupersOffset(g, kb));
    sc = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(supers + 16 * q))),
                       bytes(g.vbytes + 16 * q));
    mn = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(supers + kTile + 16 * q))),
                       bytes(g.vbytes + kTile + 16 * q));
  } else {
    sc = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + 16 * q)));
    mn = g.f.has_min ? _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + kTile + 16 * q)))
                     : _mm512_setzero_ps();
  }
  if (g.f.kind != Kind::kS8) {
    const bool five = g.f.kind == Kind::kK5;
    const uint8_t* wq = p + q * (five ? kK5Group : kK4Group);
    const __m512i plane = five ? _mm512_load_si512(wq + 4 * 64) : _mm512_setzero_si512(), bit4 = _mm512_set1_epi8(0x10);
    for (int jj = 0; jj < 8; ++jj) {  // k 4jj .. 4jj+3: register jj / 2, low or high nibbles
      const __m512i v = _mm512_load_si512(wq + (jj / 2) * 64);
      __m512i x = _mm512_and_si512(jj % 2 ? _mm512_srli_epi16(v, 4) : v, low4);
      if (five) {  // bit jj of the plane's bytes to bit 4
        const __m512i top = jj <= 4 ? _mm512_slli_epi16(plane, static_cast<unsigned>(4 - jj))
                                    : _mm512_srli_epi16(plane, static_cast<unsigned>(jj - 4));
        x = _mm512_or_si512(x, _mm512_and_si512(top, bit4));
      }
      SplitK4(x, false, w);
      for (int i = 0; i < 4; ++i) vals[4 * jj + i] = _mm512_fmsub_ps(_mm512_cvtepi32_ps(w[i]), sc, mn);
    }
    return;
  }
  const uint8_t* wq = p + q * 16 * 32;  // kS8
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int j = 0; j < 8; ++j) {
    const __m512i v = _mm512_load_si512(wq + j * 64);
    SplitK4(_mm512_xor_si512(v, flip), true, w);  // int8 + 128, back to int8
    for (int i = 0; i < 4; ++i) vals[4 * j + i] = _mm512_mul_ps(_mm512_cvtepi32_ps(w[i]), sc);
  }
}

}  // namespace

bool QuantMatmul::CanDequantizeBf16Blocked() const {
  for (size_t i = 0; i + 1 < impl_->segments.size(); ++i) {
    if (impl_->segments[i].rows % kTile != 0) return false;
  }
  return true;
}

bool QuantMatmul::DequantizeBf16Blocked(int64_t t0, int64_t t1, uint16_t* out) const {
  const Impl& im = *impl_;
  if (!CanDequantizeBf16Blocked()) return false;
  CHECK(0 <= t0 && t0 <= t1 && t1 <= tiles());
  const int64_t kbs = im.k / 32;
  // out[(nb * KB + kb) * 16 + kp][64 n][2 k]: the (even, odd) k pair of 16
  // rows is one 64-byte store.
  const __m512i pairs = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                         5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  int64_t base = 0;
  auto seg = im.segments.begin();
  for (int64_t ti = t0; ti < t1; ++ti) {
    while (ti >= base + seg->tiles) base += seg->tiles, ++seg;
    const uint8_t* tile = seg->packed.data() + (ti - base) * seg->tile_stride;
    __m512 vals[32];
    for (int64_t kb = 0; kb < kbs; ++kb) {
      uint16_t* blk = out + ((ti - t0) * kbs + kb) * 2048;
      for (int q = 0; q < 4; ++q) {
        GroupValues(*seg, tile, kb, q, vals);
        for (int kp = 0; kp < 16; ++kp) {
          const __m512i bf = (__m512i)_mm512_cvtne2ps_pbh(vals[2 * kp + 1], vals[2 * kp]);
          _mm512_storeu_si512(blk + kp * 128 + q * 32, _mm512_permutexvar_epi16(pairs, bf));
        }
      }
    }
  }
  return true;
}
#else
bool QuantMatmul::CanDequantizeBf16Blocked() const { return false; }
bool QuantMatmul::DequantizeBf16Blocked(int64_t, int64_t, uint16_t*) const { return false; }
#endif

void QuantMatmul::Forward(const uint16_t* x, int64_t m, float* y, bool accumulate) const {
  impl_->Run(nullptr, x, m, y, accumulate);
}

void QuantMatmul::ForwardF32(const float* x, int64_t m, float* y, bool accumulate) const {
  impl_->Run(x, nullptr, m, y, accumulate);
}

}  // namespace crescent::kernels
