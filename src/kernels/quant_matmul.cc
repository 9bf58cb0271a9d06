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

namespace crescent::kernels {

namespace {

constexpr int64_t kTile = 64;  // output rows per tile
constexpr int kMaxMt = 4;      // activation rows per kernel call
// Software prefetch distance of the decode kernels: the hardware prefetcher
// alone left a thread's stream of weights short of what memory gives (BM_Quant
// at M = 1, GB/s: Q8_0 25 -> 27-28, Q4_K 19.7 -> 20-23, Q6_K 17.5 -> 23-26
// with 8-24 KB ahead, all about equal; 4 KB was worse for Q6_K; the T0, T1
// and T2 hints measured the same).
constexpr int64_t kPrefetchAhead = 16384;

// kS8: int8 + 128 per byte; kU8: 0..255 with a min; kU4: nibbles with a min;
// kQ6: Q6_K as ggml stores it, 6-bit values (a nibble plane and a 2-bit
// plane), int8 scales per 16 and an f16 d per 256 (6.5625 bits per weight).
enum class Kind { kS8, kU8, kU4, kQ6 };

struct Format {
  Kind kind;
  int s;         // sub-block elements
  bool has_min;
};

Format FormatOf(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0: return {Kind::kS8, 32, false};
    case QuantType::kQ6_K: return {Kind::kQ6, 256, false};
    case QuantType::kQ4_0: return {Kind::kU4, 32, true};
    case QuantType::kQ4_K: return {Kind::kU4, 32, true};
    case QuantType::kQ5_K: return {Kind::kU8, 32, true};
    default: CHECK(false) << "not a block type"; return {};
  }
}

// One row of `t` as stored values (the packed form's bytes before
// interleaving), and f32 scale and min per sub-block: x = scale * v - min for
// kU8/kU4, x = scale * (v - 128) for kS8.
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

// kQ6 layout inside one 256-element block of a tile: 8 units of 32 k; per
// unit and group of 16 rows 4 nibble registers (k 8j..8j+7: low nibble k,
// high k + 4) then 2 plane registers (k 16h..16h+15: byte i holds k = i + 4t
// at bits 2t); then int8 scales [16 sub-blocks][64 rows]; then f16 d [64].
constexpr int64_t kQ6Unit = 4 * 384, kQ6Values = 8 * kQ6Unit, kQ6Scales = 16 * 64, kQ6Block = kQ6Values + kQ6Scales + 128;

struct Segment {
  Format f;
  int64_t n0 = 0, rows = 0, tiles = 0;
  int64_t vbytes = 0, sub_stride = 0, tile_stride = 0;
  LargeBuffer packed;  // zeroed, huge pages where allowed
};

// One activation row, quantized per block of 32.
struct ActRow {
  const int8_t* xq;
  const float* dx;     // [k / 32]
  const int32_t* xs;   // [k / 16] sums of xq
};

void QuantizeActivations(const float* x, int64_t k, int8_t* xq, float* dx, int32_t* xs) {
  for (int64_t b = 0; b < k / 32; ++b) {
    const float* xb = x + b * 32;
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
    // A NaN or infinity makes the block's scale NaN, so it reaches the
    // outputs as in a float matmul (and no float-to-int conversion is UB).
    const float d = std::isfinite(amax) ? amax / 127.0f : NAN, id = d > 0 ? 1.0f / d : 0.0f;
    dx[b] = d;
    int32_t s0 = 0, s1 = 0;
    for (int i = 0; i < 32; ++i) {
      const float v = xb[i] * id;
      const int q = std::isfinite(v) ? static_cast<int>(std::nearbyint(std::clamp(v, -127.0f, 127.0f))) : 0;
      xq[b * 32 + i] = static_cast<int8_t>(std::clamp(q, -127, 127));
      (i < 16 ? s0 : s1) += xq[b * 32 + i];
    }
    xs[2 * b] = s0;
    xs[2 * b + 1] = s1;
  }
}

// A kQ6 value back from the packed planes.
int Q6Value(const uint8_t* block, int64_t kk, int r) {
  const int u = static_cast<int>(kk / 32), e = static_cast<int>(kk % 32), q = r / 16, lane = r % 16;
  const uint8_t* base = block + u * kQ6Unit + q * 384;
  const int j = e / 8, i = e % 4, hi = (e % 8) / 4;
  const uint8_t nib = base[j * 64 + lane * 4 + i];
  const int low = hi ? nib >> 4 : nib & 15;
  const int h = e / 16, t = (e % 16) / 4;
  const int top = (base[256 + h * 64 + lane * 4 + (e % 4)] >> (2 * t)) & 3;
  return low | (top << 4);
}

void TileScalarQ6(const uint8_t* tile, int64_t k, const ActRow* a, int mt, float* out) {
  for (int m = 0; m < mt; ++m) std::fill(out + m * kTile, out + (m + 1) * kTile, 0.0f);
  for (int64_t blk = 0; blk < k / 256; ++blk) {
    const uint8_t* p = tile + blk * kQ6Block;
    const int8_t* scs = reinterpret_cast<const int8_t*>(p + kQ6Values);
    const uint16_t* ds = reinterpret_cast<const uint16_t*>(p + kQ6Values + kQ6Scales);
    for (int r = 0; r < kTile; ++r) {
      const float d = F16ToF32(ds[r]);
      for (int m = 0; m < mt; ++m) {
        for (int u = 0; u < 8; ++u) {
          int32_t t = 0;
          for (int sb = 0; sb < 2; ++sb) {
            int32_t dot = 0;
            for (int e = 0; e < 16; ++e) {
              const int64_t kk = 32 * u + 16 * sb + e;
              dot += Q6Value(p, kk, r) * a[m].xq[blk * 256 + kk];
            }
            dot -= 32 * a[m].xs[blk * 16 + 2 * u + sb];
            t += dot * scs[(2 * u + sb) * 64 + r];
          }
          out[m * kTile + r] += static_cast<float>(t) * d * a[m].dx[blk * 8 + u];
        }
      }
    }
  }
}

// The portable kernel: out[m][r] for the tile's 64 rows.
void TileScalar(const Segment& g, const uint8_t* tile, int64_t k, const ActRow* a, int mt, float* out) {
  if (g.f.kind == Kind::kQ6) return TileScalarQ6(tile, k, a, mt, out);
  const int s = g.f.s;
  const int64_t nsub = k / s;
  for (int m = 0; m < mt; ++m) std::fill(out + m * kTile, out + (m + 1) * kTile, 0.0f);
  for (int64_t b = 0; b < nsub; ++b) {
    const uint8_t* p = tile + b * g.sub_stride;
    const uint16_t* scales = reinterpret_cast<const uint16_t*>(p + g.vbytes);
    const uint16_t* mins = scales + kTile;
    for (int r = 0; r < kTile; ++r) {
      const int q = r / 16, lane = r % 16;
      const float sc = F16ToF32(scales[r]), mn = g.f.has_min ? F16ToF32(mins[r]) : 0.0f;
      for (int m = 0; m < mt; ++m) {
        const int8_t* x = a[m].xq + b * s;
        int32_t dot = 0;
        if (g.f.kind == Kind::kU4) {
          for (int j = 0; j < s / 8; ++j) {
            const uint8_t* w = p + q * 8 * s + j * 64 + lane * 4;
            for (int i = 0; i < 4; ++i) dot += (w[i] & 15) * x[8 * j + i] + (w[i] >> 4) * x[8 * j + 4 + i];
          }
        } else {
          for (int j = 0; j < s / 4; ++j) {
            const uint8_t* w = p + q * 16 * s + j * 64 + lane * 4;
            for (int i = 0; i < 4; ++i) dot += w[i] * x[4 * j + i];
          }
        }
        const int32_t xsum = s == 32 ? a[m].xs[2 * b] + a[m].xs[2 * b + 1] : a[m].xs[b];
        const float dx = a[m].dx[(b * s) / 32];
        float v;
        if (g.f.kind == Kind::kS8) {
          v = sc * static_cast<float>(dot - 128 * xsum);
        } else {
          v = sc * static_cast<float>(dot) - mn * static_cast<float>(xsum);
        }
        out[m * kTile + r] += v * dx;
      }
    }
  }
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// NT tiles at once (NT = 2 only with MT = 1): two streams of weights per
// thread, where one left memory idle (see quant_matmul.h).
template <Kind K, int S, int MT, int NT = 1>
void TileVnni(const Segment& g, const uint8_t* const* tiles, int64_t k, const ActRow* a, float* const* outs) {
  constexpr int kRegs = K == Kind::kU4 ? S / 8 : S / 4;  // 64-byte registers per group of 16 rows
  constexpr int64_t kGroupBytes = kRegs * 64;
  const int64_t nsub = k / S;
  // Separate named accumulators (not an array indexed by stream) so they
  // stay in registers.
  __m512 acc0[MT][4], acc1[MT][4];
  for (int m = 0; m < MT; ++m)
    for (int q = 0; q < 4; ++q) acc0[m][q] = acc1[m][q] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const auto step = [&](int64_t b, const uint8_t* tile, __m512 (&acc)[MT][4]) __attribute__((always_inline)) {
    const uint8_t* p = tile + b * g.sub_stride;
    const uint16_t* scales = reinterpret_cast<const uint16_t*>(p + g.vbytes);
    for (int64_t off = 0; off < g.sub_stride; off += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchAhead + off), _MM_HINT_T0);
    }
    float dxv[MT];
    int32_t xsum[MT];
    for (int m = 0; m < MT; ++m) {
      dxv[m] = a[m].dx[(b * S) / 32];
      xsum[m] = S == 32 ? a[m].xs[2 * b] + a[m].xs[2 * b + 1] : a[m].xs[b];
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m512 sc = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + 16 * q)));
      __m512 mn = _mm512_setzero_ps();
      if constexpr (K != Kind::kS8) {
        mn = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + kTile + 16 * q)));
      }
      __m512i w[K == Kind::kU4 ? 2 * kRegs : kRegs];
      const uint8_t* wq = p + q * kGroupBytes;
      for (int j = 0; j < kRegs; ++j) {
        const __m512i v = _mm512_load_si512(wq + j * 64);
        if constexpr (K == Kind::kU4) {
          w[2 * j] = _mm512_and_si512(v, low4);
          w[2 * j + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        } else {
          w[j] = v;
        }
      }
      for (int m = 0; m < MT; ++m) {
        const int8_t* x = a[m].xq + b * S;
        // Two chains of dot products (even and odd registers) for latency.
        __m512i ia = _mm512_setzero_si512(), ib = _mm512_setzero_si512();
        for (int j = 0; j < (K == Kind::kU4 ? 2 * kRegs : kRegs); j += 2) {
          int32_t x4, x5;
          std::memcpy(&x4, x + 4 * j, 4);  // kU4: registers pair k 8j'..+3 and 8j'+4..+7, i.e. 4 j again
          std::memcpy(&x5, x + 4 * j + 4, 4);
          ia = _mm512_dpbusd_epi32(ia, w[j], _mm512_set1_epi32(x4));
          ib = _mm512_dpbusd_epi32(ib, w[j + 1], _mm512_set1_epi32(x5));
        }
        ia = _mm512_add_epi32(ia, ib);
        if constexpr (K == Kind::kS8) {
          ia = _mm512_sub_epi32(ia, _mm512_set1_epi32(128 * xsum[m]));
          acc[m][q] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(ia), _mm512_set1_ps(dxv[m])), sc, acc[m][q]);
        } else {
          const __m512 t = _mm512_fmsub_ps(_mm512_cvtepi32_ps(ia), sc,
                                           _mm512_mul_ps(mn, _mm512_set1_ps(static_cast<float>(xsum[m]))));
          acc[m][q] = _mm512_fmadd_ps(t, _mm512_set1_ps(dxv[m]), acc[m][q]);
        }
      }
    }
  };
  for (int64_t b = 0; b < nsub; ++b) {
    step(b, tiles[0], acc0);
    if constexpr (NT == 2) step(b, tiles[1], acc1);
  }
  for (int m = 0; m < MT; ++m) {
    for (int q = 0; q < 4; ++q) {
      _mm512_storeu_ps(outs[0] + m * kTile + 16 * q, acc0[m][q]);
      if constexpr (NT == 2) _mm512_storeu_ps(outs[1] + m * kTile + 16 * q, acc1[m][q]);
    }
  }
}

template <int MT, int NT = 1>
void TileVnniQ6(const uint8_t* const* tiles, int64_t k, const ActRow* a, float* const* outs) {
  __m512 acc0[MT][4], acc1[MT][4];  // named, not indexed, to stay in registers
  for (int m = 0; m < MT; ++m)
    for (int q = 0; q < 4; ++q) acc0[m][q] = acc1[m][q] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F), low6 = _mm512_set1_epi8(0x3F);
  const auto step = [&](int64_t blk, int u, const uint8_t* tile,
                        __m512 (&acc)[MT][4]) __attribute__((always_inline)) {
    const uint8_t* p = tile + blk * kQ6Block;
    const int8_t* scs = reinterpret_cast<const int8_t*>(p + kQ6Values);
    const uint16_t* ds = reinterpret_cast<const uint16_t*>(p + kQ6Values + kQ6Scales);
    for (int64_t off = u * kQ6Block / 8; off < (u + 1) * kQ6Block / 8; off += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchAhead + off), _MM_HINT_T0);
    }
    float dxv[MT];
    int32_t xa[MT], xb[MT];
    for (int m = 0; m < MT; ++m) {
      dxv[m] = a[m].dx[blk * 8 + u];
      xa[m] = 32 * a[m].xs[blk * 16 + 2 * u];
      xb[m] = 32 * a[m].xs[blk * 16 + 2 * u + 1];
    }
    for (int q = 0; q < 4; ++q) {
      const uint8_t* base = p + u * kQ6Unit + q * 384;
      __m512i v[8];
      const __m512i pl0 = _mm512_load_si512(base + 256), pl1 = _mm512_load_si512(base + 320);
      for (int j = 0; j < 4; ++j) {
        const __m512i nib = _mm512_load_si512(base + j * 64);
        for (int half = 0; half < 2; ++half) {
          const int jj = 2 * j + half;  // k 4jj .. 4jj+3 of the unit
          // The nibble in bits 0-3, jj's 2 bits of the plane moved to bits
          // 4-5, then one select (bits 0-3 from lo, 4-7 from top) and a mask.
          const __m512i lo = half ? _mm512_srli_epi16(nib, 4) : nib;
          const __m512i plane = jj < 4 ? pl0 : pl1;
          __m512i top;
          switch (jj % 4) {
            case 0: top = _mm512_slli_epi16(plane, 4); break;
            case 1: top = _mm512_slli_epi16(plane, 2); break;
            case 2: top = plane; break;
            default: top = _mm512_srli_epi16(plane, 2); break;
          }
          v[jj] = _mm512_and_si512(_mm512_ternarylogic_epi32(lo, top, low4, 0xE4), low6);
        }
      }
      const __m512i sca = _mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(scs + (2 * u) * 64 + 16 * q)));
      const __m512i scb =
          _mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(scs + (2 * u + 1) * 64 + 16 * q)));
      const __m512 dq = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(ds + 16 * q)));
      for (int m = 0; m < MT; ++m) {
        const int8_t* x = a[m].xq + blk * 256 + 32 * u;
        __m512i ia = _mm512_setzero_si512(), ib = _mm512_setzero_si512();
        for (int j = 0; j < 4; ++j) {
          int32_t x4;
          std::memcpy(&x4, x + 4 * j, 4);
          ia = _mm512_dpbusd_epi32(ia, v[j], _mm512_set1_epi32(x4));
          std::memcpy(&x4, x + 16 + 4 * j, 4);
          ib = _mm512_dpbusd_epi32(ib, v[4 + j], _mm512_set1_epi32(x4));
        }
        ia = _mm512_mullo_epi32(_mm512_sub_epi32(ia, _mm512_set1_epi32(xa[m])), sca);
        ib = _mm512_mullo_epi32(_mm512_sub_epi32(ib, _mm512_set1_epi32(xb[m])), scb);
        acc[m][q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(ia, ib)),
                                    _mm512_mul_ps(dq, _mm512_set1_ps(dxv[m])), acc[m][q]);
      }
    }
  };
  for (int64_t blk = 0; blk < k / 256; ++blk) {
    for (int u = 0; u < 8; ++u) {
      step(blk, u, tiles[0], acc0);
      if constexpr (NT == 2) step(blk, u, tiles[1], acc1);
    }
  }
  for (int m = 0; m < MT; ++m) {
    for (int q = 0; q < 4; ++q) {
      _mm512_storeu_ps(outs[0] + m * kTile + 16 * q, acc0[m][q]);
      if constexpr (NT == 2) _mm512_storeu_ps(outs[1] + m * kTile + 16 * q, acc1[m][q]);
    }
  }
}

void TileVnniQ6M(const uint8_t* const* tiles, int64_t k, const ActRow* a, int mt, int nt, float* const* outs) {
  if (nt == 2) return TileVnniQ6<1, 2>(tiles, k, a, outs);
  switch (mt) {
    case 1: TileVnniQ6<1>(tiles, k, a, outs); break;
    case 2: TileVnniQ6<2>(tiles, k, a, outs); break;
    case 3: TileVnniQ6<3>(tiles, k, a, outs); break;
    default: TileVnniQ6<4>(tiles, k, a, outs); break;
  }
}

template <Kind K, int S>
void TileVnniM(const Segment& g, const uint8_t* const* tiles, int64_t k, const ActRow* a, int mt, int nt,
               float* const* outs) {
  if (nt == 2) return TileVnni<K, S, 1, 2>(g, tiles, k, a, outs);
  switch (mt) {
    case 1: TileVnni<K, S, 1>(g, tiles, k, a, outs); break;
    case 2: TileVnni<K, S, 2>(g, tiles, k, a, outs); break;
    case 3: TileVnni<K, S, 3>(g, tiles, k, a, outs); break;
    default: TileVnni<K, S, 4>(g, tiles, k, a, outs); break;
  }
}

std::atomic<bool> g_portable{false};

// nt tiles (1, or 2 with mt = 1), each with its own 64 x mt outputs.
void Tiles(const Segment& g, const uint8_t* const* tiles, int64_t k, const ActRow* a, int mt, int nt,
           float* const* outs) {
  if (g_portable.load(std::memory_order_relaxed)) {
    for (int t = 0; t < nt; ++t) TileScalar(g, tiles[t], k, a, mt, outs[t]);
    return;
  }
  if (g.f.kind == Kind::kS8 && g.f.s == 32) return TileVnniM<Kind::kS8, 32>(g, tiles, k, a, mt, nt, outs);
  if (g.f.kind == Kind::kQ6) return TileVnniQ6M(tiles, k, a, mt, nt, outs);
  if (g.f.kind == Kind::kU8) return TileVnniM<Kind::kU8, 32>(g, tiles, k, a, mt, nt, outs);
  return TileVnniM<Kind::kU4, 32>(g, tiles, k, a, mt, nt, outs);
}
constexpr bool kVectorized = true;
#else
std::atomic<bool> g_portable{false};
void Tiles(const Segment& g, const uint8_t* const* tiles, int64_t k, const ActRow* a, int mt, int nt,
           float* const* outs) {
  for (int t = 0; t < nt; ++t) TileScalar(g, tiles[t], k, a, mt, outs[t]);
}
constexpr bool kVectorized = false;
#endif

}  // namespace

bool QuantMatmulVectorized() { return kVectorized; }
void SetQuantMatmulPortableForTesting(bool portable) { g_portable = portable; }

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
    g.vbytes = g.f.kind == Kind::kU4 ? kTile * s / 2 : kTile * s;
    g.sub_stride = g.vbytes + (g.f.has_min ? 4 : 2) * kTile;
    if (g.f.kind == Kind::kQ6) g.vbytes = kQ6Values, g.sub_stride = kQ6Block;
    g.tile_stride = (k / s) * g.sub_stride;
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
      for (int64_t b = 0; b < k / s; ++b) {
        uint8_t* p = g.packed.data() + t * g.tile_stride + b * g.sub_stride;
        const uint8_t* vb = v.data() + b * s;
        if (g.f.kind == Kind::kU4) {
          for (int j = 0; j < s / 8; ++j)
            for (int i = 0; i < 4; ++i)
              p[q * 8 * s + j * 64 + lane * 4 + i] = static_cast<uint8_t>(vb[8 * j + i] | (vb[8 * j + 4 + i] << 4));
        } else {
          for (int j = 0; j < s / 4; ++j)
            for (int i = 0; i < 4; ++i) p[q * 16 * s + j * 64 + lane * 4 + i] = vb[4 * j + i];
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
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = b; r < e; ++r) {
      const float* x = xf ? xf + r * k : row.data();
      if (!xf) {
        for (int64_t i = 0; i < k; ++i) row[static_cast<size_t>(i)] = Bf16ToF32(xb[r * k + i]);
      }
      QuantizeActivations(x, k, xqp + r * k, dxp + r * k / 32, xsp + r * k / 16);
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
  const uint8_t* p = tile + kb * g.sub_stride;
  const uint16_t* scales = reinterpret_cast<const uint16_t*>(p + g.vbytes);
  const __m512 sc = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + 16 * q)));
  const __m512 mn = g.f.has_min ? _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + kTile + 16 * q)))
                                : _mm512_setzero_ps();
  if (g.f.kind == Kind::kU4) {
    const uint8_t* wq = p + q * 8 * 32;
    for (int j = 0; j < 4; ++j) {
      const __m512i v = _mm512_load_si512(wq + j * 64);
      SplitK4(_mm512_and_si512(v, low4), false, w);
      for (int i = 0; i < 4; ++i) vals[8 * j + i] = _mm512_fmsub_ps(_mm512_cvtepi32_ps(w[i]), sc, mn);
      SplitK4(_mm512_and_si512(_mm512_srli_epi16(v, 4), low4), false, w);
      for (int i = 0; i < 4; ++i) vals[8 * j + 4 + i] = _mm512_fmsub_ps(_mm512_cvtepi32_ps(w[i]), sc, mn);
    }
    return;
  }
  const uint8_t* wq = p + q * 16 * 32;
  const bool s8 = g.f.kind == Kind::kS8;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int j = 0; j < 8; ++j) {
    const __m512i v = _mm512_load_si512(wq + j * 64);
    SplitK4(s8 ? _mm512_xor_si512(v, flip) : v, s8, w);  // int8 + 128, back to int8
    for (int i = 0; i < 4; ++i) vals[4 * j + i] = _mm512_fmsub_ps(_mm512_cvtepi32_ps(w[i]), sc, mn);
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
