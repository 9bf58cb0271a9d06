// RMSNorm: y = x / sqrt(mean(x²) + eps) * w, per row, in f32.
// Rows are independent; the Bf16 form writes bf16 (the next matmul's input).
// Thread-safe; callers parallelize over rows.
#pragma once

#include <cstdint>

namespace crescent::kernels {

// x: [rows, dim] f32; w: [dim]; y: [rows, dim] (may alias x).
void RmsNorm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y);
void RmsNormBf16(const float* x, const float* w, int64_t rows, int64_t dim, float eps, uint16_t* y);

}  // namespace crescent::kernels
