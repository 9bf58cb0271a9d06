#include "kernels/activation.h"

#include <cmath>

#include "kernels/convert.h"
#include "kernels/vec_math.h"

namespace crescent::kernels {

void SiluMul(const float* gate_up, int64_t rows, int64_t dim, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up + r * 2 * dim;
    const float* u = g + dim;
    float* o = out + r * dim;
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

void SiluMulBf16(const float* gate_up, int64_t rows, int64_t dim, uint16_t* out) {
  float tmp[1024];
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up + r * 2 * dim;
    const float* u = g + dim;
    for (int64_t i0 = 0; i0 < dim; i0 += 1024) {
      int64_t len = dim - i0 < 1024 ? dim - i0 : 1024;
      int64_t i = 0;
#if defined(__AVX512F__)
      for (; i + 16 <= len; i += 16) {
        __m512 x = _mm512_loadu_ps(g + i0 + i);
        __m512 sig = _mm512_div_ps(_mm512_set1_ps(1.0f),
                                   _mm512_add_ps(_mm512_set1_ps(1.0f), Exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        _mm512_storeu_ps(tmp + i, _mm512_mul_ps(_mm512_mul_ps(x, sig), _mm512_loadu_ps(u + i0 + i)));
      }
#endif
      for (; i < len; ++i) {
        float x = g[i0 + i];
        tmp[i] = x / (1.0f + std::exp(-x)) * u[i0 + i];
      }
      F32ToBf16(tmp, out + r * dim + i0, len);
    }
  }
}

}  // namespace crescent::kernels
