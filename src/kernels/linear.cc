#include "kernels/linear.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>
#include <map>
#include <mutex>

#include "base/check.h"
#include "base/large_buffer.h"
#include "base/logging.h"
#include "base/thread_pool.h"
#include "kernels/gemv.h"

namespace crescent::kernels {

namespace {
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::engine& Engine() {
  static dnnl::engine* e = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *e;
}
dnnl::stream& Stream() {
  static dnnl::stream* s = new dnnl::stream(Engine());
  return *s;
}
// Quantized weights: up to this many rows the integer kernel, beyond it bf16 tiles.
constexpr int64_t kQuantDecodeRows = 32;
// The calling thread's OpenMP team size set to 1 for a scope, and restored
// when it ends (also by an exception).
class OneOmpThread {
 public:
  OneOmpThread() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneOmpThread() { omp_set_num_threads(saved_); }
  OneOmpThread(const OneOmpThread&) = delete;
  OneOmpThread& operator=(const OneOmpThread&) = delete;

 private:
  int saved_;
};
dt ToDnnl(DType t) { return t == DType::kF32 ? dt::f32 : t == DType::kBF16 ? dt::bf16 : dt::f16; }
}  // namespace

struct Linear::Impl {
  int64_t n = 0, k = 0;
  DType dtype = DType::kBF16;
  dnnl::memory::desc w_desc;  // blocked layout
  LargeBuffer weight_bytes;  // what `weights` points into: huge pages where allowed
  dnnl::memory weights;
  dnnl::memory bias;  // [1, N] f32, or empty
  bool has_bias = false;
  bool gemv = false;  // weights are BA16a64b2a bf16: small M uses GemvBf16
  std::unique_ptr<QuantMatmul> quant;  // block-quantized weights (CreateQuantized)
  bool prefill_dequant = false;         // quant: M > kQuantDecodeRows runs bf16 tiles through oneDNN
  struct Prim {
    dnnl::matmul prim;
    dnnl::memory::desc src, dst;
  };
  mutable std::map<std::pair<int64_t, bool>, Prim> cache;
  // Quantized prefill: single-threaded primitives per (rows, columns).
  struct ChunkPrim {
    dnnl::matmul prim;
    dnnl::memory::desc src, w, dst, bias, scratch;
  };
  mutable std::map<std::pair<int64_t, int64_t>, ChunkPrim> chunk_cache;

  // A copy (primitives are shared handles): a later call may clear the cache.
  ChunkPrim GetChunk(int64_t m, int64_t cols) const;
  // False when oneDNN made no primitive (nothing written): the caller falls back.
  bool ForwardDequantized(const uint16_t* x, int64_t m, float* y, bool accumulate) const;

  dnnl::matmul::primitive_desc Desc(int64_t m, bool accumulate, const dnnl::memory::desc& w) const {
    dnnl::memory::desc src({m, k}, ToDnnl(dtype), tag::ab);
    dnnl::memory::desc dst({m, n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    if (accumulate) {
      dnnl::post_ops po;
      po.append_sum(1.0f);
      attr.set_post_ops(po);
    }
    if (has_bias) {
      dnnl::memory::desc b({1, n}, dt::f32, tag::ab);
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w, b, dst), attr, Engine());
    }
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w, dst), attr, Engine());
  }

  const Prim& Get(int64_t m, bool accumulate) const {
    auto key = std::make_pair(m, accumulate);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    auto pd = Desc(m, accumulate, w_desc);
    std::string impl = pd.impl_info_str();
    if (impl.find("ref") != std::string::npos) {
      LOG_WARNING("oneDNN chose a slow matmul ({}) for M={} N={} K={}", impl, m, n, k);
    }
    if (cache.size() > 256) cache.clear();  // bound memory for many distinct M
    Prim p{dnnl::matmul(pd), pd.src_desc(), pd.dst_desc()};
    return cache.emplace(key, std::move(p)).first->second;
  }
};

Linear::Impl::ChunkPrim Linear::Impl::GetChunk(int64_t m, int64_t cols) const {
  const auto key = std::make_pair(m, cols);
  auto it = chunk_cache.find(key);
  if (it != chunk_cache.end()) return it->second;
  dnnl::memory::desc src({m, k}, dt::bf16, tag::ab);
  dnnl::memory::desc w({k, cols}, dt::bf16, tag::BA16a64b2a);
  // Dense: oneDNN 2.6 has only its reference matmul for a dst with a row
  // stride other than its width (measured: 1000x slower).
  dnnl::memory::desc dst({m, cols}, dt::f32, tag::ab);
  dnnl::memory::desc b({1, cols}, dt::f32, tag::ab);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // one per thread: primitives run concurrently
  // oneDNN sizes a primitive's parallelism from the creating thread's OpenMP
  // ICV, and keys its own primitive cache on it: one thread for both the
  // descriptor and the primitive, so it runs inline on whichever of our
  // threads executes it.
  const OneOmpThread one;
  const dnnl::matmul::primitive_desc pd(
      has_bias ? dnnl::matmul::desc(src, w, b, dst) : dnnl::matmul::desc(src, w, dst), attr, Engine());
  const std::string impl = pd.impl_info_str();
  if (impl.find("ref") != std::string::npos) {
    LOG_WARNING("oneDNN chose a slow matmul ({}) for M={} N={} K={}", impl, m, cols, k);
  }
  ChunkPrim p{dnnl::matmul(pd), src, w, dst, b, pd.scratchpad_desc()};
  if (chunk_cache.size() >= 256) chunk_cache.clear();  // bound memory for many distinct M
  chunk_cache.emplace(key, p);
  return p;
}

// Prefill on quantized weights: the tiles dequantized a chunk of columns at a
// time into a per-thread buffer that stays in L2, each chunk multiplied there
// by single-threaded oneDNN matmuls over blocks of rows, whose results are
// copied (or added) into their columns of y. Threads take chunks in turn, so
// the whole matrix is never written out in bf16 (2 bytes a weight to memory
// and back, which made quantized prefill slower than bf16's).
bool Linear::Impl::ForwardDequantized(const uint16_t* x, int64_t m, float* y, bool accumulate) const {
  // Bytes of bf16 weights per chunk: a quarter of L2 (2 MB here) leaves room
  // for the rows of x and the chunk's results, kRowBlock rows at a time. A
  // chunk is at least one tile of 64 columns (so 64 x K x 2 bytes when that
  // is more, 1.8 MB at K = 14336).
  // Measured at prompt 512, Q8_0 tokens/s: 256 KB 550, 512 KB 512-599,
  // 1 MB 512-562, 2 MB 546; Q4_K_M 502, 583-630, 518-582, 580.
  constexpr int64_t kChunkBytes = int64_t{1} << 19, kRowBlock = 256;
  const int64_t tiles = quant->tiles();
  const int64_t per = std::clamp<int64_t>(kChunkBytes / (64 * k * 2), 1, tiles);
  const int64_t chunks = (tiles + per - 1) / per;
  const int64_t full_cols = std::min(n, per * 64), last_cols = n - (chunks - 1) * per * 64;
  const int64_t full_rows = std::min(m, kRowBlock), last_rows = m - (m - 1) / kRowBlock * kRowBlock;
  // Made here, on the calling thread (the caches are not thread-safe). If
  // oneDNN cannot make them, the integer kernel (any M, only slower) does it.
  ChunkPrim prims[2][2];
  try {
    prims[0][0] = GetChunk(full_rows, full_cols);
    prims[0][1] = GetChunk(full_rows, last_cols);
    prims[1][0] = GetChunk(last_rows, full_cols);
    prims[1][1] = GetChunk(last_rows, last_cols);
  } catch (const dnnl::error& e) {
    LOG_WARNING("oneDNN: no prefill matmul for M={} K={} ({}); using the integer kernel", m, k, e.what());
    return false;
  }
  size_t scratch = 0;
  for (const auto& row : prims)
    for (const ChunkPrim& p : row) scratch = std::max(scratch, p.scratch.get_size());
  const float* bias_data = quant->bias();
  std::atomic<int64_t> next{0};
  ThreadPool::Default().RunOnAll([&](int, int) {
    // Any OpenMP region oneDNN opens from here is this thread alone.
    const OneOmpThread one;
    // Page aligned (AMX tile loads and 64-byte stores must not straddle
    // lines), grown to the largest chunk; the stream is per thread too.
    thread_local LargeBuffer tile_buf, out_buf, scratch_buf;
    thread_local dnnl::stream stream(Engine());
    const auto grow = [](LargeBuffer& b, size_t need) {
      if (need <= b.size()) return;
      auto buf = LargeBuffer::Allocate(need);
      CHECK(buf.ok()) << "no memory for " << need << " bytes of prefill buffers";
      b = std::move(*buf);
    };
    grow(tile_buf, static_cast<size_t>(per * 64 * k * 2));
    grow(out_buf, static_cast<size_t>(full_rows * full_cols * 4));
    grow(scratch_buf, std::max<size_t>(scratch, 64));
    auto* tile_data = reinterpret_cast<uint16_t*>(tile_buf.data());
    auto* out = reinterpret_cast<float*>(out_buf.data());
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < chunks;
         c = next.fetch_add(1, std::memory_order_relaxed)) {
      const int64_t t0 = c * per, t1 = std::min(tiles, t0 + per), col0 = t0 * 64;
      const int64_t cols = c == chunks - 1 ? last_cols : full_cols;
      quant->DequantizeBf16Blocked(t0, t1, tile_data);
      for (int64_t r0 = 0; r0 < m; r0 += kRowBlock) {
        const int64_t rows = std::min(kRowBlock, m - r0);
        const ChunkPrim& p = prims[rows == full_rows ? 0 : 1][c == chunks - 1 ? 1 : 0];
        std::unordered_map<int, dnnl::memory> args{
            {DNNL_ARG_SRC, dnnl::memory(p.src, Engine(), const_cast<uint16_t*>(x + r0 * k))},
            {DNNL_ARG_WEIGHTS, dnnl::memory(p.w, Engine(), tile_data)},
            {DNNL_ARG_DST, dnnl::memory(p.dst, Engine(), out)},
            {DNNL_ARG_SCRATCHPAD, dnnl::memory(p.scratch, Engine(), scratch_buf.data())}};
        if (has_bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p.bias, Engine(), const_cast<float*>(bias_data) + col0));
        // A oneDNN failure here, after the primitive was made, is a bug; it
        // must not unwind out of a pool thread.
        try {
          p.prim.execute(stream, args);
          stream.wait();
        } catch (const dnnl::error& e) {
          CHECK(false) << "oneDNN prefill matmul (" << rows << " x " << cols << " x " << k << "): " << e.what();
        }
        for (int64_t r = 0; r < rows; ++r) {
          float* yr = y + (r0 + r) * n + col0;
          const float* o = out + r * cols;
          if (accumulate) {
            for (int64_t j = 0; j < cols; ++j) yr[j] += o[j];
          } else {
            std::memcpy(yr, o, static_cast<size_t>(cols) * 4);
          }
        }
      }
    }
  });
  return true;
}

Linear::Linear() = default;
Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

Result<Linear> Linear::Create(int64_t n, int64_t k, DType dtype, const void* weights, const float* bias) {
  if (n <= 0 || k <= 0) return InvalidArgument("Linear: bad shape");
  if (dtype == DType::kF16) return Unimplemented("Linear: f16 weights must be converted to bf16 or f32 first");
  Linear l;
  l.impl_ = std::make_unique<Impl>();
  Impl& im = *l.impl_;
  im.n = n;
  im.k = k;
  im.dtype = dtype;
  im.has_bias = bias != nullptr;
  try {
    dnnl::memory::desc any({k, n}, ToDnnl(dtype), tag::any);
    auto pd = im.Desc(1, false, any);
    im.w_desc = pd.weights_desc();
    // HF [N, K] row-major is the [K, N] tensor in format "ba".
    dnnl::memory::desc plain({k, n}, ToDnnl(dtype), tag::ba);
    dnnl::memory src(plain, Engine(), const_cast<void*>(weights));
    auto buf = LargeBuffer::Allocate(im.w_desc.get_size());
    if (!buf.ok()) return buf.status();
    im.weight_bytes = std::move(*buf);
    im.weights = dnnl::memory(im.w_desc, Engine(), im.weight_bytes.data());
    dnnl::reorder(src, im.weights).execute(Stream(), src, im.weights);
#if defined(__AVX512BF16__)
    im.gemv = dtype == DType::kBF16 && im.w_desc == dnnl::memory::desc({k, n}, dt::bf16, tag::BA16a64b2a);
#endif
    if (bias) {
      im.bias = dnnl::memory(dnnl::memory::desc({1, n}, dt::f32, tag::ab), Engine());
      std::memcpy(im.bias.get_data_handle(), bias, static_cast<size_t>(n) * 4);
    }
    Stream().wait();
  } catch (const dnnl::error& e) {
    return Internal(std::string("oneDNN: ") + e.what());
  }
  return l;
}

int64_t Linear::n() const { return impl_->n; }
int64_t Linear::k() const { return impl_->k; }
DType Linear::dtype() const { return impl_->dtype; }
int64_t Linear::weight_bytes() const {
  return impl_->quant ? impl_->quant->weight_bytes() : static_cast<int64_t>(impl_->w_desc.get_size());
}

Result<Linear> Linear::CreateQuantized(int64_t k, std::span<const QuantSegment> segments, const float* bias,
                                       DType act) {
  if (act == DType::kF16) return Unimplemented("f16 activations for quantized weights");
  ASSIGN_OR_RETURN(QuantMatmul q, QuantMatmul::Pack(k, segments, bias));
  Linear l;
  l.impl_ = std::make_unique<Impl>();
  l.impl_->n = q.n();
  l.impl_->k = k;
  l.impl_->dtype = act;
  l.impl_->quant = std::make_unique<QuantMatmul>(std::move(q));
  Impl& im = *l.impl_;
  // Prefill shapes: the weights dequantized into bf16 tiles a chunk at a
  // time, through oneDNN's matmul (AMX or AVX512-BF16) in its blocked layout.
  im.has_bias = im.quant->bias() != nullptr;
  im.prefill_dequant = act == DType::kBF16 && im.quant->CanDequantizeBf16Blocked();
  return l;
}

void Linear::Forward(const void* x, int64_t m, float* y, bool accumulate) const {
  if (m <= 0) return;
  if (impl_->quant && impl_->prefill_dequant && m > kQuantDecodeRows &&
      impl_->ForwardDequantized(static_cast<const uint16_t*>(x), m, y, accumulate)) {
    return;
  }
  if (impl_->quant) {
    if (impl_->dtype == DType::kF32) {
      impl_->quant->ForwardF32(static_cast<const float*>(x), m, y, accumulate);
    } else {
      impl_->quant->Forward(static_cast<const uint16_t*>(x), m, y, accumulate);
    }
    return;
  }
#if defined(__AVX512BF16__)
  if (impl_->gemv && m <= kGemvMaxRows) {
    GemvBf16Blocked(static_cast<const uint16_t*>(impl_->weights.get_data_handle()), impl_->n, impl_->k,
             static_cast<const uint16_t*>(x), m, impl_->has_bias ? static_cast<const float*>(impl_->bias.get_data_handle()) : nullptr,
             y, accumulate);
    return;
  }
#endif
  const Impl::Prim& p = impl_->Get(m, accumulate);
  dnnl::memory src(p.src, Engine(), const_cast<void*>(x));
  dnnl::memory dst(p.dst, Engine(), y);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, impl_->weights}, {DNNL_ARG_DST, dst}};
  if (impl_->has_bias) args.emplace(DNNL_ARG_BIAS, impl_->bias);
  ThreadPool::Default().ParkWorkers();
  p.prim.execute(Stream(), args);
  Stream().wait();
}

}  // namespace crescent::kernels
