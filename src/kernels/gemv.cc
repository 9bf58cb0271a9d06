#include "kernels/gemv.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "base/thread_pool.h"

namespace crescent::kernels {

#if defined(__AVX512BF16__)
namespace {

// out[M][64] (+)= rows xp[0..M) . W over K blocks [kb0, kb1) of one 64-column block.
template <int M>
void GemvBlock(const uint16_t* w, int64_t kb0, int64_t kb1, const uint32_t* const* xp, float* out, bool add) {
  __m512 acc[M][4];
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < 4; ++j) acc[m][j] = add ? _mm512_loadu_ps(out + m * 64 + j * 16) : _mm512_setzero_ps();
  for (int64_t kb = kb0; kb < kb1; ++kb) {
    const uint16_t* blk = w + kb * 2048;
#pragma GCC unroll 4
    for (int kp = 0; kp < 16; ++kp) {
      const __m512i* row = reinterpret_cast<const __m512i*>(blk + kp * 128);
      __m512bh w0 = (__m512bh)_mm512_load_si512(row), w1 = (__m512bh)_mm512_load_si512(row + 1);
      __m512bh w2 = (__m512bh)_mm512_load_si512(row + 2), w3 = (__m512bh)_mm512_load_si512(row + 3);
      for (int m = 0; m < M; ++m) {
        __m512bh xv = (__m512bh)_mm512_set1_epi32(static_cast<int>(xp[m][kb * 16 + kp]));
        acc[m][0] = _mm512_dpbf16_ps(acc[m][0], w0, xv);
        acc[m][1] = _mm512_dpbf16_ps(acc[m][1], w1, xv);
        acc[m][2] = _mm512_dpbf16_ps(acc[m][2], w2, xv);
        acc[m][3] = _mm512_dpbf16_ps(acc[m][3], w3, xv);
      }
    }
  }
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < 4; ++j) _mm512_storeu_ps(out + m * 64 + j * 16, acc[m][j]);
}

}  // namespace

void GemvBf16Blocked(const uint16_t* w, int64_t n, int64_t k, const uint16_t* x, int64_t m, const float* bias, float* y,
              bool accumulate) {
  const int64_t kb_count = (k + 31) / 32, nb_count = (n + 63) / 64;
  // x rows as k-pairs, zero-padded to whole K blocks.
  thread_local std::vector<uint32_t> xbuf;
  const uint32_t* xp[kGemvMaxRows];
  if (k % 32 == 0) {
    for (int64_t r = 0; r < m; ++r) xp[r] = reinterpret_cast<const uint32_t*>(x + r * k);
  } else {
    xbuf.assign(static_cast<size_t>(m * kb_count * 16), 0);
    for (int64_t r = 0; r < m; ++r) {
      std::memcpy(xbuf.data() + r * kb_count * 16, x + r * k, static_cast<size_t>(k) * 2);
      xp[r] = xbuf.data() + r * kb_count * 16;
    }
  }
  // Rows go in groups of up to 4 (16 accumulators). K goes in slices of at most
  // kKSlice blocks (a 256 KB slice of a 64-column block of W): the first row
  // group streams a slice from memory and the later groups find it in L2.
  constexpr int64_t kKSlice = 64;
  ThreadPool::Default().RunOnAll([&](int t, int nt) {
    alignas(64) float out[kGemvMaxRows * 64];
    for (int64_t nb = nb_count * t / nt; nb < nb_count * (t + 1) / nt; ++nb) {
      const uint16_t* wb = w + nb * kb_count * 2048;
      for (int64_t kb0 = 0; kb0 < kb_count; kb0 += kKSlice) {
        const int64_t kb1 = std::min(kb_count, kb0 + kKSlice);
        for (int64_t r0 = 0; r0 < m; r0 += 4) {
          float* o = out + r0 * 64;
          switch (std::min<int64_t>(4, m - r0)) {
            case 1: GemvBlock<1>(wb, kb0, kb1, xp + r0, o, kb0 > 0); break;
            case 2: GemvBlock<2>(wb, kb0, kb1, xp + r0, o, kb0 > 0); break;
            case 3: GemvBlock<3>(wb, kb0, kb1, xp + r0, o, kb0 > 0); break;
            default: GemvBlock<4>(wb, kb0, kb1, xp + r0, o, kb0 > 0); break;
          }
        }
      }
      const int64_t n0 = nb * 64, len = std::min<int64_t>(64, n - n0);
      for (int64_t r = 0; r < m; ++r) {
        float* yr = y + r * n + n0;
        const float* o = out + r * 64;
        for (int64_t j = 0; j < len; ++j) {
          float v = o[j] + (bias ? bias[n0 + j] : 0.0f);
          yr[j] = accumulate ? yr[j] + v : v;
        }
      }
    }
  });
}
#else
void GemvBf16Blocked(const uint16_t*, int64_t, int64_t, const uint16_t*, int64_t, const float*, float*, bool) {
  CHECK(false) << "GemvBf16Blocked needs AVX512-BF16";
}
#endif

}  // namespace crescent::kernels
