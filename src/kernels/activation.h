// SwiGLU's gate: out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + e^-x).
// Input rows are [gate | up] as the fused gate_up projection writes them.
// Thread-safe; callers parallelize over rows.
#pragma once

#include <cstdint>

namespace crescent::kernels {

// gate_up: [rows, 2*dim] f32; out: [rows, dim] bf16.
void SiluMulBf16(const float* gate_up, int64_t rows, int64_t dim, uint16_t* out);
// Same, f32 out.
void SiluMul(const float* gate_up, int64_t rows, int64_t dim, float* out);

}  // namespace crescent::kernels
