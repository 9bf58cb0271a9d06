// Each kernel against a plain scalar reference (STYLE.md: every SIMD kernel is
// tested against one).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "base/dtype.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/convert.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/vec_math.h"

namespace crescent::kernels {
namespace {

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = u(g);
  return v;
}

std::vector<uint16_t> ToBf16(const std::vector<float>& v) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = crescent::F32ToBf16(v[i]);
  return o;
}

TEST(ConvertTest, RoundsToNearestEvenLikeScalar) {
  auto v = Random(1000, 1, 100.0f);
  v.push_back(INFINITY);
  v.push_back(-0.0f);
  std::vector<uint16_t> fast(v.size());
  F32ToBf16(v.data(), fast.data(), static_cast<int64_t>(v.size()));
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(fast[i], crescent::F32ToBf16(v[i])) << v[i];
  EXPECT_EQ(crescent::F32ToBf16(1.00390625f), 0x3f80);  // tie -> even
  EXPECT_EQ(crescent::F32ToBf16(1.01171875f), 0x3f82);
  EXPECT_TRUE(std::isnan(crescent::Bf16ToF32(crescent::F32ToBf16(NAN))));
  EXPECT_EQ(crescent::F16ToF32(crescent::F32ToF16(1.5f)), 1.5f);
  EXPECT_EQ(crescent::F16ToF32(0x3c00), 1.0f);
}

TEST(VecMathTest, ExpIsAccurate) {
  std::vector<float> x, y(2001);
  for (int i = -1000; i <= 1000; ++i) x.push_back(static_cast<float>(i) * 0.087f);
  float sum = ExpShiftSum(x.data(), static_cast<int64_t>(x.size()), 1.0f, y.data());
  double ref_sum = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double r = std::exp(static_cast<double>(x[i] - 1.0f));  // the kernel subtracts in f32
    ref_sum += r;
    EXPECT_NEAR(y[i], r, 1e-6 * r + 1e-37) << x[i];
  }
  EXPECT_NEAR(sum, ref_sum, 1e-5 * ref_sum);
}

struct LinearCase {
  int64_t m, n, k;
  DType dtype;
  bool bias, accumulate;
};

TEST(LinearTest, MatchesScalarReference) {
  for (const LinearCase& c : {LinearCase{1, 96, 64, DType::kBF16, false, false},
                              LinearCase{3, 130, 70, DType::kBF16, true, false},
                              LinearCase{17, 64, 256, DType::kBF16, false, true},
                              // row groups over L2-resident K slices (K > 2048), ragged K and M
                              LinearCase{32, 200, 2100, DType::kBF16, true, true},
                              LinearCase{9, 70, 4096, DType::kBF16, false, false},
                              LinearCase{33, 64, 64, DType::kBF16, false, false},
                              LinearCase{5, 33, 40, DType::kF32, true, true},
                              LinearCase{64, 128, 96, DType::kF32, false, false}}) {
    auto w = Random(static_cast<size_t>(c.n * c.k), 2, 0.5f);
    auto x = Random(static_cast<size_t>(c.m * c.k), 3);
    auto b = Random(static_cast<size_t>(c.n), 4);
    auto y0 = Random(static_cast<size_t>(c.m * c.n), 5);
    std::vector<uint16_t> wb = ToBf16(w), xb = ToBf16(x);
    if (c.dtype == DType::kBF16) {  // the reference sees the rounded values
      for (size_t i = 0; i < w.size(); ++i) w[i] = crescent::Bf16ToF32(wb[i]);
      for (size_t i = 0; i < x.size(); ++i) x[i] = crescent::Bf16ToF32(xb[i]);
    }
    auto lin = Linear::Create(c.n, c.k, c.dtype, c.dtype == DType::kBF16 ? static_cast<const void*>(wb.data()) : w.data(),
                              c.bias ? b.data() : nullptr);
    ASSERT_TRUE(lin.ok()) << lin.status().ToString();
    std::vector<float> y = y0;
    lin->Forward(c.dtype == DType::kBF16 ? static_cast<const void*>(xb.data()) : x.data(), c.m, y.data(), c.accumulate);
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t j = 0; j < c.n; ++j) {
        double ref = c.accumulate ? y0[i * c.n + j] : 0.0;
        if (c.bias) ref += b[j];
        for (int64_t t = 0; t < c.k; ++t) ref += static_cast<double>(x[i * c.k + t]) * w[j * c.k + t];
        ASSERT_NEAR(y[i * c.n + j], ref, 1e-4 * (1 + std::fabs(ref))) << c.m << "x" << c.n << "x" << c.k << " at " << i << "," << j;
      }
    }
  }
}

TEST(NormTest, RmsNorm) {
  auto x = Random(3 * 50, 7), w = Random(50, 8);
  std::vector<float> y(x.size());
  std::vector<uint16_t> yb(x.size());
  RmsNorm(x.data(), w.data(), 3, 50, 1e-5f, y.data());
  RmsNormBf16(x.data(), w.data(), 3, 50, 1e-5f, yb.data());
  for (int r = 0; r < 3; ++r) {
    double ss = 0;
    for (int i = 0; i < 50; ++i) ss += double(x[r * 50 + i]) * x[r * 50 + i];
    double inv = 1.0 / std::sqrt(ss / 50 + 1e-5);
    for (int i = 0; i < 50; ++i) {
      double ref = x[r * 50 + i] * inv * w[i];
      EXPECT_NEAR(y[r * 50 + i], ref, 1e-5);
      EXPECT_NEAR(crescent::Bf16ToF32(yb[r * 50 + i]), ref, 1e-2 * std::fabs(ref) + 1e-6);
    }
  }
}

TEST(ActivationTest, SiluMul) {
  auto gu = Random(2 * 2 * 40, 9, 8.0f);
  std::vector<float> y(2 * 40);
  std::vector<uint16_t> yb(2 * 40);
  SiluMul(gu.data(), 2, 40, y.data());
  SiluMulBf16(gu.data(), 2, 40, yb.data());
  for (int r = 0; r < 2; ++r) {
    for (int i = 0; i < 40; ++i) {
      double g = gu[r * 80 + i], u = gu[r * 80 + 40 + i];
      double ref = g / (1 + std::exp(-g)) * u;
      EXPECT_NEAR(y[r * 40 + i], ref, 1e-5 * (1 + std::fabs(ref)));
      EXPECT_NEAR(crescent::Bf16ToF32(yb[r * 40 + i]), ref, 1e-2 * std::fabs(ref) + 1e-6);
    }
  }
}

TEST(RopeTest, Llama3ScalingAndRotateHalf) {
  RopeParams p;
  p.head_dim = 64;
  p.theta = 500000.0;
  p.scaling = RopeParams::Scaling::kLlama3;
  p.factor = 32;
  p.low_freq_factor = 1;
  p.high_freq_factor = 4;
  p.original_max_position = 8192;
  Rope rope(p);
  for (int64_t i = 0; i < 32; ++i) {
    double f = 1.0 / std::pow(500000.0, 2.0 * i / 64.0);
    double wl = 2 * M_PI / f, want;
    if (wl < 8192.0 / 4) want = f;
    else if (wl > 8192.0 / 1) want = f / 32;
    else {
      double sm = (8192.0 / wl - 1) / (4 - 1);
      want = (1 - sm) * f / 32 + sm * f;
    }
    EXPECT_NEAR(rope.inv_freq()[i], want, 1e-12 * want) << i;
  }
  auto x = Random(2 * 64, 11);
  auto orig = x;
  int64_t pos = 37;
  std::vector<float> c(32), s(32);
  rope.Tables(&pos, 1, c.data(), s.data());
  rope.Apply(x.data(), 2, c.data(), s.data());
  for (int h = 0; h < 2; ++h) {
    for (int i = 0; i < 32; ++i) {
      double a = 37 * rope.inv_freq()[i];
      double x1 = orig[h * 64 + i], x2 = orig[h * 64 + 32 + i];
      EXPECT_NEAR(x[h * 64 + i], x1 * std::cos(a) - x2 * std::sin(a), 1e-5);
      EXPECT_NEAR(x[h * 64 + 32 + i], x2 * std::cos(a) + x1 * std::sin(a), 1e-5);
    }
  }
}

// Attention over pages against a dense scalar reference, for several sequences
// with cached prefixes, GQA, a sliding window, bf16 and f32 KV, and page sizes.
struct AttnCase {
  int64_t heads, kv_heads, head_dim, page_tokens, window;
  DType dtype;
};

TEST(AttentionTest, PagedMatchesDenseReference) {
  for (const AttnCase& c : {AttnCase{4, 2, 64, 16, 0, DType::kBF16}, AttnCase{8, 8, 32, 16, 0, DType::kF32},
                            AttnCase{6, 2, 128, 8, 0, DType::kF32}, AttnCase{4, 1, 48, 16, 21, DType::kF32},
                            AttnCase{2, 1, 80, 32, 0, DType::kBF16}}) {
    const int64_t hd = c.head_dim;
    // (start_pos, num_tokens) per sequence: prefill, prefill over a cached prefix, decode.
    std::vector<std::pair<int64_t, int64_t>> shape = {{0, 37}, {45, 20}, {70, 1}, {0, 1}};
    const int64_t pages_per_seq = (90 + c.page_tokens - 1) / c.page_tokens;
    const int64_t num_pages = pages_per_seq * static_cast<int64_t>(shape.size());
    KvLayerView kv;
    kv.page_tokens = c.page_tokens;
    kv.kv_heads = c.kv_heads;
    kv.head_dim = hd;
    kv.dtype = c.dtype;
    const size_t elems = static_cast<size_t>(kv.page_elems() * num_pages);
    std::vector<std::byte> kbuf(elems * DTypeSize(c.dtype)), vbuf(kbuf.size());
    kv.k = kbuf.data();
    kv.v = vbuf.data();
    // Pages handed out in a scrambled order to catch block-table bugs.
    std::vector<std::vector<int32_t>> tables(shape.size());
    for (int64_t p = 0; p < num_pages; ++p) tables[p % shape.size()].push_back(static_cast<int32_t>((p * 7) % num_pages));
    std::vector<AttentionSeq> seqs;
    // Dense K/V history per sequence (what the pages must hold), and the queries.
    std::vector<std::vector<float>> kh(shape.size()), vh(shape.size());
    int64_t rows = 0;
    for (size_t s = 0; s < shape.size(); ++s) {
      auto [start, n] = shape[s];
      kh[s] = Random(static_cast<size_t>((start + n) * c.kv_heads * hd), 100 + s);
      vh[s] = Random(static_cast<size_t>((start + n) * c.kv_heads * hd), 200 + s);
      if (c.dtype == DType::kBF16) {
        for (auto* v : {&kh[s], &vh[s]})
          for (auto& x : *v) x = crescent::Bf16ToF32(crescent::F32ToBf16(x));
      }
      // Write the cached prefix through the kernel, as earlier steps would have.
      if (start > 0) {
        AttentionSeq pre{tables[s].data(), 0, start, 0};
        WriteKvPages(kv, {&pre, 1}, kh[s].data(), vh[s].data(), c.kv_heads * hd);
      }
      seqs.push_back({tables[s].data(), start, n, rows});
      rows += n;
    }
    const int64_t kvd = c.kv_heads * hd, qd = c.heads * hd;
    std::vector<float> newk(static_cast<size_t>(rows * kvd)), newv(newk.size());
    for (size_t s = 0; s < shape.size(); ++s) {
      auto [start, n] = shape[s];
      std::copy(kh[s].begin() + start * kvd, kh[s].end(), newk.begin() + seqs[s].row * kvd);
      std::copy(vh[s].begin() + start * kvd, vh[s].end(), newv.begin() + seqs[s].row * kvd);
    }
    WriteKvPages(kv, seqs, newk.data(), newv.data(), kvd);
    auto q = Random(static_cast<size_t>(rows * qd), 300);
    AttentionParams p{c.heads, c.kv_heads, hd, 1.0f / std::sqrt(static_cast<float>(hd)), c.window};
    p.kernel = AttentionKernel::kF32;  // this is the f32 kernel's test (attention_bf16_test.cc has the bf16 one)
    std::vector<float> out(static_cast<size_t>(rows * qd));
    PagedAttentionF32(p, kv, seqs, q.data(), qd, out.data());
    std::vector<uint16_t> outb(out.size());
    PagedAttention(p, kv, seqs, q.data(), qd, outb.data());

    for (size_t s = 0; s < shape.size(); ++s) {
      auto [start, n] = shape[s];
      for (int64_t i = 0; i < n; ++i) {
        const int64_t pos = start + i;
        const int64_t lo = c.window ? std::max<int64_t>(0, pos - c.window + 1) : 0;
        for (int64_t h = 0; h < c.heads; ++h) {
          const int64_t g = h / (c.heads / c.kv_heads);
          const float* qr = q.data() + (seqs[s].row + i) * qd + h * hd;
          std::vector<double> sc;
          double mx = -1e300;
          for (int64_t t = lo; t <= pos; ++t) {
            double d = 0;
            for (int64_t e = 0; e < hd; ++e) d += double(qr[e]) * kh[s][t * kvd + g * hd + e];
            sc.push_back(d * p.scale);
            mx = std::max(mx, sc.back());
          }
          double sum = 0;
          for (double& x : sc) sum += (x = std::exp(x - mx));
          for (int64_t e = 0; e < hd; ++e) {
            double ref = 0;
            for (int64_t t = lo; t <= pos; ++t) ref += sc[t - lo] / sum * vh[s][t * kvd + g * hd + e];
            const int64_t at = (seqs[s].row + i) * qd + h * hd + e;
            ASSERT_NEAR(out[at], ref, 2e-5) << "case hd=" << hd << " seq " << s << " tok " << i << " head " << h;
            ASSERT_NEAR(crescent::Bf16ToF32(outb[at]), ref, 1e-2 * std::fabs(ref) + 1e-5);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace crescent::kernels
