#include "kernels/linear.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>
#include <map>
#include <mutex>

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
  // Prefill shapes: the weights dequantized into bf16 tiles per call, through
  // oneDNN's matmul (AMX or AVX512-BF16) in its blocked layout.
  if (act == DType::kBF16) {
    if (im.quant->CanDequantizeBf16Blocked()) {
      try {
        im.w_desc = dnnl::memory::desc({k, im.n}, dt::bf16, tag::BA16a64b2a);
        im.has_bias = im.quant->bias() != nullptr;
        if (im.has_bias) {
          im.bias = dnnl::memory(dnnl::memory::desc({1, im.n}, dt::f32, tag::ab), Engine());
          std::memcpy(im.bias.get_data_handle(), im.quant->bias(), static_cast<size_t>(im.n) * 4);
        }
        im.prefill_dequant = true;
      } catch (const dnnl::error& e) {
        return Internal(std::string("oneDNN: ") + e.what());
      }
    }
  }
  return l;
}

void Linear::Forward(const void* x, int64_t m, float* y, bool accumulate) const {
  if (m <= 0) return;
  // A matrix past kMaxTileElems (an lm_head asked for every prompt row's
  // logits) stays on the integer kernel rather than a 500 MB bf16 buffer.
  constexpr int64_t kMaxTileElems = int64_t{64} << 20;
  if (impl_->quant && impl_->prefill_dequant && m > kQuantDecodeRows &&
      impl_->quant->BlockedBf16Elems() <= kMaxTileElems) {
    // One buffer per calling thread, grown to the largest matrix, page
    // aligned (AMX tile loads and 64-byte stores must not straddle lines) and
    // in huge pages where allowed, as the weights are.
    thread_local LargeBuffer tiles;
    const int64_t need = impl_->quant->BlockedBf16Elems();
    if (static_cast<size_t>(need) * 2 > tiles.size()) {
      auto buf = LargeBuffer::Allocate(static_cast<size_t>(need) * 2);
      CHECK(buf.ok()) << "no memory for " << need * 2 << " bytes of bf16 weight tiles";
      tiles = std::move(*buf);
    }
    auto* tile_data = reinterpret_cast<uint16_t*>(tiles.data());
    impl_->quant->DequantizeBf16Blocked(tile_data);
    const Impl::Prim& p = impl_->Get(m, accumulate);
    dnnl::memory src(p.src, Engine(), const_cast<void*>(x));
    dnnl::memory dst(p.dst, Engine(), y);
    dnnl::memory w(impl_->w_desc, Engine(), tile_data);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}};
    if (impl_->has_bias) args.emplace(DNNL_ARG_BIAS, impl_->bias);
    ThreadPool::Default().ParkWorkers();  // the OpenMP team needs the cores
    p.prim.execute(Stream(), args);
    Stream().wait();
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
