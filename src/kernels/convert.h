// Bulk conversions between f32 and bf16 (round to nearest even), vectorized
// with AVX512-BF16 where the build targets it, scalar otherwise.
// Pure functions of their arguments; thread-safe.
#pragma once

#include <cstdint>

namespace crescent::kernels {

void F32ToBf16(const float* in, uint16_t* out, int64_t n);
void Bf16ToF32(const uint16_t* in, float* out, int64_t n);

}  // namespace crescent::kernels
