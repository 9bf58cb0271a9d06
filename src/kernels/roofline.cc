#include "kernels/roofline.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "base/thread_pool.h"
#include "kernels/linear.h"

namespace crescent::kernels {

namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

double MeasureReadBandwidthGBs(int64_t bytes, int repeats) {
  const int64_t n = bytes / 64;  // 64-byte lines
  auto* buf = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(n) * 64));
  CHECK(buf != nullptr);
  ThreadPool::Default().ParallelFor(n, [&](int64_t b, int64_t e) {
    std::memset(buf + b * 16, 1, static_cast<size_t>(e - b) * 64);
  });
  double best = 0;
  std::vector<float> sinks(256, 0);
  for (int r = 0; r < repeats; ++r) {
    double t0 = Now();
    ThreadPool::Default().RunOnAll([&](int t, int nt) {
      int64_t b = n * t / nt, e = n * (t + 1) / nt;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int64_t i = b;
      for (; i + 4 <= e; i += 4) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(buf + i * 16));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(buf + i * 16 + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(buf + i * 16 + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(buf + i * 16 + 48));
      }
      for (; i < e; ++i) a0 = _mm512_add_ps(a0, _mm512_load_ps(buf + i * 16));
      alignas(64) float lanes[16];
      _mm512_store_ps(lanes, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
      sinks[static_cast<size_t>(t) % sinks.size()] += lanes[0] + lanes[15];
    });
    double dt = Now() - t0;
    best = std::max(best, static_cast<double>(n) * 64 / dt / 1e9);
  }
  volatile float keep = sinks[0];
  (void)keep;
  std::free(buf);
  return best;
}

double MeasureMatmulBf16Gflops(int64_t n, int repeats) {
  std::vector<uint16_t> w(static_cast<size_t>(n * n), 0x3c00);  // 0.0078125
  std::vector<uint16_t> x(static_cast<size_t>(n * n), 0x3f80);  // 1.0
  std::vector<float> y(static_cast<size_t>(n * n));
  auto lin = Linear::Create(n, n, DType::kBF16, w.data(), nullptr);
  CHECK(lin.ok()) << lin.status().ToString();
  lin->Forward(x.data(), n, y.data());  // warm-up: primitive creation
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    double t0 = Now();
    lin->Forward(x.data(), n, y.data());
    double dt = Now() - t0;
    best = std::max(best, 2.0 * static_cast<double>(n) * n * n / dt / 1e9);
  }
  return best;
}

}  // namespace crescent::kernels
