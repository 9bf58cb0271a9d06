#include "kernels/roofline.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "base/large_buffer.h"
#include "base/thread_pool.h"
#include "kernels/linear.h"

namespace crescent::kernels {

namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

namespace {

// Sums lines [b, e) of `buf`: kPace 0 as fast as loads issue (four chains),
// kPace p one line per chain of p dependent FMAs (4 cycles each) over
// `streams` interleaved parts. Returns a value the caller keeps.
#if defined(__AVX512F__)
template <int kPace>
float ReadLines(const float* buf, int64_t b, int64_t e, int streams) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  if constexpr (kPace == 0) {
    int64_t i = b;
    for (; i + 4 <= e; i += 4) {
      a0 = _mm512_add_ps(a0, _mm512_load_ps(buf + i * 16));
      a1 = _mm512_add_ps(a1, _mm512_load_ps(buf + i * 16 + 16));
      a2 = _mm512_add_ps(a2, _mm512_load_ps(buf + i * 16 + 32));
      a3 = _mm512_add_ps(a3, _mm512_load_ps(buf + i * 16 + 48));
    }
    for (; i < e; ++i) a0 = _mm512_add_ps(a0, _mm512_load_ps(buf + i * 16));
  } else {
    volatile float unit = 1.0f;  // opaque to the compiler: the FMAs stay FMAs
    const __m512 one = _mm512_set1_ps(unit);
    const int64_t part = (e - b) / streams;
    for (int64_t i = 0; i < part; ++i) {
      for (int s = 0; s < streams; ++s) {
        __m512& acc = s == 0 ? a0 : a1;
        acc = _mm512_fmadd_ps(acc, one, _mm512_load_ps(buf + (b + s * part + i) * 16));
        for (int p = 1; p < kPace; ++p) acc = _mm512_fmadd_ps(acc, one, acc);
      }
    }
    for (int64_t i = b + streams * part; i < e; ++i) a2 = _mm512_add_ps(a2, _mm512_load_ps(buf + i * 16));
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  return lanes[0] + lanes[15];
}
#else
// Without AVX-512 the same loops on GCC's generic vectors of the target's
// register width (AVX: 32 bytes, else SSE's 16), a 64-byte line being kN of
// them; a paced step is a multiply and an add unless the target fuses them.
// Only locals hold the vector type: passed or returned, it would change the ABI.
#if defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif
template <int kPace>
float ReadLines(const float* buf, int64_t b, int64_t e, int streams) {
  typedef float Vec __attribute__((vector_size(kVecBytes)));
  constexpr int kN = 64 / kVecBytes;  // vectors per line
  const Vec* v = reinterpret_cast<const Vec*>(__builtin_assume_aligned(buf, 64));
  Vec a0 = {}, a1 = {}, a2 = {}, a3 = {};
  if constexpr (kPace == 0) {
    for (int64_t i = b * kN; i < e * kN; i += 4) {  // a line is 2 or 4 vectors
      a0 += v[i];
      a1 += v[i + 1];
      if constexpr (kN == 4) {
        a2 += v[i + 2];
        a3 += v[i + 3];
      } else if (i + 2 < e * kN) {
        a2 += v[i + 2];
        a3 += v[i + 3];
      }
    }
  } else {
    volatile float unit = 1.0f;  // opaque to the compiler: the steps stay
    const Vec one = Vec{} + unit;
    const int64_t part = (e - b) / streams;
    for (int64_t i = 0; i < part; ++i) {
      // One chain per stream: the line's vectors summed, then paced.
      const int64_t l0 = (b + i) * kN;
      Vec x = v[l0];
      for (int j = 1; j < kN; ++j) x += v[l0 + j];
      a0 = a0 * one + x;
      for (int p = 1; p < kPace; ++p) a0 = a0 * one + a0;
      if (streams > 1) {
        const int64_t l1 = (b + part + i) * kN;
        Vec y = v[l1];
        for (int j = 1; j < kN; ++j) y += v[l1 + j];
        a1 = a1 * one + y;
        for (int p = 1; p < kPace; ++p) a1 = a1 * one + a1;
      }
    }
    for (int64_t i = (b + streams * part) * kN; i < e * kN; ++i) a2 += v[i];
  }
  const Vec sum = (a0 + a1) + (a2 + a3);
  return sum[0] + sum[kVecBytes / 4 - 1];
}
#endif

}  // namespace

double MeasureReadBandwidthGBs(int64_t bytes, int repeats) {
  const int64_t n = bytes / 64;  // 64-byte lines
  // The memory weights live in (LargeBuffer: huge pages where allowed); in
  // 4 KB pages the same loop read 29 GB/s on a host where huge pages gave 38.
  auto mem = LargeBuffer::Allocate(static_cast<size_t>(n) * 64);
  CHECK(mem.ok()) << mem.status().ToString();
  auto* buf = reinterpret_cast<float*>(mem->data());
  ThreadPool::Default().ParallelFor(n, [&](int64_t b, int64_t e) {
    std::memset(buf + b * 16, 1, static_cast<size_t>(e - b) * 64);
  });
  double best = 0;
  std::vector<float> sinks(256, 0);
  // Memory here does not serve the fastest loop best: loads issued as fast
  // as possible read 31-33 GB/s where one line per 8 cycles read 37, and two
  // streams per thread more again. The probe is the best of three patterns.
  for (int pattern = 0; pattern < 3; ++pattern) {
    for (int r = 0; r < repeats; ++r) {
      double t0 = Now();
      ThreadPool::Default().RunOnAll([&](int t, int nt) {
        const int64_t b = n * t / nt, e = n * (t + 1) / nt;
        const float v = pattern == 0 ? ReadLines<0>(buf, b, e, 1) : ReadLines<2>(buf, b, e, pattern);
        sinks[static_cast<size_t>(t) % sinks.size()] += v;
      });
      double dt = Now() - t0;
      best = std::max(best, static_cast<double>(n) * 64 / dt / 1e9);
    }
  }
  volatile float keep = sinks[0];
  (void)keep;
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
