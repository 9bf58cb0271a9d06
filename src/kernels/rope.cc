#include "kernels/rope.h"

#include <cmath>

namespace crescent::kernels {

Rope::Rope(const RopeParams& p) : head_dim_(p.head_dim) {
  const int64_t half = p.head_dim / 2;
  inv_freq_.resize(half);
  for (int64_t i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(p.theta, static_cast<double>(2 * i) / static_cast<double>(p.head_dim));
    if (p.scaling == RopeParams::Scaling::kLinear) {
      f /= p.factor;
    } else if (p.scaling == RopeParams::Scaling::kLlama3) {
      const double low_wavelen = p.original_max_position / p.low_freq_factor;
      const double high_wavelen = p.original_max_position / p.high_freq_factor;
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen > low_wavelen) {
        f /= p.factor;
      } else if (wavelen >= high_wavelen) {  // medium band: blend
        double smooth = (p.original_max_position / wavelen - p.low_freq_factor) /
                        (p.high_freq_factor - p.low_freq_factor);
        f = (1.0 - smooth) * f / p.factor + smooth * f;
      }
    }
    inv_freq_[i] = f;
  }
}

void Rope::Tables(const int64_t* positions, int64_t n, float* cos, float* sin) const {
  const int64_t half = head_dim_ / 2;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      // HF computes the angle in f32: (inv_freq.float() @ position.float()).
      float angle = static_cast<float>(inv_freq_[i]) * static_cast<float>(positions[t]);
      cos[t * half + i] = std::cos(angle);
      sin[t * half + i] = std::sin(angle);
    }
  }
}

void Rope::Apply(float* x, int64_t heads, const float* cos, const float* sin) const {
  const int64_t half = head_dim_ / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * head_dim_;
    for (int64_t i = 0; i < half; ++i) {
      float a = v[i], b = v[i + half];
      v[i] = a * cos[i] - b * sin[i];
      v[i + half] = b * cos[i] + a * sin[i];
    }
  }
}

}  // namespace crescent::kernels
