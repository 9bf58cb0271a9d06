#include "kernels/convert.h"

#include <immintrin.h>

#include "base/dtype.h"

namespace crescent::kernels {

void F32ToBf16(const float* in, uint16_t* out, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512BF16__)
  for (; i + 16 <= n; i += 16) {
    __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), reinterpret_cast<__m256i&>(v));
  }
#endif
  for (; i < n; ++i) out[i] = crescent::F32ToBf16(in[i]);
}

void Bf16ToF32(const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = crescent::Bf16ToF32(in[i]);
}

}  // namespace crescent::kernels
