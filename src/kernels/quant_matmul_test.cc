// QuantMatmul against a scalar dequantize-then-multiply reference, for every
// block type and shape class (decode M = 1..32, prefill M in the hundreds, N
// not a whole tile), the VNNI kernel against the portable loop, mixed-type
// segments, bias and accumulate, and the bound on the activations' rounding.
#include "kernels/quant_matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "base/dtype.h"
#include "base/thread_pool.h"
#include "kernels/linear.h"
#include "kernels/quant_tile.h"

namespace crescent::kernels {
namespace {

struct Weights {
  QuantType type;
  int64_t n, k;
  std::vector<uint8_t> bytes;
  std::vector<float> deq;  // [n, k] as ggml dequantizes it
};

Weights MakeWeights(QuantType t, int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  Weights w{t, n, k, {}, {}};
  const int64_t rb = QuantBytes(t, k).value();
  w.bytes.resize(static_cast<size_t>(rb * n));
  w.deq.resize(static_cast<size_t>(n * k));
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    for (auto& v : row) v = dist(rng);
    row[static_cast<size_t>(r % k)] += 0.5f;  // an outlier per row
    QuantizeRow(t, row.data(), w.bytes.data() + r * rb, k);
    DequantizeRow(t, w.bytes.data() + r * rb, w.deq.data() + r * k, k);
  }
  return w;
}

std::vector<float> Activations(int64_t m, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m * k));
  for (auto& v : x) v = dist(rng);
  return x;
}

// x quantized per block of 32 exactly as the kernel does, then dequantized.
std::vector<float> RoundedActivations(const std::vector<float>& x, int64_t k) {
  std::vector<float> out(x.size());
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    for (int i = 0; i < 32; ++i) {
      out[b * 32 + i] = d * static_cast<float>(std::clamp(static_cast<int>(std::nearbyint(x[b * 32 + i] * id)), -127, 127));
    }
  }
  return out;
}

// y = x · Wᵀ in double; also sum |x||w| per output for a tolerance.
void Reference(const std::vector<float>& x, const std::vector<float>& w, int64_t m, int64_t n, int64_t k,
               std::vector<double>* y, std::vector<double>* mag) {
  y->assign(static_cast<size_t>(m * n), 0.0);
  mag->assign(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, a = 0;
      for (int64_t l = 0; l < k; ++l) {
        s += static_cast<double>(x[i * k + l]) * w[j * k + l];
        a += std::fabs(static_cast<double>(x[i * k + l]) * w[j * k + l]);
      }
      (*y)[i * n + j] = s;
      (*mag)[i * n + j] = a;
    }
}

class QuantMatmulTest : public ::testing::TestWithParam<QuantType> {
 protected:
  void TearDown() override { SetQuantMatmulPortableForTesting(false); }
};

TEST_P(QuantMatmulTest, MatchesDequantizeThenMultiplyForEveryShapeClass) {
  const QuantType t = GetParam();
  const int64_t k = 512, n = 100;  // n: one whole tile and a part
  Weights w = MakeWeights(t, n, k, 11);
  QuantSegment seg{t, n, w.bytes.data()};
  auto qm = QuantMatmul::Pack(k, {&seg, 1}, nullptr);
  ASSERT_TRUE(qm.ok()) << qm.status().ToString();
  EXPECT_EQ(qm->n(), n);
  for (int64_t m : {1, 2, 3, 4, 5, 17, 32, 70, 130}) {
    SCOPED_TRACE("m = " + std::to_string(m));
    const std::vector<float> x = Activations(m, k, static_cast<uint32_t>(m));
    std::vector<double> ref, mag, ref_exact, mag_exact;
    // Against the activations as the kernel rounds them: only summation order
    // remains (KQuantsReadGgmlScalesExactlyInFewBits holds the K-quants to it).
    Reference(RoundedActivations(x, k), w.deq, m, n, k, &ref, &mag);
    Reference(x, w.deq, m, n, k, &ref_exact, &mag_exact);
    for (bool portable : {false, true}) {
      SetQuantMatmulPortableForTesting(portable);
      std::vector<float> y(static_cast<size_t>(m * n), -1.0f);
      qm->ForwardF32(x.data(), m, y.data());
      double err_exact = 0, norm = 0;
      for (int64_t i = 0; i < m * n; ++i) {
        ASSERT_NEAR(y[i], ref[i], 2e-3 * mag[i] + 1e-5) << (portable ? "portable " : "vnni ") << i;
        err_exact += (y[i] - ref_exact[i]) * (y[i] - ref_exact[i]);
        norm += ref_exact[i] * ref_exact[i];
      }
      // 8-bit activations cost well under a percent of the output.
      EXPECT_LT(std::sqrt(err_exact / norm), 0.01);
    }
  }
}

TEST_P(QuantMatmulTest, BiasAccumulateAndBf16Inputs) {
  const QuantType t = GetParam();
  const int64_t k = 256, n = 64, m = 3;
  Weights w = MakeWeights(t, n, k, 5);
  std::vector<float> bias(n);
  for (int64_t j = 0; j < n; ++j) bias[j] = static_cast<float>(j) * 0.01f;
  QuantSegment seg{t, n, w.bytes.data()};
  auto qm = QuantMatmul::Pack(k, {&seg, 1}, bias.data());
  ASSERT_TRUE(qm.ok());
  std::vector<float> x = Activations(m, k, 9);
  std::vector<uint16_t> xb(x.size());
  for (size_t i = 0; i < x.size(); ++i) xb[i] = F32ToBf16(x[i]), x[i] = Bf16ToF32(xb[i]);
  std::vector<float> a(m * n), b(m * n, 1.0f);
  qm->ForwardF32(x.data(), m, a.data());
  qm->Forward(xb.data(), m, b.data(), /*accumulate=*/true);
  for (int64_t i = 0; i < m * n; ++i) EXPECT_FLOAT_EQ(b[i], a[i] + 1.0f) << i;
  std::vector<double> ref, mag;
  Reference(RoundedActivations(x, k), w.deq, m, n, k, &ref, &mag);
  for (int64_t i = 0; i < m * n; ++i) EXPECT_NEAR(a[i], ref[i] + bias[i % n], 2e-3 * mag[i] + 1e-5);
}

// Decode (M = 1) walks two tiles of a thread's range side by side: ranges
// of odd and even lengths, a range that starts or ends inside a segment, a
// partial last tile, bias and accumulate, on 1, 2 and 3 threads.
TEST_P(QuantMatmulTest, DecodeTwoStreamsCoverEveryTileOfEverySegment) {
  const QuantType t = GetParam();
  const int64_t k = 512;
  const int64_t rows[] = {300, 192, 256};  // 5 (last partial), 3 and 4 tiles
  std::vector<Weights> ws;
  std::vector<QuantSegment> segs;
  std::vector<float> all;
  for (int i = 0; i < 3; ++i) ws.push_back(MakeWeights(t, rows[i], k, 20 + i));
  for (const Weights& w : ws) {
    segs.push_back({t, w.n, w.bytes.data()});
    all.insert(all.end(), w.deq.begin(), w.deq.end());
  }
  const int64_t n = static_cast<int64_t>(all.size()) / k;
  std::vector<float> bias(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) bias[j] = 0.001f * static_cast<float>(j % 97);
  auto qm = QuantMatmul::Pack(k, segs, bias.data());
  ASSERT_TRUE(qm.ok()) << qm.status().ToString();
  const std::vector<float> x = Activations(1, k, 3);
  std::vector<double> ref, mag;
  Reference(RoundedActivations(x, k), all, 1, n, k, &ref, &mag);
  ThreadPool& pool = ThreadPool::Default();
  const int threads = pool.num_threads();
  for (int nt : {1, 2, 3}) {
    pool.SetNumThreads(nt);
    for (bool portable : {false, true}) {
      SetQuantMatmulPortableForTesting(portable);
      SCOPED_TRACE(std::to_string(nt) + (portable ? " threads, portable" : " threads, vnni"));
      std::vector<float> y(static_cast<size_t>(n), -7.0f), acc(static_cast<size_t>(n), 2.0f);
      qm->ForwardF32(x.data(), 1, y.data());
      qm->ForwardF32(x.data(), 1, acc.data(), /*accumulate=*/true);
      for (int64_t j = 0; j < n; ++j) {
        ASSERT_NEAR(y[j], ref[j] + bias[j], 2e-3 * mag[j] + 1e-5) << j;
        ASSERT_FLOAT_EQ(acc[j], y[j] + 2.0f) << j;
      }
    }
  }
  pool.SetNumThreads(threads);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantMatmulTest,
                         ::testing::Values(QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_K, QuantType::kQ5_K,
                                           QuantType::kQ6_K),
                         [](const auto& info) { return std::string(QuantTypeName(info.param)); });

TEST(QuantMatmulSegmentsTest, MixedTypesAlongNAreOneMatmul) {
  // A Q4_K_M q|k|v: q and k in Q4_K, v in Q6_K; 70 + 30 + 50 rows.
  const int64_t k = 512;
  Weights q = MakeWeights(QuantType::kQ4_K, 70, k, 1), kk = MakeWeights(QuantType::kQ4_K, 30, k, 2),
          v = MakeWeights(QuantType::kQ6_K, 50, k, 3);
  const QuantSegment segs[] = {{q.type, 70, q.bytes.data()}, {kk.type, 30, kk.bytes.data()}, {v.type, 50, v.bytes.data()}};
  auto lin = Linear::CreateQuantized(k, segs, nullptr, DType::kF32);
  ASSERT_TRUE(lin.ok()) << lin.status().ToString();
  EXPECT_EQ(lin->n(), 150);
  std::vector<float> all;
  for (const Weights* w : {&q, &kk, &v}) all.insert(all.end(), w->deq.begin(), w->deq.end());
  const int64_t m = 6;
  const std::vector<float> x = Activations(m, k, 4);
  std::vector<float> y(m * 150);
  lin->Forward(x.data(), m, y.data());
  std::vector<double> ref, mag;
  Reference(RoundedActivations(x, k), all, m, 150, k, &ref, &mag);
  for (int64_t i = 0; i < m * 150; ++i) EXPECT_NEAR(y[i], ref[i], 2e-3 * mag[i] + 1e-5) << i;
}

// Prefill shapes through Linear: the weights dequantized into bf16 tiles and
// multiplied by oneDNN (M > 32), against the same reference; decode shapes
// through the integer kernel; both for a K-quant q|k|v (Q4_K, Q5_K, Q6_K).
TEST(QuantMatmulSegmentsTest, PrefillShapesRunOnBf16TilesOfTheSameValues) {
  const int64_t k = 512;
  Weights q = MakeWeights(QuantType::kQ4_K, 128, k, 1), kk = MakeWeights(QuantType::kQ5_K, 64, k, 2),
          v = MakeWeights(QuantType::kQ6_K, 64, k, 3);
  const QuantSegment segs[] = {{q.type, 128, q.bytes.data()}, {kk.type, 64, kk.bytes.data()}, {v.type, 64, v.bytes.data()}};
  std::vector<float> bias(256);
  for (int i = 0; i < 256; ++i) bias[i] = 0.001f * i;
  auto lin = Linear::CreateQuantized(k, segs, bias.data(), DType::kBF16);
  ASSERT_TRUE(lin.ok()) << lin.status().ToString();
  std::vector<float> all;
  for (const Weights* w : {&q, &kk, &v}) all.insert(all.end(), w->deq.begin(), w->deq.end());
  for (int64_t m : {1, 32, 33, 100}) {
    SCOPED_TRACE("m = " + std::to_string(m));
    std::vector<float> x = Activations(m, k, 4);
    std::vector<uint16_t> xb(x.size());
    for (size_t i = 0; i < x.size(); ++i) xb[i] = F32ToBf16(x[i]), x[i] = Bf16ToF32(xb[i]);
    std::vector<float> y(m * 256, 2.0f);
    lin->Forward(xb.data(), m, y.data(), /*accumulate=*/true);
    std::vector<double> ref, mag;
    Reference(x, all, m, 256, k, &ref, &mag);
    // bf16 weights (prefill) or int8 activations (decode): within 1% of |x||w|.
    for (int64_t i = 0; i < m * 256; ++i) ASSERT_NEAR(y[i], ref[i] + bias[i % 256] + 2.0, 1e-2 * mag[i] + 1e-4) << i;
  }
}

// Linear's prefill path splits the columns into chunks (of 2 tiles at this
// K, so one chunk spans the Q4_K and Q6_K segments and the last is partial:
// 330 = 2 x 128 + 74 columns) and the rows into blocks, each a matmul of its
// own whose result lands in its place in y, run by two threads.
TEST(QuantMatmulSegmentsTest, PrefillInChunksOfColumnsMatchesTheReference) {
  ThreadPool& pool = ThreadPool::Default();
  const int threads = pool.num_threads();
  pool.SetNumThreads(2);
  const int64_t k = 2048;
  Weights q = MakeWeights(QuantType::kQ8_0, 128, k, 5), kk = MakeWeights(QuantType::kQ4_K, 64, k, 6),
          v = MakeWeights(QuantType::kQ6_K, 138, k, 7);
  const QuantSegment segs[] = {{q.type, 128, q.bytes.data()}, {kk.type, 64, kk.bytes.data()}, {v.type, 138, v.bytes.data()}};
  const int64_t n = 330;
  std::vector<float> bias(n);
  for (int i = 0; i < n; ++i) bias[i] = 0.01f * (i % 17) - 0.05f;
  auto lin = Linear::CreateQuantized(k, segs, bias.data(), DType::kBF16);
  ASSERT_TRUE(lin.ok()) << lin.status().ToString();
  std::vector<float> all;
  for (const Weights* w : {&q, &kk, &v}) all.insert(all.end(), w->deq.begin(), w->deq.end());
  const int64_t m = 300;  // two blocks of rows: 256 + 44
  std::vector<float> x = Activations(m, k, 8);
  std::vector<uint16_t> xb(x.size());
  for (size_t i = 0; i < x.size(); ++i) xb[i] = F32ToBf16(x[i]), x[i] = Bf16ToF32(xb[i]);
  std::vector<double> ref, mag;
  Reference(x, all, m, n, k, &ref, &mag);
  for (bool accumulate : {false, true}) {
    SCOPED_TRACE(accumulate ? "accumulate" : "overwrite");
    std::vector<float> y(m * n, accumulate ? -1.5f : NAN);
    lin->Forward(xb.data(), m, y.data(), accumulate);
    for (int64_t i = 0; i < m * n; ++i) {
      ASSERT_NEAR(y[i], ref[i] + bias[i % n] + (accumulate ? -1.5 : 0.0), 1e-2 * mag[i] + 1e-4) << i;
    }
  }
  pool.SetNumThreads(threads);
}

// Many prompt lengths: each adds primitives for its last block of rows to
// Linear's cache until it is cleared, which must not pull the primitives of
// the call in progress from under it (it did: the call held references into
// the cache). Checked on the first and last rows of each.
TEST(QuantMatmulSegmentsTest, PrefillOverManyPromptLengthsOutlivesItsPrimitiveCache) {
  const int64_t k = 2048, n = 330;
  Weights w = MakeWeights(QuantType::kQ8_0, n, k, 9);
  const QuantSegment seg{w.type, n, w.bytes.data()};
  auto lin = Linear::CreateQuantized(k, {&seg, 1}, nullptr, DType::kBF16);
  ASSERT_TRUE(lin.ok()) << lin.status().ToString();
  const int64_t max_m = 257 + 140;  // two new primitives per length: over 256
  std::vector<float> x = Activations(max_m, k, 10);
  std::vector<uint16_t> xb(x.size());
  for (size_t i = 0; i < x.size(); ++i) xb[i] = F32ToBf16(x[i]), x[i] = Bf16ToF32(xb[i]);
  std::vector<double> ref, mag;
  Reference(x, w.deq, max_m, n, k, &ref, &mag);
  std::vector<float> y(static_cast<size_t>(max_m * n));
  for (int64_t m = 257; m <= max_m; ++m) {
    lin->Forward(xb.data(), m, y.data());
    for (int64_t r : {int64_t{0}, m - 1}) {
      for (int64_t j = 0; j < n; ++j) {
        ASSERT_NEAR(y[r * n + j], ref[r * n + j], 1e-2 * mag[r * n + j] + 1e-4) << "m " << m << " row " << r;
      }
    }
  }
}

// The vectorized and portable kernels give the same results up to f32
// summation order, for every type, decode and batch shapes.
TEST(QuantMatmulSegmentsTest, VnniAndPortableAgree) {
  const int64_t k = 512, n = 130;
  for (QuantType t : {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_K, QuantType::kQ5_K, QuantType::kQ6_K}) {
    SCOPED_TRACE(std::string(QuantTypeName(t)));
    Weights w = MakeWeights(t, n, k, 12);
    const QuantSegment seg{t, n, w.bytes.data()};
    auto qm = QuantMatmul::Pack(k, {&seg, 1}, nullptr);
    ASSERT_TRUE(qm.ok());
    for (int64_t m : {1, 3, 9}) {
      const std::vector<float> x = Activations(m, k, 13);
      std::vector<double> ref, mag;
      Reference(x, w.deq, m, n, k, &ref, &mag);
      std::vector<float> fast(static_cast<size_t>(m * n)), portable(fast.size());
      SetQuantMatmulPortableForTesting(false);
      qm->ForwardF32(x.data(), m, fast.data());
      SetQuantMatmulPortableForTesting(true);
      qm->ForwardF32(x.data(), m, portable.data());
      SetQuantMatmulPortableForTesting(false);
      for (int64_t i = 0; i < m * n; ++i) ASSERT_NEAR(fast[i], portable[i], 1e-5 * mag[i]) << "m " << m << " " << i;
    }
  }
}

// Q4_K and Q5_K keep ggml's own scales (a 6-bit scale and min per 32 as
// bytes, f16 d and dmin per 256: 4.625 and 5.625 bits per weight, not an f16
// scale and min per 32), so beside the activations' rounding only f32
// summation order remains.
TEST(QuantMatmulSegmentsTest, KQuantsReadGgmlScalesExactlyInFewBits) {
  // Three blocks of 256 per row; five tiles, so with two threads each walks
  // two tiles side by side (decode) and one alone.
  const int64_t k = 768, n = 320;
  ThreadPool& pool = ThreadPool::Default();
  const int threads = pool.num_threads();
  pool.SetNumThreads(2);
  for (const auto& [t, millibits] : {std::pair{QuantType::kQ4_K, 4625}, std::pair{QuantType::kQ5_K, 5625}}) {
    SCOPED_TRACE(std::string(QuantTypeName(t)));
    Weights w = MakeWeights(t, n, k, 21);
    const QuantSegment seg{w.type, n, w.bytes.data()};
    auto qm = QuantMatmul::Pack(k, {&seg, 1}, nullptr);
    ASSERT_TRUE(qm.ok());
    EXPECT_EQ(qm->weight_bytes() * 8 * 1000, n * k * millibits);
    for (bool portable : {false, true}) {
      SetQuantMatmulPortableForTesting(portable);
      for (int64_t m : {1, 3}) {
        const std::vector<float> x = Activations(m, k, 22);
        std::vector<double> ref, mag;
        Reference(RoundedActivations(x, k), w.deq, m, n, k, &ref, &mag);
        std::vector<float> y(static_cast<size_t>(m * n));
        qm->ForwardF32(x.data(), m, y.data());
        for (int64_t i = 0; i < m * n; ++i) {
          ASSERT_NEAR(y[i], ref[i], 2e-6 * mag[i]) << (portable ? "portable " : "vnni ") << "m " << m << " " << i;
        }
      }
    }
    SetQuantMatmulPortableForTesting(false);
  }
  pool.SetNumThreads(threads);
}

// The vector QuantizeActivations writes the portable loop's bytes, from f32
// and from bf16: normal values, ties that round to even, blocks of zeros and
// of -0, denormals (a scale of 0), tiny values (whose scale's inverse
// overflows), bf16 denormals and tiny normals, huge values, NaN and +-inf.
TEST(QuantMatmulSegmentsTest, VectorAndPortableActivationsAreTheSameBytes) {
  const int64_t k = 32 * 64;
  std::mt19937 rng(16);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(k));
  for (auto& v : x) v = dist(rng);
  for (int i = 0; i < 32; ++i) x[32 + i] = 0.0f;                                  // block 1: zeros
  for (int i = 0; i < 32; ++i) x[64 + i] = static_cast<float>(i % 7) * 0.5f - 1.5f;  // block 2: ties
  x[64] = 127.0f;                                                                  // ... scaled by 1
  for (int i = 0; i < 32; ++i) x[96 + i] = 1e-45f * static_cast<float>(i);       // block 3: denormals, dx 0
  for (int i = 0; i < 32; ++i) x[288 + i] = 1e-38f * static_cast<float>(i + 1);  // block 9: 1 / dx is inf
  for (int i = 0; i < 32; ++i) x[320 + i] = -0.0f;                                // block 10: -0
  for (int i = 0; i < 32; ++i) x[128 + i] = 3e38f * (i % 2 ? 1.0f : -0.7f);      // block 4: huge
  x[160 + 5] = NAN;                                                                // block 5
  x[192 + 31] = INFINITY;                                                          // block 6
  x[224 + 0] = -INFINITY;                                                          // block 7
  x[256 + 3] = -0.0f;
  std::vector<uint16_t> xb(x.size());
  for (size_t i = 0; i < x.size(); ++i) xb[i] = F32ToBf16(x[i]);
  for (int i = 0; i < 32; ++i) xb[352 + i] = static_cast<uint16_t>(i + 1);  // block 11 (bf16): denormals
  for (int i = 0; i < 32; ++i) xb[384 + i] = static_cast<uint16_t>(0x0080 + 3 * i);  // block 12: tiny normals
  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    std::vector<int8_t> q[2];
    std::vector<float> d[2];
    std::vector<int32_t> s[2];
    for (int portable = 0; portable < 2; ++portable) {
      q[portable].assign(static_cast<size_t>(k), 99);
      d[portable].assign(static_cast<size_t>(k / 32), 99.0f);
      s[portable].assign(static_cast<size_t>(k / 16), 99);
      SetQuantMatmulPortableForTesting(portable == 1);
      // bf16 rows are widened first, as QuantMatmul does.
      std::vector<float> in = x;
      if (bf16) {
        for (int64_t i = 0; i < k; ++i) in[static_cast<size_t>(i)] = Bf16ToF32(xb[static_cast<size_t>(i)]);
      }
      quant_tile::QuantizeActivations(in.data(), k, q[portable].data(), d[portable].data(), s[portable].data());
    }
    SetQuantMatmulPortableForTesting(false);
    EXPECT_EQ(q[0], q[1]);
    EXPECT_EQ(s[0], s[1]);
    for (int64_t b = 0; b < k / 32; ++b) {
      EXPECT_TRUE(std::memcmp(&d[0][b], &d[1][b], sizeof(float)) == 0 || (std::isnan(d[0][b]) && std::isnan(d[1][b])))
          << "block " << b << ": " << d[0][b] << " vs " << d[1][b];
    }
    EXPECT_TRUE(std::isnan(d[0][5]) && std::isnan(d[0][6]) && std::isnan(d[0][7]));
    EXPECT_EQ(d[0][1], 0.0f);
    EXPECT_EQ(d[0][10], 0.0f);
    if (!bf16) {
      EXPECT_GT(d[0][9], 0.0f);  // the inverse-overflow case is reached: xq 0 where x * inf is inf
      EXPECT_TRUE(std::isinf(1.0f / d[0][9]));
    }
    EXPECT_EQ(q[0][64], 127);
    // Block 2 at a scale of exactly 1 (its max is 127): halves go to even.
    EXPECT_EQ(q[0][65], -1);  // -1.0
    EXPECT_EQ(q[0][66], 0);   // -0.5
    EXPECT_EQ(q[0][68], 0);   //  0.5
    EXPECT_EQ(q[0][70], 2);   //  1.5
    EXPECT_EQ(q[0][71], -2);  // -1.5
  }
}

// A NaN or an infinity in x makes the outputs NaN (every output sums over
// the poisoned block), as a float matmul would, on both kernels.
TEST(QuantMatmulSegmentsTest, NonFiniteActivationsGiveNaN) {
  const int64_t k = 256, n = 64;
  for (QuantType t : {QuantType::kQ8_0, QuantType::kQ4_K, QuantType::kQ6_K}) {
    Weights w = MakeWeights(t, n, k, 14);
    const QuantSegment seg{t, n, w.bytes.data()};
    auto qm = QuantMatmul::Pack(k, {&seg, 1}, nullptr);
    ASSERT_TRUE(qm.ok());
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      for (bool portable : {false, true}) {
        SetQuantMatmulPortableForTesting(portable);
        std::vector<float> x = Activations(2, k, 15);
        x[k + 77] = bad;  // row 1 only
        std::vector<float> y(2 * n);
        qm->ForwardF32(x.data(), 2, y.data());
        for (int64_t j = 0; j < n; ++j) {
          EXPECT_TRUE(std::isfinite(y[j])) << QuantTypeName(t) << " row 0 " << j;
          EXPECT_TRUE(std::isnan(y[n + j])) << QuantTypeName(t) << " " << bad << " row 1 " << j;
        }
      }
      SetQuantMatmulPortableForTesting(false);
    }
  }
}

TEST(QuantMatmulSegmentsTest, BadShapesAreErrors) {
  std::vector<uint8_t> bytes(34 * 4);
  const QuantSegment plain{QuantType::kBF16, 1, bytes.data()};
  EXPECT_FALSE(QuantMatmul::Pack(32, {&plain, 1}, nullptr).ok());
  const QuantSegment q4k{QuantType::kQ4_K, 1, bytes.data()};
  EXPECT_FALSE(QuantMatmul::Pack(128, {&q4k, 1}, nullptr).ok()) << "k = 128 is half a Q4_K block";
}

TEST(QuantMatmulSegmentsTest, ZeroActivationsGiveBiasOnly) {
  Weights w = MakeWeights(QuantType::kQ8_0, 64, 64, 8);
  std::vector<float> bias(64, 0.5f);
  QuantSegment seg{w.type, 64, w.bytes.data()};
  auto qm = QuantMatmul::Pack(64, {&seg, 1}, bias.data());
  ASSERT_TRUE(qm.ok());
  std::vector<float> x(64, 0.0f), y(64);
  qm->ForwardF32(x.data(), 1, y.data());
  for (float v : y) EXPECT_EQ(v, 0.5f);
}

}  // namespace
}  // namespace crescent::kernels
