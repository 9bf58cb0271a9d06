// The bf16 flash attention kernel (attention_bf16.h) against exact attention
// in double on the same bf16 K/V (its stated bound), against the f32 kernel,
// and for its determinism promise: a row's bits do not depend on the step.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/thread_pool.h"
#include "kernels/attention.h"

namespace crescent::kernels {
namespace {

constexpr double kU = 1.0 / 256;  // bf16 unit roundoff, 2^-8

struct Shape {
  int64_t heads, kv_heads, head_dim, page_tokens, window;
};

// Sequences' K/V history written into scrambled pages of one layer, and a
// query row for every position of every sequence.
struct Layer {
  Shape sh;
  KvLayerView kv;
  std::vector<uint16_t> kbuf, vbuf;
  std::vector<std::vector<int32_t>> tables;
  std::vector<std::vector<float>> k, v, q;  // dense, per sequence: [pos][kv_heads*hd], [pos][heads*hd]

  Layer(const Shape& s, const std::vector<int64_t>& lens, uint32_t seed) : sh(s) {
    kv.page_tokens = s.page_tokens;
    kv.kv_heads = s.kv_heads;
    kv.head_dim = s.head_dim;
    kv.dtype = DType::kBF16;
    int64_t num_pages = 0;
    for (int64_t n : lens) num_pages += (n + s.page_tokens - 1) / s.page_tokens;
    // Unwritten slots (past each sequence's last token) hold NaN: the kernel
    // must mask or zero them, never let them reach an output.
    kbuf.assign(static_cast<size_t>(kv.page_elems() * num_pages), 0x7FC0);
    vbuf.assign(kbuf.size(), 0x7FC0);
    kv.k = kbuf.data();
    kv.v = vbuf.data();
    std::mt19937 g(seed);
    std::vector<int32_t> order(static_cast<size_t>(num_pages));
    for (int64_t p = 0; p < num_pages; ++p) order[static_cast<size_t>(p)] = static_cast<int32_t>(p);
    std::shuffle(order.begin(), order.end(), g);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int64_t kvd = s.kv_heads * s.head_dim, qd = s.heads * s.head_dim;
    size_t next = 0;
    for (int64_t n : lens) {
      tables.emplace_back();
      for (int64_t p = 0; p < (n + s.page_tokens - 1) / s.page_tokens; ++p) tables.back().push_back(order[next++]);
      k.emplace_back(static_cast<size_t>(n * kvd));
      v.emplace_back(static_cast<size_t>(n * kvd));
      q.emplace_back(static_cast<size_t>(n * qd));
      // Keys with a per-dimension offset make scores spread as real ones do.
      for (size_t i = 0; i < k.back().size(); ++i) {
        k.back()[i] = crescent::Bf16ToF32(crescent::F32ToBf16(nd(g) + 0.5f * static_cast<float>(i % 7) - 1.5f));
      }
      for (auto& x : v.back()) x = crescent::Bf16ToF32(crescent::F32ToBf16(nd(g)));
      for (auto& x : q.back()) x = 1.5f * nd(g);
      AttentionSeq all{tables.back().data(), 0, n, 0};
      WriteKvPages(kv, {&all, 1}, k.back().data(), v.back().data(), kvd);
    }
  }

  AttentionParams Params() const {
    return AttentionParams{sh.heads, sh.kv_heads, sh.head_dim, 1.0f / std::sqrt(static_cast<float>(sh.head_dim)),
                           sh.window};
  }

  // Runs one step: (sequence, start, count) triples; returns rows [step row][heads*hd].
  std::vector<float> Run(const std::vector<std::array<int64_t, 3>>& parts,
                         AttentionKernel kernel = AttentionKernel::kAuto) const {
    const int64_t qd = sh.heads * sh.head_dim;
    std::vector<AttentionSeq> seqs;
    std::vector<float> qs;
    int64_t rows = 0;
    for (auto [s, start, n] : parts) {
      seqs.push_back({tables[static_cast<size_t>(s)].data(), start, n, rows});
      qs.insert(qs.end(), q[static_cast<size_t>(s)].begin() + start * qd,
                q[static_cast<size_t>(s)].begin() + (start + n) * qd);
      rows += n;
    }
    AttentionParams p = Params();
    p.kernel = kernel;
    std::vector<float> out(static_cast<size_t>(rows * qd));
    PagedAttentionF32(p, kv, seqs, qs.data(), qd, out.data());
    // The bf16-output entry point writes the same values rounded once.
    std::vector<uint16_t> outb(out.size());
    PagedAttention(p, kv, seqs, qs.data(), qd, outb.data());
    for (size_t i = 0; i < out.size(); ++i) {
      if (outb[i] != crescent::F32ToBf16(out[i])) {
        ADD_FAILURE() << "bf16 output " << i << " differs from the rounded f32 output";
        break;
      }
    }
    return out;
  }

  // Exact attention of (sequence s, position pos, head h) in double, with the
  // bound's terms: A = scale * max over keys of sum |q k|, and max |v|.
  void Exact(int64_t s, int64_t pos, int64_t h, std::vector<double>* o, double* A, double* vmax) const {
    const int64_t hd = sh.head_dim, kvd = sh.kv_heads * hd, qd = sh.heads * hd;
    const int64_t g = h / (sh.heads / sh.kv_heads);
    const int64_t lo = sh.window > 0 ? std::max<int64_t>(0, pos - sh.window + 1) : 0;
    const double scale = Params().scale;
    const float* qr = q[static_cast<size_t>(s)].data() + pos * qd + h * hd;
    std::vector<double> sc;
    double mx = -1e300;
    *A = 0;
    *vmax = 0;
    for (int64_t t = lo; t <= pos; ++t) {
      const float* kr = k[static_cast<size_t>(s)].data() + t * kvd + g * hd;
      const float* vr = v[static_cast<size_t>(s)].data() + t * kvd + g * hd;
      double d = 0, a = 0;
      for (int64_t e = 0; e < hd; ++e) {
        d += double(qr[e]) * kr[e];
        a += std::fabs(double(qr[e]) * kr[e]);
        *vmax = std::max(*vmax, std::fabs(double(vr[e])));
      }
      sc.push_back(d * scale);
      *A = std::max(*A, a * scale);
      mx = std::max(mx, sc.back());
    }
    double sum = 0;
    for (double& x : sc) sum += (x = std::exp(x - mx));
    o->assign(static_cast<size_t>(hd), 0.0);
    for (int64_t t = lo; t <= pos; ++t) {
      const float* vr = v[static_cast<size_t>(s)].data() + t * kvd + g * hd;
      for (int64_t e = 0; e < hd; ++e) (*o)[static_cast<size_t>(e)] += sc[static_cast<size_t>(t - lo)] / sum * vr[e];
    }
  }
};

// Checks every (row, head) of one step against the exact result and the
// bound; returns the largest error as a fraction of max|v| (for the log).
double CheckBound(const Layer& L, const std::vector<std::array<int64_t, 3>>& parts, const std::vector<float>& out,
                  int64_t row_stride_sample = 1) {
  const int64_t hd = L.sh.head_dim, qd = L.sh.heads * hd;
  double worst = 0, sq = 0;
  int64_t count = 0, row = 0;
  for (auto [s, start, n] : parts) {
    for (int64_t i = 0; i < n; ++i, ++row) {
      if (i % row_stride_sample != 0 && i != n - 1) continue;
      for (int64_t h = 0; h < L.sh.heads; ++h) {
        std::vector<double> o;
        double A, vmax;
        L.Exact(s, start + i, h, &o, &A, &vmax);
        const double bound_abs = (4 * kU * A + 3 * kU) * vmax;
        for (int64_t e = 0; e < hd; ++e) {
          const double got = out[static_cast<size_t>(row * qd + h * hd + e)];
          const double err = std::fabs(got - o[static_cast<size_t>(e)]);
          EXPECT_LE(err, bound_abs + kU * std::fabs(o[static_cast<size_t>(e)]))
              << "seq " << s << " pos " << start + i << " head " << h << " dim " << e << " A " << A;
          worst = std::max(worst, err / vmax);
          sq += (err / vmax) * (err / vmax);
          ++count;
        }
      }
    }
  }
  // Rounding errors are not all of one sign: the typical error is far below
  // the bound (measured ~u/10 on these shapes).
  EXPECT_LT(std::sqrt(sq / static_cast<double>(count)), kU / 2) << "rms error";
  return worst;
}

// The bf16 kernels this machine runs for a head dimension.
std::vector<AttentionKernel> Bf16Kernels(int64_t hd) {
  std::vector<AttentionKernel> ks;
  for (AttentionKernel k : {AttentionKernel::kBf16Avx512, AttentionKernel::kBf16Amx}) {
    if (AttentionKernelAvailable(k, DType::kBF16, hd)) ks.push_back(k);
  }
  return ks;
}

TEST(AttentionBf16Test, TheKernelIsInThisBuild) {
  // The build targets this machine (-march=native); a CPU without AVX512-BF16
  // runs the f32 kernel, and these tests say so instead of passing vacuously.
  ASSERT_TRUE(AttentionKernelAvailable(AttentionKernel::kBf16Avx512, DType::kBF16, 64)) << "built without AVX512-BF16";
  EXPECT_FALSE(AttentionKernelAvailable(AttentionKernel::kBf16Avx512, DType::kBF16, 36));
  EXPECT_FALSE(AttentionKernelAvailable(AttentionKernel::kBf16Amx, DType::kBF16, 80));
  EXPECT_FALSE(AttentionKernelAvailable(AttentionKernel::kBf16Avx512, DType::kF32, 64));
  const AttentionKernel a = AutoAttentionKernel(DType::kBF16, 64);
  EXPECT_EQ(a, AttentionKernelAvailable(AttentionKernel::kBf16Amx, DType::kBF16, 64) ? AttentionKernel::kBf16Amx
                                                                                         : AttentionKernel::kBf16Avx512);
  EXPECT_EQ(AutoAttentionKernel(DType::kF32, 64), AttentionKernel::kF32);
  std::printf("  auto kernel for bf16 KV, head_dim 64: %s\n", AttentionKernelName(a));
}

TEST(AttentionBf16Test, WithinTheStatedBoundOfExactAttention) {
  // head dims 64/128 (and 80, 48: tails of the V re-pairing), GQA 1..8, page
  // sizes, a sliding window; steps mixing first prefill chunks, chunks after a
  // cached prefix, and decode rows.
  const std::vector<Shape> shapes = {{8, 8, 64, 16, 0},  {8, 4, 64, 16, 0},   {32, 8, 64, 16, 0},
                                     {16, 2, 128, 16, 0}, {8, 1, 128, 8, 0},  {12, 4, 64, 32, 37},
                                     {6, 2, 80, 16, 0},   {3, 3, 48, 16, 0},  {24, 8, 128, 16, 100},
                                     {4, 2, 40, 16, 0},   {6, 3, 72, 8, 0},   {96, 1, 64, 16, 0},
                                     // AMX at head dims past 128, and page sizes a multiple of 16
                                     // but not of 32 (48) or of neither (24).
                                     {8, 2, 96, 48, 0},   {4, 4, 256, 24, 0}, {8, 4, 192, 16, 0},
                                     {4, 1, 160, 48, 61}};
  const std::vector<int64_t> lens = {1, 37, 65, 71, 229, 64};
  const std::vector<std::array<int64_t, 3>> parts = {{0, 0, 1},  {1, 0, 37}, {2, 45, 20},
                                                     {3, 70, 1}, {4, 100, 129}, {5, 31, 33}};
  for (const Shape& sh : shapes) {
    SCOPED_TRACE("heads " + std::to_string(sh.heads) + "/" + std::to_string(sh.kv_heads) + " hd " +
                 std::to_string(sh.head_dim) + " window " + std::to_string(sh.window));
    Layer L(sh, lens, static_cast<uint32_t>(sh.heads * 131 + sh.head_dim));
    const std::vector<float> ref = L.Run(parts, AttentionKernel::kF32);
    for (AttentionKernel k : Bf16Kernels(sh.head_dim)) {
      SCOPED_TRACE(AttentionKernelName(k));
      const std::vector<float> out = L.Run(parts, k);
      const double worst = CheckBound(L, parts, out);
      // The f32 kernel on the same pages agrees within the same bound.
      double vmax = 0, diff = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        vmax = std::max(vmax, std::fabs(double(ref[i])));
        diff = std::max(diff, std::fabs(double(out[i]) - ref[i]));
      }
      EXPECT_LT(diff, 0.05 * std::max(1.0, vmax));
      std::printf("  %s heads %lld/%lld hd %lld: worst error %.5f of max|v| (u = %.5f)\n", AttentionKernelName(k),
                  static_cast<long long>(sh.heads), static_cast<long long>(sh.kv_heads),
                  static_cast<long long>(sh.head_dim), worst, kU);
    }
  }
}

TEST(AttentionBf16Test, ARowsBitsDoNotDependOnTheStep) {
  // The same positions computed in one prefill step, in chunks split at odd
  // places, as decode rows one at a time, and batched beside another sequence
  // at another row offset: every output bit equal.
  for (const Shape& sh : {Shape{32, 8, 64, 16, 0}, Shape{8, 8, 128, 16, 0}, Shape{12, 4, 64, 8, 45},
                          Shape{6, 2, 80, 16, 0}, Shape{96, 1, 64, 16, 0}}) {
    Layer L(sh, {300, 90}, 7);
    const int64_t qd = sh.heads * sh.head_dim;
    for (AttentionKernel k : Bf16Kernels(sh.head_dim)) {
    SCOPED_TRACE(AttentionKernelName(k));
    const std::vector<float> whole = L.Run({{0, 0, 300}}, k);
    std::vector<float> split;
    for (auto [a, b] : std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, 18}, {18, 100}, {100, 101}, {101, 250}, {250, 280}}) {
      std::vector<float> part = L.Run({{0, a, b - a}}, k);
      split.insert(split.end(), part.begin(), part.end());
    }
    for (int64_t pos = 280; pos < 300; ++pos) {  // decode
      std::vector<float> part = L.Run({{0, pos, 1}}, k);
      split.insert(split.end(), part.begin(), part.end());
    }
    ASSERT_EQ(split.size(), whole.size());
    EXPECT_EQ(0, std::memcmp(split.data(), whole.data(), whole.size() * sizeof(float))) << "chunks and decode";
    // Batched after another sequence's rows, starting at a cached prefix of 133.
    const std::vector<float> batched = L.Run({{1, 0, 90}, {0, 133, 167}}, k);
    EXPECT_EQ(0, std::memcmp(batched.data() + 90 * qd, whole.data() + 133 * qd, 167 * qd * sizeof(float)))
        << "batched";
    }
  }
}

TEST(AttentionBf16Test, NoBitDependsOnTheThreadsFtzDaz) {
  // Queries 60x larger than usual: scores spread over ~170 log2 units, so the
  // running max jumps by more than 126 between chunks and the rescale would
  // be an f32 denormal (flushed or not by MXCSR) if it were not set to 0.
  const Shape sh{8, 2, 64, 16, 0};
  Layer L(sh, {400}, 11);
  for (auto& x : L.q[0]) x *= 60.0f;
  auto set_csr = [](unsigned bits) {
    ThreadPool::Default().RunOnAll([bits](int, int) { _mm_setcsr((_mm_getcsr() & ~0x8040u) | bits); });
  };
  for (AttentionKernel k : Bf16Kernels(sh.head_dim)) {
    SCOPED_TRACE(AttentionKernelName(k));
    set_csr(0);
    const std::vector<float> plain = L.Run({{0, 0, 400}}, k);
    set_csr(0x8040);  // FTZ | DAZ
    const std::vector<float> flushed = L.Run({{0, 0, 400}}, k);
    set_csr(0);
    for (float x : plain) ASSERT_TRUE(std::isfinite(x));
    EXPECT_EQ(0, std::memcmp(plain.data(), flushed.data(), plain.size() * sizeof(float)));
  }
}

#if defined(__AMX_TILE__)
TEST(AttentionBf16Test, AmxPutsBackTheThreadsTileConfiguration) {
  // oneDNN's matmuls configure tiles on the same threads: the kernel must leave
  // whatever configuration it found.
  if (!AttentionKernelAvailable(AttentionKernel::kBf16Amx, DType::kBF16, 64)) {
    GTEST_SKIP() << "AMX not granted on this machine (the AVX-512 variant runs)";
  }
  struct alignas(64) Cfg {
    uint8_t palette = 1, start = 0, reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
  } mine, after;
  mine.colsb[0] = 12;
  mine.rows[0] = 3;
  mine.colsb[1] = 40;
  mine.rows[1] = 7;
  Layer L(Shape{8, 2, 64, 16, 0}, {40}, 3);
  // The kernel runs on the pool's threads and on this one: check this one.
  _tile_loadconfig(&mine);
  L.Run({{0, 0, 40}}, AttentionKernel::kBf16Amx);
  _tile_storeconfig(&after);
  EXPECT_EQ(0, std::memcmp(&mine, &after, sizeof(mine)));
  _tile_release();
}
#endif

TEST(AttentionBf16Test, LongPromptsInChunksAgainstExact) {
  // 8K tokens of one sequence, prefilled in 1,024-token steps as a server
  // does (each attending to all earlier chunks' KV in the pool) and after a
  // cached prefix of 4,103: sampled rows within the bound, and the two equal bit
  // for bit.
  const Shape sh{8, 2, 64, 16, 0};
  const int64_t n = 8192;
  Layer L(sh, {n}, 11);
  const int64_t qd = sh.heads * sh.head_dim;
  for (AttentionKernel k : Bf16Kernels(sh.head_dim)) {
    SCOPED_TRACE(AttentionKernelName(k));
    std::vector<float> chunked;
    for (int64_t a = 0; a < n; a += 1024) {
      std::vector<float> part = L.Run({{0, a, 1024}}, k);
      chunked.insert(chunked.end(), part.begin(), part.end());
    }
    CheckBound(L, {{0, 0, n}}, chunked, /*row_stride_sample=*/331);
    const std::vector<float> cached = L.Run({{0, 4103, n - 4103}}, k);
    EXPECT_EQ(0, std::memcmp(cached.data(), chunked.data() + 4103 * qd, cached.size() * sizeof(float)));
  }
}

}  // namespace
}  // namespace crescent::kernels
