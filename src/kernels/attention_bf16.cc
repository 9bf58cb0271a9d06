#include "kernels/attention_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include "base/check.h"
#include "base/dtype.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512BF16__)
#define CRESCENT_FLASH_BF16 1
#else
#define CRESCENT_FLASH_BF16 0
#endif
#if CRESCENT_FLASH_BF16 && defined(__AMX_TILE__) && defined(__AMX_BF16__)
#define CRESCENT_FLASH_AMX 1
#include <sys/syscall.h>
#include <unistd.h>
#else
#define CRESCENT_FLASH_AMX 0
#endif

namespace crescent::kernels::internal {

bool Bf16FlashApplies(int64_t head_dim) {
  return CRESCENT_FLASH_BF16 && head_dim > 0 && head_dim % 8 == 0 && head_dim <= 256;
}

bool AmxFlashApplies(int64_t head_dim) {
#if CRESCENT_FLASH_AMX
  // Linux hands out the 8 KiB of tile state only on request (arch_prctl
  // ARCH_REQ_XCOMP_PERM for XTILEDATA); asked once per process.
  static const bool permitted = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  return permitted && head_dim > 0 && head_dim % 32 == 0 && head_dim <= 256;
#else
  (void)head_dim;
  return false;
#endif
}

int64_t Bf16FlashBlockTokens(int64_t group) { return std::max<int64_t>(1, 128 / std::max<int64_t>(1, group)); }

#if CRESCENT_FLASH_BF16
namespace {

constexpr int64_t kChunk = 32;  // keys per chunk, at positions that are multiples of 32
constexpr int64_t kPairs = kChunk / 2;

alignas(64) const uint16_t kZeroRow[256] = {};

inline __m512bh AsBh(__m512i x) { return (__m512bh)x; }

// 2^x per lane for x <= 0 (scores are in log2 units: log2 e is folded into
// Q's scale), relative error < 3e-6 (degree-4 fit on [-1/2, 1/2]); below -126
// it gives denormals then 0. Not for -inf or NaN: callers mask those lanes.
inline __m512 Exp2(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(0.009570066817104816f), f, _mm512_set1_ps(0.05591785907745361f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.2402474582195282f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.6931217908859253f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.9999992847442627f));
  return _mm512_scalef_ps(q, n);
}

// Lane i of the result: the bf16 pair (lo[i], hi[i]), each rounded to nearest
// even (vcvtne2ps2bf16: denormals flush to zero).
inline __m512i PackPair(__m512 lo, __m512 hi) {
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

inline int32_t Pair(const uint16_t* row, int64_t dp) {
  int32_t w;
  std::memcpy(&w, row + 2 * dp, 4);
  return w;
}

// St[k * nvt + v] = scores of keys krow[0..NK) against row vectors v0..v0+NV.
template <int NV, int NK>
inline void ScoreKeys(const __m512i* Qp, int64_t hd2, int64_t v0, const uint16_t* const* krow, __m512* St,
                      int64_t nvt) {
  __m512 acc[NK][NV];
  for (int k = 0; k < NK; ++k)
    for (int v = 0; v < NV; ++v) acc[k][v] = _mm512_setzero_ps();
  for (int64_t dp = 0; dp < hd2; ++dp) {
    __m512bh qv[NV];
    for (int v = 0; v < NV; ++v) qv[v] = AsBh(_mm512_load_si512(Qp + (v0 + v) * hd2 + dp));
    for (int k = 0; k < NK; ++k) {
      const __m512bh kb = AsBh(_mm512_set1_epi32(Pair(krow[k], dp)));
      for (int v = 0; v < NV; ++v) acc[k][v] = _mm512_dpbf16_ps(acc[k][v], qv[v], kb);
    }
  }
  for (int k = 0; k < NK; ++k)
    for (int v = 0; v < NV; ++v) St[k * nvt + v0 + v] = acc[k][v];
}

template <int NV>
inline void ScoreChunk(const __m512i* Qp, int64_t hd2, int64_t v0, const uint16_t* const* krow, __m512* St,
                       int64_t nvt) {
  constexpr int NK = NV == 1 ? 16 : NV == 2 ? 8 : 4;
  for (int64_t k0 = 0; k0 < kChunk; k0 += NK) ScoreKeys<NV, NK>(Qp, hd2, v0, krow + k0, St + k0 * nvt, nvt);
}

// O[v][d] (lanes = rows) = O * rescale + sum over the chunk's pairs of P x V.
inline void AccumulateValues(const __m512i* Pp, const int32_t* Vp, int64_t hd, __m512 rescale, __m512* O) {
  __m512bh pv[kPairs];
  for (int64_t tp = 0; tp < kPairs; ++tp) pv[tp] = AsBh(Pp[tp]);
  for (int64_t d = 0; d < hd; d += 8) {
    __m512 acc[8];
    for (int k = 0; k < 8; ++k) acc[k] = _mm512_mul_ps(O[d + k], rescale);
    for (int64_t tp = 0; tp < kPairs; ++tp) {
      for (int k = 0; k < 8; ++k) acc[k] = _mm512_dpbf16_ps(acc[k], pv[tp], AsBh(_mm512_set1_epi32(Vp[tp * hd + d + k])));
    }
    for (int k = 0; k < 8; ++k) O[d + k] = acc[k];
  }
}


#if CRESCENT_FLASH_AMX
// dst[j][i] = src[i][j] for a 16 x 16 block of 32-bit words (src rows
// src_stride words apart; dst dense).
inline void Transpose16x16(const int32_t* src, int64_t src_stride, int32_t* dst) {
  __m512i r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(src + i * src_stride);
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int b = 0; b < 4; ++b) {  // u[4b + c]: rows 4b..4b+3, columns c, c+4, c+8, c+12
    r[4 * b] = _mm512_unpacklo_epi64(t[4 * b], t[4 * b + 2]);
    r[4 * b + 1] = _mm512_unpackhi_epi64(t[4 * b], t[4 * b + 2]);
    r[4 * b + 2] = _mm512_unpacklo_epi64(t[4 * b + 1], t[4 * b + 3]);
    r[4 * b + 3] = _mm512_unpackhi_epi64(t[4 * b + 1], t[4 * b + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i v = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x88), w = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xDD);
    const __m512i x = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x88), y = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xDD);
    _mm512_storeu_si512(dst + c * 16, _mm512_shuffle_i32x4(v, x, 0x88));
    _mm512_storeu_si512(dst + (c + 8) * 16, _mm512_shuffle_i32x4(v, x, 0xDD));
    _mm512_storeu_si512(dst + (c + 4) * 16, _mm512_shuffle_i32x4(w, y, 0x88));
    _mm512_storeu_si512(dst + (c + 12) * 16, _mm512_shuffle_i32x4(w, y, 0xDD));
  }
}

// Tile state for one Block: 8 tiles of 16 rows x 64 bytes. Whatever the thread
// had configured (oneDNN's matmuls use tiles too) is put back afterwards.
struct alignas(64) TileConfig {
  uint8_t palette = 0, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
class TileScope {
 public:
  TileScope() {
    _tile_storeconfig(&saved_);
    TileConfig c;
    c.palette = 1;
    for (int t = 0; t < 8; ++t) {
      c.rows[t] = 16;
      c.colsb[t] = 64;
    }
    _tile_loadconfig(&c);
  }
  ~TileScope() {
    if (saved_.palette != 0) {
      _tile_loadconfig(&saved_);
    } else {
      _tile_release();
    }
  }
  TileScope(const TileScope&) = delete;
  TileScope& operator=(const TileScope&) = delete;

 private:
  TileConfig saved_;
};

// St[t * nv + v] for the chunk's 32 keys: tiles C[key][row lane] = K rows (A,
// straight from the page) x Qp (B, pairs along d). Up to four row vectors at a
// time (C in tiles 4-7, A in 0, B in 1-3).
inline void AmxScores(const __m512i* Qp, int64_t hd, int64_t nv, const uint16_t* const* ktile, int64_t kstride,
                      __m512* St) {
  const int64_t hd2 = hd / 2;
  for (int kt = 0; kt < 2; ++kt) {
    if (ktile[kt] == nullptr) continue;  // no key of this tile exists: masked, never read
    for (int64_t v0 = 0; v0 < nv; v0 += 4) {
      const int64_t m = std::min<int64_t>(4, nv - v0);
      _tile_zero(4);
      if (m > 1) _tile_zero(5);
      if (m > 2) _tile_zero(6);
      if (m > 3) _tile_zero(7);
      for (int64_t dc = 0; dc < hd / 32; ++dc) {
        _tile_loadd(0, ktile[kt] + dc * 32, kstride);
        const __m512i* b = Qp + v0 * hd2 + dc * 16;
        _tile_loadd(1, b, 64);
        _tile_dpbf16ps(4, 0, 1);
        if (m > 1) {
          _tile_loadd(2, b + hd2, 64);
          _tile_dpbf16ps(5, 0, 2);
        }
        if (m > 2) {
          _tile_loadd(3, b + 2 * hd2, 64);
          _tile_dpbf16ps(6, 0, 3);
        }
        if (m > 3) {
          _tile_loadd(1, b + 3 * hd2, 64);
          _tile_dpbf16ps(7, 0, 1);
        }
      }
      __m512* c = St + kt * 16 * nv + v0;
      const int64_t cs = nv * 64;
      _tile_stored(4, c, cs);
      if (m > 1) _tile_stored(5, c + 1, cs);
      if (m > 2) _tile_stored(6, c + 2, cs);
      if (m > 3) _tile_stored(7, c + 3, cs);
    }
  }
}

// O^T[d][lane] += V^T (A: Vt, [16 d][32 keys]) x P (B: Pp of row vector v).
inline void AmxValues(const __m512i* Pp, int64_t nv, const int32_t* Vt, int64_t hd, __m512* Ov) {
  _tile_loadd(1, Pp, nv * 64);
  for (int64_t dt = 0; dt < hd / 16; dt += 2) {
    _tile_loadd(4, Ov + dt * 16, 64);
    _tile_loadd(5, Ov + (dt + 1) * 16, 64);
    _tile_loadd(0, Vt + dt * 256, 64);
    _tile_loadd(2, Vt + (dt + 1) * 256, 64);
    _tile_dpbf16ps(4, 0, 1);
    _tile_dpbf16ps(5, 2, 1);
    _tile_stored(4, Ov + dt * 16, 64);
    _tile_stored(5, Ov + (dt + 1) * 16, 64);
  }
}
#endif

inline const uint16_t* KvRow(void* base, const KvLayerView& kv, const int32_t* table, int64_t t, int64_t g) {
  const int64_t page = table[t / kv.page_tokens];
  const int64_t slot = t % kv.page_tokens;
  return static_cast<const uint16_t*>(base) + page * kv.page_elems() + (g * kv.page_tokens + slot) * kv.head_dim;
}

template <typename Out, bool kAmx>
void Block(const AttentionParams& p, const KvLayerView& kv, const AttentionSeq& s, int64_t g, int64_t i0, int64_t i1,
           const float* q, int64_t q_stride, Out* out, std::vector<float>& scratch) {
  const int64_t hd = p.head_dim, hd2 = hd / 2;
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t rows = (i1 - i0) * group;
  const int64_t nv = (rows + 15) / 16;
  // Scratch, in 64-byte units: Qp [nv][hd2], O [nv][hd], St [kChunk][nv],
  // Pp [kPairs][nv], M, L, rowpos, rowlo [nv], Vp [kPairs][hd] int32 (hd / 16
  // units per pair).
  // With tiles also Vt [hd / 16][16 d][kPairs] int32 and a staging tile of K.
  const int64_t units = nv * hd2 + nv * hd + kChunk * nv + kPairs * nv + 4 * nv + 2 * (kPairs * hd / 16) + hd + 1;
  scratch.resize(static_cast<size_t>(units * 16));
  auto* base = reinterpret_cast<__m512i*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) & ~uintptr_t{63});
  __m512i* Qp = base;
  __m512* O = reinterpret_cast<__m512*>(Qp + nv * hd2);
  __m512* St = O + nv * hd;
  __m512i* Pp = reinterpret_cast<__m512i*>(St + kChunk * nv);
  __m512* M = reinterpret_cast<__m512*>(Pp + kPairs * nv);  // running max per lane
  __m512* L = M + nv;                                          // running sum per lane
  __m512i* rowpos = reinterpret_cast<__m512i*>(L + nv);        // each lane's position (-1: no row)
  __m512i* rowlo = rowpos + nv;                                // first key it sees
  auto* Vp = reinterpret_cast<int32_t*>(rowlo + nv);
  int32_t* Vt = Vp + kPairs * hd;
  [[maybe_unused]] auto* kstage = reinterpret_cast<uint16_t*>(Vt + kPairs * hd);  // [32][hd] (AMX)
#if CRESCENT_FLASH_AMX
  std::optional<TileScope> tiles;
  if constexpr (kAmx) tiles.emplace();
#endif

  // Scores in log2 units: softmax is then 2^(s - max), no multiply per score.
  const float qscale = p.scale * 1.44269504088896341f;
  // Pack the rows: lane i of vector v is row 16 v + i = (token, head j of the group).
  alignas(64) int32_t pos_l[16], lo_l[16];
  for (int64_t v = 0; v < nv; ++v) {
    alignas(64) uint16_t pk[256 * 2];  // scratch for one lane's row, hd <= 256
    for (int lane = 0; lane < 16; ++lane) {
      const int64_t r = v * 16 + lane;
      if (r < rows) {
        const int64_t tok = i0 + r / group, j = r % group;
        const float* src = q + (s.row + tok) * q_stride + (g * group + j) * hd;
        for (int64_t d = 0; d < hd; ++d) pk[d] = crescent::F32ToBf16(src[d] * qscale);
        const int64_t pos = s.start_pos + tok;
        pos_l[lane] = static_cast<int32_t>(pos);
        lo_l[lane] = static_cast<int32_t>(p.sliding_window > 0 ? std::max<int64_t>(0, pos - p.sliding_window + 1) : 0);
      } else {
        std::fill(pk, pk + hd, uint16_t{0});
        pos_l[lane] = -1;  // sees no key
        lo_l[lane] = 0;
      }
      auto* lanes = reinterpret_cast<int32_t*>(Qp + v * hd2);
      for (int64_t dp = 0; dp < hd2; ++dp) lanes[dp * 16 + lane] = Pair(pk, dp);
    }
    rowpos[v] = _mm512_load_si512(pos_l);
    rowlo[v] = _mm512_load_si512(lo_l);
    M[v] = _mm512_set1_ps(-INFINITY);
    L[v] = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; ++d) O[v * hd + d] = _mm512_setzero_ps();
  }

  const int64_t pos_first = s.start_pos + i0, pos_last = s.start_pos + i1 - 1;
  const int64_t lo_first = p.sliding_window > 0 ? std::max<int64_t>(0, pos_first - p.sliding_window + 1) : 0;
  // Row pointers of the chunk at t0 (n of its keys exist). K rows past n in a
  // 16-key half that exists point into the page (masked, never weighted); V
  // rows past n, and rows of a half that does not exist, are zeros. With pages
  // of a multiple of 16 tokens a half lies in one page: one lookup per half.
  auto chunk_rows = [&](int64_t t0, int64_t n, const uint16_t** kr, const uint16_t** vr) {
    if (kv.page_tokens % 16 == 0) {
      for (int64_t h = 0; h < kChunk; h += 16) {
        const uint16_t* k = h < n ? KvRow(kv.k, kv, s.block_table, t0 + h, g) : nullptr;
        const uint16_t* v = h < n ? KvRow(kv.v, kv, s.block_table, t0 + h, g) : nullptr;
        for (int64_t t = 0; t < 16; ++t) {
          kr[h + t] = k != nullptr ? k + t * hd : kZeroRow;
          vr[h + t] = h + t < n ? v + t * hd : kZeroRow;
        }
      }
    } else {
      for (int64_t t = 0; t < kChunk; ++t) {
        kr[t] = t < n ? KvRow(kv.k, kv, s.block_table, t0 + t, g) : kZeroRow;
        vr[t] = t < n ? KvRow(kv.v, kv, s.block_table, t0 + t, g) : kZeroRow;
      }
    }
  };
  const uint16_t* rows_buf[2][2][kChunk];  // [this/next chunk][K/V][key]
  int cur = 0;
  const int64_t t_begin = lo_first / kChunk * kChunk;
  chunk_rows(t_begin, std::min<int64_t>(kChunk, pos_last + 1 - t_begin), rows_buf[0][0], rows_buf[0][1]);
  const __m512bh ones = AsBh(_mm512_set1_epi16(0x3F80));  // bf16 1.0 in every half
  for (int64_t t0 = t_begin; t0 <= pos_last; t0 += kChunk, cur ^= 1) {
    const int64_t n = std::min<int64_t>(kChunk, pos_last + 1 - t0);  // keys that exist in this chunk
    const uint16_t* const* krow = rows_buf[cur][0];
    const uint16_t* const* vrow = rows_buf[cur][1];
    // Long contexts stream K/V from beyond L2: fetch the next chunk's rows now.
    if (t0 + kChunk <= pos_last) {
      const uint16_t** nk = rows_buf[cur ^ 1][0];
      const uint16_t** nvr = rows_buf[cur ^ 1][1];
      chunk_rows(t0 + kChunk, std::min<int64_t>(kChunk, pos_last + 1 - t0 - kChunk), nk, nvr);
      for (int64_t t = 0; t < kChunk; ++t) {
        for (int64_t b = 0; b < hd * 2; b += 64) {
          if (nk[t] != kZeroRow) _mm_prefetch(reinterpret_cast<const char*>(nk[t]) + b, _MM_HINT_T0);
          if (nvr[t] != kZeroRow) _mm_prefetch(reinterpret_cast<const char*>(nvr[t]) + b, _MM_HINT_T0);
        }
      }
    }
    // V re-paired: Vp[tp][d] = (V[t0 + 2tp][d], V[t0 + 2tp + 1][d]), zero past n.
    for (int64_t tp = 0; tp < kPairs; ++tp) {
      const uint16_t* a = vrow[2 * tp];
      const uint16_t* b = vrow[2 * tp + 1];
      for (int64_t d = 0; d < hd; d += 32) {
        const __mmask32 m = hd - d >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << (hd - d)) - 1);
        const __m512i va = _mm512_maskz_loadu_epi16(m, a + d), vb = _mm512_maskz_loadu_epi16(m, b + d);
        const __m512i lo_idx = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7,
                                                38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
        const __m512i hi_idx = _mm512_add_epi16(lo_idx, _mm512_set1_epi16(16));
        int32_t* dst = Vp + tp * hd + d;
        const int64_t left = std::min<int64_t>(32, hd - d);
        _mm512_mask_storeu_epi32(dst, static_cast<__mmask16>(left >= 16 ? 0xFFFF : (1u << left) - 1),
                                 _mm512_permutex2var_epi16(va, lo_idx, vb));
        if (left > 16) {
          _mm512_mask_storeu_epi32(dst + 16, static_cast<__mmask16>(left >= 32 ? 0xFFFF : (1u << (left - 16)) - 1),
                                   _mm512_permutex2var_epi16(va, hi_idx, vb));
        }
      }
    }
#if CRESCENT_FLASH_AMX
    if constexpr (kAmx) {
      for (int64_t dt = 0; dt < hd / 16; ++dt) Transpose16x16(Vp + dt * 16, hd, Vt + dt * 256);
      // K tiles of 16 keys: straight from the page when it holds all 16 (rows
      // past n exist there and are masked), else staged with zeros past n.
      const uint16_t* ktile[2] = {nullptr, nullptr};
      for (int kt = 0; kt < 2; ++kt) {
        const int64_t k0 = kt * 16;
        if (k0 >= n) continue;
        if (kv.page_tokens % 16 == 0) {
          ktile[kt] = krow[k0];
        } else {
          uint16_t* st = kstage + kt * 16 * hd;
          for (int64_t t = 0; t < 16; ++t) std::memcpy(st + t * hd, krow[k0 + t], static_cast<size_t>(hd) * 2);
          ktile[kt] = st;
        }
      }
      AmxScores(Qp, hd, nv, ktile, hd * 2, St);
    }
#endif
    // Scores for every row vector, four at a time.
    for (int64_t v0 = 0; v0 < (kAmx ? 0 : nv); v0 += 4) {
      switch (std::min<int64_t>(4, nv - v0)) {
        case 1: ScoreChunk<1>(Qp, hd2, v0, krow, St, nv); break;
        case 2: ScoreChunk<2>(Qp, hd2, v0, krow, St, nv); break;
        case 3: ScoreChunk<3>(Qp, hd2, v0, krow, St, nv); break;
        default: ScoreChunk<4>(Qp, hd2, v0, krow, St, nv); break;
      }
    }
    // Online softmax, a lane per row; then O += P V. A chunk that every lane
    // of the vector sees whole (the usual case far from the diagonal) skips
    // the masks: masking all-true lanes changes no bit, so both paths agree.
    for (int64_t v = 0; v < nv; ++v) {
      const bool whole = n == kChunk && t0 + kChunk - 1 <= _mm512_reduce_min_epi32(rowpos[v]) &&
                         t0 >= _mm512_reduce_max_epi32(rowlo[v]);
      __m512 sc[kChunk];
      __mmask16 valid[kChunk];
      __m512 mx = _mm512_set1_ps(-INFINITY);
      for (int64_t t = 0; t < kChunk; ++t) {
        if (whole) {
          valid[t] = 0xFFFF;
          sc[t] = St[t * nv + v];
        } else {
          const __m512i key = _mm512_set1_epi32(static_cast<int32_t>(t0 + t));
          valid[t] = t < n ? static_cast<__mmask16>(_mm512_cmple_epi32_mask(key, rowpos[v]) &
                                                    _mm512_cmpge_epi32_mask(key, rowlo[v]))
                           : __mmask16{0};
          sc[t] = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), valid[t], St[t * nv + v]);
        }
        mx = _mm512_max_ps(mx, sc[t]);
      }
      const __m512 m_old = M[v];
      const __m512 m_new = _mm512_max_ps(m_old, mx);
      // rescale = 2^(m_old - m_new), exactly 1 where the max did not move and
      // 0 where nothing was seen before or where it would be an f32 denormal
      // (below 2^-126, so no bit depends on a thread's FTZ/DAZ setting).
      const __m512 drop = _mm512_sub_ps(m_old, m_new);
      __m512 rescale = Exp2(drop);
      rescale = _mm512_mask_mov_ps(rescale, _mm512_cmp_ps_mask(drop, _mm512_set1_ps(-126.0f), _CMP_LT_OQ),
                                   _mm512_setzero_ps());
      rescale = _mm512_mask_mov_ps(rescale, _mm512_cmp_ps_mask(m_old, m_new, _CMP_EQ_OQ), _mm512_set1_ps(1.0f));
      if (whole) {
        for (int64_t t = 0; t < kChunk; ++t) sc[t] = Exp2(_mm512_sub_ps(sc[t], m_new));
      } else {
        for (int64_t t = 0; t < kChunk; ++t) sc[t] = _mm512_maskz_mov_ps(valid[t], Exp2(_mm512_sub_ps(sc[t], m_new)));
      }
      // P in bf16 pairs of keys; the running sum adds the rounded P (the
      // weights P V uses), in f32, through a dot product with ones.
      __m512 part[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int64_t tp = 0; tp < kPairs; ++tp) {
        const __m512i pk = PackPair(sc[2 * tp], sc[2 * tp + 1]);
        Pp[tp * nv + v] = pk;
        part[tp % 4] = _mm512_dpbf16_ps(part[tp % 4], AsBh(pk), ones);
      }
      L[v] = _mm512_fmadd_ps(L[v], rescale, _mm512_add_ps(_mm512_add_ps(part[0], part[1]), _mm512_add_ps(part[2], part[3])));
      M[v] = m_new;
#if CRESCENT_FLASH_AMX
      if constexpr (kAmx) {
        // Rescale O^T in place unless no lane's max moved (the usual case once
        // a row has seen its largest scores), then add this chunk.
        if (_mm512_cmp_ps_mask(rescale, _mm512_set1_ps(1.0f), _CMP_EQ_OQ) != 0xFFFF) {
          for (int64_t d = 0; d < hd; ++d) O[v * hd + d] = _mm512_mul_ps(O[v * hd + d], rescale);
        }
        AmxValues(Pp + v, nv, Vt, hd, O + v * hd);
        continue;
      }
#endif
      __m512i pp[kPairs];
      for (int64_t tp = 0; tp < kPairs; ++tp) pp[tp] = Pp[tp * nv + v];
      AccumulateValues(pp, Vp, hd, rescale, O + v * hd);
    }
  }

  // Normalise and write the rows back in head-major order.
  for (int64_t v = 0; v < nv; ++v) {
    alignas(64) float inv[16];
    _mm512_store_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.0f), L[v]));
    const float* ov = reinterpret_cast<const float*>(O + v * hd);  // [hd][16 lanes]
    for (int lane = 0; lane < 16; ++lane) {
      const int64_t r = v * 16 + lane;
      if (r >= rows) break;
      const int64_t tok = i0 + r / group, j = r % group;
      Out* dst = out + (s.row + tok) * p.num_heads * hd + (g * group + j) * hd;
      for (int64_t d = 0; d < hd; ++d) {
        const float o = ov[d * 16 + lane] * inv[lane];
        if constexpr (sizeof(Out) == 2) {
          dst[d] = crescent::F32ToBf16(o);
        } else {
          dst[d] = o;
        }
      }
    }
  }
}

}  // namespace

void Bf16FlashBlock(const AttentionParams& p, const KvLayerView& kv, const AttentionSeq& s, int64_t g, int64_t i0,
                    int64_t i1, const float* q, int64_t q_stride, uint16_t* out, std::vector<float>& scratch, bool amx) {
  if (amx) {
    Block<uint16_t, CRESCENT_FLASH_AMX == 1>(p, kv, s, g, i0, i1, q, q_stride, out, scratch);
  } else {
    Block<uint16_t, false>(p, kv, s, g, i0, i1, q, q_stride, out, scratch);
  }
}
void Bf16FlashBlock(const AttentionParams& p, const KvLayerView& kv, const AttentionSeq& s, int64_t g, int64_t i0,
                    int64_t i1, const float* q, int64_t q_stride, float* out, std::vector<float>& scratch, bool amx) {
  if (amx) {
    Block<float, CRESCENT_FLASH_AMX == 1>(p, kv, s, g, i0, i1, q, q_stride, out, scratch);
  } else {
    Block<float, false>(p, kv, s, g, i0, i1, q, q_stride, out, scratch);
  }
}
#else
void Bf16FlashBlock(const AttentionParams&, const KvLayerView&, const AttentionSeq&, int64_t, int64_t, int64_t,
                    const float*, int64_t, uint16_t*, std::vector<float>&, bool) {
  CHECK(false) << "the bf16 flash kernel is not in this build";
}
void Bf16FlashBlock(const AttentionParams&, const KvLayerView&, const AttentionSeq&, int64_t, int64_t, int64_t,
                    const float*, int64_t, float*, std::vector<float>&, bool) {
  CHECK(false) << "the bf16 flash kernel is not in this build";
}
#endif

}  // namespace crescent::kernels::internal
