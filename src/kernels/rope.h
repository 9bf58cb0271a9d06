// Rotary position embedding in the Hugging Face "rotate_half" convention:
// for a head vector x of size d, with half = d/2 and angle_i = pos * inv_freq[i],
//   x'[i]        = x[i] * cos_i - x[i+half] * sin_i
//   x'[i+half]   = x[i+half] * cos_i + x[i] * sin_i        (0 <= i < half)
// inv_freq[i] = theta^(-2i/d), rescaled per Llama 3's rope_scaling ("llama3":
// low-frequency bands divided by factor, high kept, a smooth blend between) or
// divided by factor ("linear").
// Immutable after construction; thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace crescent::kernels {

struct RopeParams {
  int64_t head_dim = 0;
  double theta = 10000.0;
  enum class Scaling { kNone, kLinear, kLlama3 } scaling = Scaling::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  double original_max_position = 8192;
};

class Rope {
 public:
  explicit Rope(const RopeParams& p);
  const std::vector<double>& inv_freq() const { return inv_freq_; }
  int64_t head_dim() const { return head_dim_; }

  // Fills cos/sin tables for the given positions: [n, head_dim/2] each.
  void Tables(const int64_t* positions, int64_t n, float* cos, float* sin) const;
  // Rotates `heads` consecutive head vectors of one token in place.
  void Apply(float* x, int64_t heads, const float* cos, const float* sin) const;

 private:
  int64_t head_dim_;
  std::vector<double> inv_freq_;
};

}  // namespace crescent::kernels
