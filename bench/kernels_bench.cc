// Decode-shaped matmuls (M = 1..128 rows, Llama-3.2-1B's shapes and lm_head)
// through crescent's Linear and through oneDNN's own matmul on the same blocked
// weights, reported as weight GB/s and GFLOP/s; paged attention over KV read from
// memory; and a streaming-read bandwidth probe measured in the same run.
// Like the engine (whose layers evict each other's weights), every benchmark
// reads from DRAM, not cache: the linear ones rotate through enough copies of
// the weights to exceed ColdBytes() (four times the last-level cache, which is
// 32 MiB on some of our hosts and 260 MiB on others), the attention one through
// 8 copies of the KV. BM_QuantCached is the exception on purpose: one copy of
// a 1024 x 2048 matrix that stays in L2, so it shows what the quantized
// kernels compute when memory is not the limit.
//   build/bench/crescent_kernels_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/large_buffer.h"
#include "base/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/gemv.h"
#include "base/quant.h"
#include "kernels/linear.h"
#include "kernels/roofline.h"

namespace {

using crescent::DType;
using crescent::kernels::Linear;

// Bytes that no cache level holds: 4x the L3 (sysconf), at least 256 MiB.
int64_t ColdBytes() {
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return std::max<int64_t>(int64_t{256} << 20, 4 * static_cast<int64_t>(l3 > 0 ? l3 : 0));
}

// Copies of an [n, k] bf16 weight that together exceed ColdBytes().
int64_t Copies(int64_t n, int64_t k) { return std::max<int64_t>(1, (ColdBytes() + n * k * 2 - 1) / (n * k * 2)); }

std::vector<uint16_t> Weights(int64_t n, int64_t k) {
  std::vector<uint16_t> w(static_cast<size_t>(n * k));
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(0x3c00 + (i * 2654435761u >> 24));
  return w;
}

// crescent: Linear::Forward (its own GEMV for M <= kGemvMaxRows, else oneDNN).
void BM_Linear(benchmark::State& st) {
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  auto w = Weights(n, k);
  std::vector<Linear> lins;
  for (int64_t c = 0; c < Copies(n, k); ++c) lins.push_back(Linear::Create(n, k, DType::kBF16, w.data(), nullptr).value());
  w = {};
  std::vector<uint16_t> x(static_cast<size_t>(m * k), 0x3f80);
  std::vector<float> y(static_cast<size_t>(m * n));
  size_t it = 0;
  for (auto _ : st) lins[it++ % lins.size()].Forward(x.data(), m, y.data());
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(lins[0].weight_bytes()), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GFLOP/s"] = benchmark::Counter(2e-9 * static_cast<double>(m * n * k), benchmark::Counter::kIsIterationInvariantRate);
}

// Quantized weights (kernels/quant_matmul.h through Linear): type, m, n, k;
// weight GB/s of the packed bytes, the figure decode is bound by.
void QuantBench(benchmark::State& st, bool cold) {
  const auto type = static_cast<crescent::QuantType>(st.range(0));
  const int64_t m = st.range(1), n = st.range(2), k = st.range(3);
  std::vector<float> row(static_cast<size_t>(k));
  const int64_t rb = crescent::QuantBytes(type, k).value();
  std::vector<uint8_t> q(static_cast<size_t>(rb * n));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < k; ++i) row[static_cast<size_t>(i)] = static_cast<float>((r * 31 + i * 17) % 97) / 97.0f - 0.5f;
    crescent::QuantizeRow(type, row.data(), q.data() + r * rb, k);
  }
  const crescent::kernels::QuantSegment seg{type, n, q.data()};
  std::vector<Linear> lins;
  const int64_t copies = cold ? std::max<int64_t>(1, ColdBytes() / (rb * n) + 1) : 1;
  for (int64_t c = 0; c < copies; ++c) lins.push_back(Linear::CreateQuantized(k, {&seg, 1}, nullptr).value());
  std::vector<uint16_t> x(static_cast<size_t>(m * k), 0x3f80);
  std::vector<float> y(static_cast<size_t>(m * n));
  size_t it = 0;
  for (auto _ : st) lins[it++ % lins.size()].Forward(x.data(), m, y.data());
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(lins[0].weight_bytes()), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GFLOP/s"] = benchmark::Counter(2e-9 * static_cast<double>(m * n * k), benchmark::Counter::kIsIterationInvariantRate);
}
void BM_Quant(benchmark::State& st) { QuantBench(st, /*cold=*/true); }
void BM_QuantCached(benchmark::State& st) { QuantBench(st, /*cold=*/false); }

// oneDNN's matmul with weights reordered to its preferred layout.
void BM_OneDnn(benchmark::State& st) {
  using namespace dnnl;
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::desc src({m, k}, memory::data_type::bf16, memory::format_tag::ab);
  memory::desc dst({m, n}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc any({k, n}, memory::data_type::bf16, memory::format_tag::any);
  matmul::primitive_desc pd(matmul::desc(src, any, dst), eng);
  auto w = Weights(n, k);
  memory plain(memory::desc({k, n}, memory::data_type::bf16, memory::format_tag::ba), eng, w.data());
  std::vector<memory> wms;
  for (int64_t c = 0; c < Copies(n, k); ++c) {
    wms.emplace_back(pd.weights_desc(), eng);
    reorder(plain, wms.back()).execute(s, plain, wms.back());
  }
  s.wait();
  std::vector<uint16_t> x(static_cast<size_t>(m * k), 0x3f80);
  std::vector<float> y(static_cast<size_t>(m * n));
  memory xm(src, eng, x.data()), ym(dst, eng, y.data());
  matmul mm(pd);
  size_t it = 0;
  for (auto _ : st) {
    mm.execute(s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wms[it++ % wms.size()]}, {DNNL_ARG_DST, ym}});
    s.wait();
  }
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(pd.weights_desc().get_size()),
                                           benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GFLOP/s"] = benchmark::Counter(2e-9 * static_cast<double>(m * n * k), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_StreamRead(benchmark::State& st) {
  double gbs = 0;
  for (auto _ : st) gbs = crescent::kernels::MeasureReadBandwidthGBs(int64_t{1} << 30, 3);
  st.counters["GB/s"] = gbs;
}

// The ceiling the quantized decode kernels work under: BM_Quant's access
// pattern with loads alone. Copies of a buffer the size of Q8_0's down matrix
// (2048 x 8192) that together exceed ColdBytes(), one RunOnAll per copy as
// per Forward, and each thread reading the two halves of its range side by
// side (two streams, as QuantMatmul at M = 1; here they alternate line by
// line, with no software prefetch), 64 bytes per load. Beside
// BM_StreamRead it shows how much of the probe a pure read of weights laid
// out as the engine lays them reaches; beside BM_Quant, what the kernels'
// arithmetic costs on top.
#if defined(__AVX512F__)
void BM_DecodeRead(benchmark::State& st) {
  const int64_t bytes = int64_t{2048} * 8192 / 32 * 34;  // Q8_0's packed size
  const int64_t copies = std::max<int64_t>(1, ColdBytes() / bytes + 1);
  std::vector<crescent::LargeBuffer> bufs;
  for (int64_t c = 0; c < copies; ++c) {
    bufs.push_back(crescent::LargeBuffer::Allocate(static_cast<size_t>(bytes)).value());
    std::memset(bufs.back().data(), 1, static_cast<size_t>(bytes));
  }
  std::vector<int64_t> sinks(static_cast<size_t>(crescent::ThreadPool::Default().num_threads()), 0);
  size_t it = 0;
  for (auto _ : st) {
    const uint8_t* base = bufs[it++ % bufs.size()].data();
    crescent::ThreadPool::Default().RunOnAll([&](int t, int nt) {
      const int64_t lines = bytes / 64, b = lines * t / nt, e = lines * (t + 1) / nt, half = (e - b) / 2;
      const uint8_t* s0 = base + b * 64;
      const uint8_t* s1 = s0 + half * 64;
      __m512i a0 = _mm512_setzero_si512(), a1 = a0;
      for (int64_t i = 0; i < half; ++i) {
        a0 = _mm512_add_epi32(a0, _mm512_load_si512(s0 + i * 64));
        a1 = _mm512_add_epi32(a1, _mm512_load_si512(s1 + i * 64));
      }
      sinks[static_cast<size_t>(t)] += _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1));
    });
  }
  benchmark::DoNotOptimize(sinks.data());
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DecodeRead)->UseRealTime()->Unit(benchmark::kMicrosecond);
#endif

// Paged attention with Llama-3.2-1B's heads (32 query, 8 KV, head_dim 64, bf16 KV,
// 16-token pages): `seqs` sequences with `ctx` tokens in pages, each adding `n` new
// query tokens (n = 1 is a decode step). The pages span 8 copies of the batch's
// KV, used in turn, so decode reads them from memory as the engine does (the
// weights evict them between layers), not from cache. GB/s counts K and V read,
// GFLOP/s the QK^T and PV products (4 x head_dim per query head and key seen).
// The 4th argument picks the kernel: 0 auto, 1 f32, 2 bf16-avx512, 3 bf16-amx.
void BM_Attention(benchmark::State& st) {
  using namespace crescent::kernels;
  const int64_t seqs = st.range(0), ctx = st.range(1), n = st.range(2);
  const auto kernel = static_cast<AttentionKernel>(st.range(3));
  if (!AttentionKernelAvailable(kernel, DType::kBF16, 64)) {
    st.SkipWithError("kernel not available here");
    return;
  }
  const int64_t heads = 32, kvh = 8, hd = 64, page = 16, copies = 8;
  const int64_t pages_per_seq = (ctx + n + page - 1) / page;
  KvLayerView kv;
  kv.kv_heads = kvh;
  kv.head_dim = hd;
  kv.page_tokens = page;
  const int64_t pages = pages_per_seq * seqs * copies;
  std::vector<uint16_t> kb(static_cast<size_t>(kv.page_elems() * pages), 0x3c00), vb(kb.size(), 0x3c00);
  kv.k = kb.data();
  kv.v = vb.data();
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(seqs * copies));
  std::vector<std::vector<AttentionSeq>> batches(static_cast<size_t>(copies));
  for (int64_t c = 0; c < copies; ++c) {
    for (int64_t s = 0; s < seqs; ++s) {
      auto& t = tables[c * seqs + s];
      for (int64_t p = 0; p < pages_per_seq; ++p) t.push_back(static_cast<int32_t>((c * seqs + s) * pages_per_seq + p));
      batches[c].push_back({t.data(), ctx, n, s * n});
    }
  }
  std::vector<float> q(static_cast<size_t>(seqs * n * heads * hd), 0.01f);
  std::vector<uint16_t> out(q.size());
  AttentionParams p{heads, kvh, hd, 0.125f, 0};
  p.kernel = kernel;
  int64_t it = 0;
  for (auto _ : st) PagedAttention(p, kv, batches[it++ % copies], q.data(), heads * hd, out.data());
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(seqs * (ctx + n) * kvh * hd * 2 * 2),
                                           benchmark::Counter::kIsIterationInvariantRate);
  const double keys = static_cast<double>(n) * static_cast<double>(ctx) + static_cast<double>(n) * (n + 1) / 2.0;
  st.counters["GFLOP/s"] = benchmark::Counter(4.0 * hd * heads * keys * static_cast<double>(seqs) / 1e9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Attention)
    ->ArgNames({"seqs", "ctx", "new", "f32"})
    ->ArgsProduct({{32}, {600}, {1}, {1, 2, 3}})
    ->ArgsProduct({{1}, {4096, 32768}, {1}, {1, 2, 3}})
    ->ArgsProduct({{1}, {0}, {512, 1024}, {1, 2, 3}})
    ->ArgsProduct({{1}, {3584, 15360}, {512, 1024}, {1, 2, 3}})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);

// Llama-3.2-1B decode shapes: qkv, o, gate_up, down.
void Shapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {1, 4, 8, 16, 32, 64, 128}) {
    b->Args({m, 3072, 2048})->Args({m, 2048, 2048})->Args({m, 16384, 2048})->Args({m, 2048, 8192})->Args({m, 128256, 2048});
  }
}

BENCHMARK(BM_StreamRead)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Linear)->Apply(Shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_OneDnn)->Apply(Shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
// Q8_0 (3), Q4_0 (4), Q4_K (5), Q5_K (6), Q6_K (7): the down shape at decode M and at prefill M.
BENCHMARK(BM_Quant)
    ->ArgNames({"type", "m", "n", "k"})
    ->ArgsProduct({{3, 4, 5, 6, 7}, {1, 8, 512}, {2048}, {8192}})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_QuantCached)
    ->ArgNames({"type", "m", "n", "k"})
    ->ArgsProduct({{3, 5, 6, 7}, {1}, {1024}, {2048}})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
