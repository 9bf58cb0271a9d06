#include "kernels/norm.h"

#include <cmath>

#include "kernels/convert.h"

namespace crescent::kernels {

namespace {
float InvRms(const float* x, int64_t dim, float eps) {
  float ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < dim; ++i) ss += x[i] * x[i];
  return 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
}
}  // namespace

void RmsNorm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float s = InvRms(xr, dim, eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * s * w[i];
  }
}

void RmsNormBf16(const float* x, const float* w, int64_t rows, int64_t dim, float eps, uint16_t* y) {
  float tmp[1024];
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float s = InvRms(xr, dim, eps);
    for (int64_t i0 = 0; i0 < dim; i0 += 1024) {
      int64_t len = dim - i0 < 1024 ? dim - i0 : 1024;
      for (int64_t i = 0; i < len; ++i) tmp[i] = xr[i0 + i] * s * w[i0 + i];
      F32ToBf16(tmp, y + r * dim + i0, len);
    }
  }
}

}  // namespace crescent::kernels
