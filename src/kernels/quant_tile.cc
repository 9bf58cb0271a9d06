#include "kernels/quant_tile.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "base/dtype.h"

namespace crescent::kernels::quant_tile {

namespace {

// Software prefetch distance of the decode kernels: the hardware prefetcher
// alone left a thread's stream of weights short of what memory gives (BM_Quant
// at M = 1, GB/s: Q8_0 25 -> 27-28, Q4_K 19.7 -> 20-23, Q6_K 17.5 -> 23-26
// with 8-24 KB ahead, all about equal; 4 KB was worse for Q6_K; the T0, T1
// and T2 hints measured the same).
constexpr int64_t kPrefetchAhead = 16384;
// A prefetch `ahead` bytes past p, which may be past the end of the weights
// (the hardware ignores it; the address is formed as an integer, so no
// out-of-range pointer is made). Always inlined: GCC finds a call to a
// function holding only a prefetch free of effects and deletes it (it did:
// the kernels lost every prefetch and decode read 16% slower).
__attribute__((always_inline)) inline void Prefetch(const uint8_t* p, int64_t ahead) {
  _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(ahead)),
               _MM_HINT_T0);
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
    const uint8_t* p = tile + SubOffset(g, b);
    const uint16_t* scales = reinterpret_cast<const uint16_t*>(p + g.vbytes);
    const uint16_t* mins = scales + kTile;
    const bool bytes = ByteScales(g.f.kind), five = g.f.kind == Kind::kK5;
    const uint16_t* supers = bytes ? reinterpret_cast<const uint16_t*>(tile + SupersOffset(g, b)) : nullptr;
    for (int r = 0; r < kTile; ++r) {
      const int q = r / 16, lane = r % 16;
      float sc, mn;
      if (bytes) {
        sc = F16ToF32(supers[r]) * static_cast<float>(p[g.vbytes + r]);
        mn = F16ToF32(supers[kTile + r]) * static_cast<float>(p[g.vbytes + kTile + r]);
      } else {
        sc = F16ToF32(scales[r]), mn = g.f.has_min ? F16ToF32(mins[r]) : 0.0f;
      }
      for (int m = 0; m < mt; ++m) {
        const int8_t* x = a[m].xq + b * s;
        int32_t dot = 0;
        if (g.f.kind != Kind::kS8) {
          // Nibbles: byte i of register j holds k = 8j + i and 8j + 4 + i;
          // kK5's 5th bits: byte i of the register after them, k = i + 4t at bit t.
          const uint8_t* group = p + q * (five ? kK5Group : kK4Group) + lane * 4;
          for (int j = 0; j < s / 8; ++j) {
            const uint8_t* w = group + j * 64;
            for (int i = 0; i < 4; ++i) {
              int lo = w[i] & 15, hi = w[i] >> 4;
              if (five) {
                lo |= ((group[4 * 64 + i] >> (2 * j)) & 1) << 4;
                hi |= ((group[4 * 64 + i] >> (2 * j + 1)) & 1) << 4;
              }
              dot += lo * x[8 * j + i] + hi * x[8 * j + 4 + i];
            }
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

// The portable QuantizeActivations on one block of 32 floats.
void QuantizeBlockScalar(const float* xb, int8_t* xq, float* dx, int32_t* xs) {
  float amax = 0;
  bool finite = true;  // std::max drops a NaN, so it is looked for apart
  for (int i = 0; i < 32; ++i) {
    amax = std::max(amax, std::fabs(xb[i]));
    finite = finite && std::isfinite(xb[i]);
  }
  const float d = finite ? amax / 127.0f : NAN, id = d > 0 ? 1.0f / d : 0.0f;
  *dx = d;
  int32_t s0 = 0, s1 = 0;
  for (int i = 0; i < 32; ++i) {
    const float v = xb[i] * id;
    const int q = std::isfinite(v) ? static_cast<int>(std::nearbyint(std::clamp(v, -127.0f, 127.0f))) : 0;
    xq[i] = static_cast<int8_t>(std::clamp(q, -127, 127));
    (i < 16 ? s0 : s1) += xq[i];
  }
  xs[0] = s0;
  xs[1] = s1;
}

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__)
// The same on 32 floats in two registers: the scalar steps lane by lane
// (max of |x|, one division, a product, a clamp, rounding to nearest even),
// each exact as IEEE defines it, so the bytes match.
__attribute__((always_inline)) inline void QuantizeBlockVec(__m512 a, __m512 b, int8_t* xq, float* dx, int32_t* xs) {
  constexpr int kNonFinite = 0x99;  // fpclass: QNaN, SNaN, +inf, -inf
  const bool finite = (_mm512_fpclass_ps_mask(a, kNonFinite) | _mm512_fpclass_ps_mask(b, kNonFinite)) == 0;
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
  const float d = finite ? amax / 127.0f : NAN, id = d > 0 ? 1.0f / d : 0.0f;
  *dx = d;
  const __m512 vid = _mm512_set1_ps(id), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  const auto quantize = [&](__m512 x) __attribute__((always_inline)) {
    const __m512 v = _mm512_mul_ps(x, vid);
    const __m512 c = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    const __mmask16 ok = static_cast<__mmask16>(~_mm512_fpclass_ps_mask(v, kNonFinite));
    return _mm512_maskz_cvt_roundps_epi32(ok, c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  };
  const __m512i qa = quantize(a), qb = quantize(b);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(xq), _mm512_cvtepi32_epi8(qa));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(xq + 16), _mm512_cvtepi32_epi8(qb));
  xs[0] = _mm512_reduce_add_epi32(qa);
  xs[1] = _mm512_reduce_add_epi32(qb);
}
#endif

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// NT tiles at once (NT = 2 only with MT = 1): two streams of weights per
// thread, where one left memory idle (see quant_matmul.h).
template <Kind K, int S, int MT, int NT = 1>
void TileVnni(const Segment& g, const uint8_t* const* tiles, int64_t k, const ActRow* a, float* const* outs) {
  constexpr bool kNibbles = K != Kind::kS8, kBytes = K == Kind::kK4 || K == Kind::kK5;
  constexpr int kRegs = kNibbles ? S / 8 : S / 4;  // 64-byte value registers per group of 16 rows
  constexpr int64_t kGroupBytes = K == Kind::kK5 ? kK5Group : kRegs * 64;  // kK5: and its 5th bits
  const int64_t nsub = k / S;
  // Separate named accumulators (not an array indexed by stream) so they
  // stay in registers.
  __m512 acc0[MT][4], acc1[MT][4];
  for (int m = 0; m < MT; ++m)
    for (int q = 0; q < 4; ++q) acc0[m][q] = acc1[m][q] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
#if defined(__GFNI__)
  // kK5: affine matrices moving bit t of each byte to bit 4 and clearing the
  // rest (row 7 - i of the matrix, byte 7 - i of the qword, feeds output bit i).
  [[maybe_unused]] const auto fifth = [](int t) { return _mm512_set1_epi64(static_cast<long long>((uint64_t{1} << t) << 24)); };
#else
  [[maybe_unused]] const __m512i bit4 = _mm512_set1_epi8(0x10);
#endif
  // sup: kK4, kK5: the block's d (4 groups of 16 rows) then dmin, as f32.
  const auto step = [&](int64_t b, const uint8_t* tile, __m512 (&acc)[MT][4],
                        [[maybe_unused]] const __m512* sup) __attribute__((always_inline)) {
    const uint8_t* p = tile + SubOffset(g, b);
    const uint16_t* scales = reinterpret_cast<const uint16_t*>(p + g.vbytes);
    // kK4, kK5: the last sub-block of 8 also covers the d and dmin after it.
    const int64_t extent = g.sub_stride + (kBytes && b % 8 == 7 ? 4 * kTile : 0);
    for (int64_t off = 0; off < extent; off += 64) {
      Prefetch(p, kPrefetchAhead + off);
    }
    float dxv[MT];
    int32_t xsum[MT];
    for (int m = 0; m < MT; ++m) {
      dxv[m] = a[m].dx[(b * S) / 32];
      xsum[m] = S == 32 ? a[m].xs[2 * b] + a[m].xs[2 * b + 1] : a[m].xs[b];
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      __m512 sc, mn = _mm512_setzero_ps();
      if constexpr (kBytes) {
        // d * sc and dmin * m, exact in f32 (an f16 times a 6-bit integer).
        const auto bytes = [&](int64_t off) __attribute__((always_inline)) {
          return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(p + off))));
        };
        sc = _mm512_mul_ps(sup[q], bytes(g.vbytes + 16 * q));
        mn = _mm512_mul_ps(sup[4 + q], bytes(g.vbytes + kTile + 16 * q));
      } else {
        sc = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + 16 * q)));
        if constexpr (K != Kind::kS8) {
          mn = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + kTile + 16 * q)));
        }
      }
      __m512i w[kNibbles ? 2 * kRegs : kRegs];
      const uint8_t* wq = p + q * kGroupBytes;
      [[maybe_unused]] const __m512i plane = K == Kind::kK5 ? _mm512_load_si512(wq + 4 * 64) : _mm512_setzero_si512();
      for (int j = 0; j < kRegs; ++j) {
        const __m512i v = _mm512_load_si512(wq + j * 64);
        if constexpr (K == Kind::kK5) {
          // The nibble in bits 0-3, the plane's bit 2j (2j + 1) moved to bit
          // 4 and nothing else, then one select: bits 0-3 from the nibble.
          for (int h = 0; h < 2; ++h) {
            const int t = 2 * j + h;
#if defined(__GFNI__)
            const __m512i top = _mm512_gf2p8affine_epi64_epi8(plane, fifth(t), 0);
#else
            const __m512i top = _mm512_and_si512(
                t <= 4 ? _mm512_slli_epi16(plane, 4 - t) : _mm512_srli_epi16(plane, t - 4), bit4);
#endif
            w[t] = _mm512_ternarylogic_epi32(h ? _mm512_srli_epi16(v, 4) : v, top, low4, 0xE4);
          }
        } else if constexpr (kNibbles) {
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
        for (int j = 0; j < (kNibbles ? 2 * kRegs : kRegs); j += 2) {
          int32_t x4, x5;
          std::memcpy(&x4, x + 4 * j, 4);  // nibbles: registers pair k 8j'..+3 and 8j'+4..+7, i.e. 4 j again
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
  if constexpr (kBytes) {
    // d and dmin widened once per 256 k, not per sub-block (BM_QuantCached
    // Q4_K 17.4 -> 16.7 us).
    const auto supers = [&](const uint8_t* tile, int64_t blk, __m512* out) __attribute__((always_inline)) {
      const auto* d = reinterpret_cast<const __m256i*>(tile + SupersOffset(g, 8 * blk));
      for (int i = 0; i < 8; ++i) out[i] = _mm512_cvtph_ps(_mm256_load_si256(d + i));
    };
    for (int64_t blk = 0; blk < nsub / 8; ++blk) {
      __m512 s0[8], s1[8];
      supers(tiles[0], blk, s0);
      if constexpr (NT == 2) supers(tiles[1], blk, s1);
      for (int64_t b = 8 * blk; b < 8 * blk + 8; ++b) {
        step(b, tiles[0], acc0, s0);
        if constexpr (NT == 2) step(b, tiles[1], acc1, s1);
      }
    }
  } else {
    for (int64_t b = 0; b < nsub; ++b) {
      step(b, tiles[0], acc0, nullptr);
      if constexpr (NT == 2) step(b, tiles[1], acc1, nullptr);
    }
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
#if defined(__GFNI__)
  // Affine matrices (one per t): output bit 4 takes input bit 2t, bit 5 takes
  // 2t + 1 (row 7 - i of the matrix, byte 7 - i of the qword, feeds output bit i).
  const auto top_bits = [](int t) {
    return _mm512_set1_epi64(static_cast<long long>((uint64_t{1} << (2 * t)) << 24 | (uint64_t{1} << (2 * t + 1)) << 16));
  };
  const __m512i kTopBits[4] = {top_bits(0), top_bits(1), top_bits(2), top_bits(3)};
#endif
  const auto step = [&](int64_t blk, int u, const uint8_t* tile,
                        __m512 (&acc)[MT][4]) __attribute__((always_inline)) {
    const uint8_t* p = tile + blk * kQ6Block;
    const int8_t* scs = reinterpret_cast<const int8_t*>(p + kQ6Values);
    const uint16_t* ds = reinterpret_cast<const uint16_t*>(p + kQ6Values + kQ6Scales);
    // An eighth of the block's bytes (1680, so 27 lines from its start), in
    // straight-line code: BM_Quant Q6_K from DRAM 24 -> 25-26 GB/s (done
    // the same way, the other kernels measured no change).
    static_assert(kQ6Block % 8 == 0 && (kQ6Block / 8 + 63) / 64 == 27);
#pragma GCC unroll 32
    for (int i = 0; i < 27; ++i) Prefetch(p, kPrefetchAhead + u * kQ6Block / 8 + 64 * i);
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
          // With GFNI (BM_QuantCached Q6_K 67-72 -> 81-85 GB/s; from DRAM and
          // in decode within noise) one affine op moves the 2 bits and clears
          // the rest, so no mask follows the select.
          const __m512i lo = half ? _mm512_srli_epi16(nib, 4) : nib;
          const __m512i plane = jj < 4 ? pl0 : pl1;
#if defined(__GFNI__)
          v[jj] = _mm512_ternarylogic_epi32(lo, _mm512_gf2p8affine_epi64_epi8(plane, kTopBits[jj % 4], 0), low4, 0xE4);
          (void)low6;
#else
          __m512i top;
          switch (jj % 4) {
            case 0: top = _mm512_slli_epi16(plane, 4); break;
            case 1: top = _mm512_slli_epi16(plane, 2); break;
            case 2: top = plane; break;
            default: top = _mm512_srli_epi16(plane, 2); break;
          }
          v[jj] = _mm512_and_si512(_mm512_ternarylogic_epi32(lo, top, low4, 0xE4), low6);
#endif
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
  DCHECK(nt == 1 || mt == 1) << "two streams only for one row of x";
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
  DCHECK(nt == 1 || mt == 1) << "two streams only for one row of x";
  if (nt == 2) return TileVnni<K, S, 1, 2>(g, tiles, k, a, outs);
  switch (mt) {
    case 1: TileVnni<K, S, 1>(g, tiles, k, a, outs); break;
    case 2: TileVnni<K, S, 2>(g, tiles, k, a, outs); break;
    case 3: TileVnni<K, S, 3>(g, tiles, k, a, outs); break;
    default: TileVnni<K, S, 4>(g, tiles, k, a, outs); break;
  }
}

// The VNNI kernel for nt tiles of g's kind.
void TilesVnni(const Segment& g, const uint8_t* const* tiles, int64_t k, const ActRow* a, int mt, int nt,
               float* const* outs) {
  if (g.f.kind == Kind::kS8 && g.f.s == 32) return TileVnniM<Kind::kS8, 32>(g, tiles, k, a, mt, nt, outs);
  if (g.f.kind == Kind::kQ6) return TileVnniQ6M(tiles, k, a, mt, nt, outs);
  if (g.f.kind == Kind::kK4) return TileVnniM<Kind::kK4, 32>(g, tiles, k, a, mt, nt, outs);
  if (g.f.kind == Kind::kK5) return TileVnniM<Kind::kK5, 32>(g, tiles, k, a, mt, nt, outs);
  return TileVnniM<Kind::kU4, 32>(g, tiles, k, a, mt, nt, outs);
}
constexpr bool kVectorized = true;
#else
constexpr bool kVectorized = false;
#endif

std::atomic<bool> g_portable{false};

}  // namespace

void QuantizeActivations(const float* x, int64_t k, int8_t* xq, float* dx, int32_t* xs) {
  DCHECK(k % 32 == 0) << "k = " << k;
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__)
  if (!g_portable.load(std::memory_order_relaxed)) {
    for (int64_t b = 0; b < k / 32; ++b) {
      QuantizeBlockVec(_mm512_loadu_ps(x + 32 * b), _mm512_loadu_ps(x + 32 * b + 16), xq + 32 * b, dx + b, xs + 2 * b);
    }
    return;
  }
#endif
  for (int64_t b = 0; b < k / 32; ++b) QuantizeBlockScalar(x + 32 * b, xq + 32 * b, dx + b, xs + 2 * b);
}

void Tiles(const Segment& g, const uint8_t* const* tiles, int64_t k, const ActRow* a, int mt, int nt,
           float* const* outs) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  if (!g_portable.load(std::memory_order_relaxed)) return TilesVnni(g, tiles, k, a, mt, nt, outs);
#endif
  for (int t = 0; t < nt; ++t) TileScalar(g, tiles[t], k, a, mt, outs[t]);
}
bool Vectorized() { return kVectorized; }
void SetPortable(bool portable) { g_portable = portable; }

}  // namespace crescent::kernels::quant_tile
