#include "engine/model_runner.h"

#include <cmath>
#include <cstring>

#include "base/hash.h"
#include "base/kv_identity.h"
#include "base/logging.h"
#include "base/thread_pool.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/convert.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "model/gguf_convert.h"
#include "model/safetensors.h"
#include "model/weight_layout.h"
#include "model/weights_hash.h"

namespace crescent::engine {

namespace {

using kernels::Linear;
using model::TensorView;

struct Layer {
  std::vector<float> input_norm, post_norm, q_norm, k_norm;
  Linear qkv, o, gate_up, down;
};

// Converts a tensor to `dtype` (bf16 bits or f32) appended to `out`; block-
// quantized tensors are dequantized row by row.
void AppendAs(const TensorView& t, DType dtype, std::vector<uint8_t>& out) {
  const int64_t n = t.numel();
  const size_t at = out.size();
  out.resize(at + static_cast<size_t>(n) * DTypeSize(dtype));
  if (t.quantized()) {
    const int64_t k = t.shape.back(), rows = n / k;
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < rows; ++r) {
      float* dst = dtype == DType::kF32 ? reinterpret_cast<float*>(out.data() + at) + r * k : row.data();
      t.Row(r, dst);
      if (dtype == DType::kBF16) kernels::F32ToBf16(row.data(), reinterpret_cast<uint16_t*>(out.data() + at) + r * k, k);
    }
    return;
  }
  if (dtype == t.dtype) {
    std::memcpy(out.data() + at, t.bytes.data(), t.bytes.size());
    return;
  }
  if (dtype == DType::kF32 && t.dtype == DType::kBF16) {
    kernels::Bf16ToF32(reinterpret_cast<const uint16_t*>(t.bytes.data()), reinterpret_cast<float*>(out.data() + at), n);
  } else if (dtype == DType::kF32) {
    float* dst = reinterpret_cast<float*>(out.data() + at);
    for (int64_t i = 0; i < n; ++i) dst[i] = t.At(i);
  } else {
    uint16_t* dst = reinterpret_cast<uint16_t*>(out.data() + at);
    for (int64_t i = 0; i < n; ++i) dst[i] = F32ToBf16(t.At(i));
  }
}

std::vector<float> ToF32(const TensorView& t) {
  const int64_t n = t.numel();
  std::vector<float> v(static_cast<size_t>(n));
  if (t.dtype == DType::kBF16) {
    kernels::Bf16ToF32(reinterpret_cast<const uint16_t*>(t.bytes.data()), v.data(), n);
  } else if (t.quantized()) {
    for (int64_t r = 0; r < n / t.shape.back(); ++r) t.Row(r, v.data() + r * t.shape.back());
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = t.At(i);
  }
  return v;
}

// `t` re-quantized into block type `qt`, row by row, as a GGUF of that type
// holds it; `storage` owns the bytes the returned view points into.
Result<TensorView> QuantizedView(const TensorView& t, QuantType qt, std::vector<uint8_t>* storage) {
  const int64_t k = t.shape.back(), rows = t.numel() / k;
  ASSIGN_OR_RETURN(int64_t row_bytes, QuantBytes(qt, k));
  storage->resize(static_cast<size_t>(row_bytes * rows));
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t r = 0; r < rows; ++r) {
    t.Row(r, row.data());
    QuantizeRow(qt, row.data(), storage->data() + r * row_bytes, k);
  }
  TensorView v = t;
  v.quant = qt;
  v.dtype = DType::kF32;
  v.bytes = {reinterpret_cast<const std::byte*>(storage->data()), storage->size()};
  return v;
}

}  // namespace

struct ModelRunner::Impl {
  model::ModelConfig cfg;
  Hash128 weights_hash;
  DType act = DType::kBF16;  // matmul input dtype (= weight dtype)
  std::vector<Layer> layers;
  std::vector<float> final_norm;
  Linear lm_head;
  std::vector<uint16_t> embed_bf16;  // [vocab, hidden] when act is bf16
  std::vector<float> embed_f32;      // [vocab, hidden] when act is f32
  std::unique_ptr<kernels::Rope> rope;

  // Scratch, grown as needed.
  std::vector<float> x, qkv, gu, rope_cos, rope_sin, last_x;
  std::vector<uint8_t> h, attn, mlp, last_h;
  std::vector<int64_t> positions;

  size_t ActSize() const { return DTypeSize(act); }

  void Norm(const float* in, const std::vector<float>& w, int64_t rows, void* out) const {
    const int64_t hs = cfg.hidden_size;
    const float eps = static_cast<float>(cfg.rms_norm_eps);
    ThreadPool::Default().ParallelFor(rows, [&](int64_t b, int64_t e) {
      if (act == DType::kBF16) {
        kernels::RmsNormBf16(in + b * hs, w.data(), e - b, hs, eps, static_cast<uint16_t*>(out) + b * hs);
      } else {
        kernels::RmsNorm(in + b * hs, w.data(), e - b, hs, eps, static_cast<float*>(out) + b * hs);
      }
    }, 4);
  }
};

ModelRunner::ModelRunner() : impl_(std::make_unique<Impl>()) {}
ModelRunner::~ModelRunner() = default;

const model::ModelConfig& ModelRunner::config() const { return impl_->cfg; }

KvCacheShape ModelRunner::kv_shape(int64_t page_tokens) const {
  return {impl_->cfg.num_layers, impl_->cfg.num_kv_heads, impl_->cfg.head_dim, page_tokens, impl_->act};
}

Result<std::optional<DType>> ParseComputeDType(const std::string& name) {
  if (name == "auto") return std::optional<DType>();
  if (name == "bfloat16" || name == "bf16") return std::optional<DType>(DType::kBF16);
  if (name == "float32" || name == "f32" || name == "float") return std::optional<DType>(DType::kF32);
  return InvalidArgument("unsupported dtype '" + name + "' (auto, bfloat16, float32)");
}

DType ModelRunner::dtype() const { return impl_->act; }

Result<std::unique_ptr<ModelRunner>> ModelRunner::Load(const std::string& dir, const RunnerOptions& options) {
  const auto& progress = options.progress;
  ASSIGN_OR_RETURN(model::ModelConfig cfg, model::LoadModelConfig(dir));
  ASSIGN_OR_RETURN(model::WeightFiles files, model::WeightFiles::Open(dir));
  RETURN_IF_ERROR(model::ValidateWeights(cfg, files).WithContext(dir));
  ASSIGN_OR_RETURN(Hash128 weights_hash, model::WeightsContentHash(dir, files));

  std::unique_ptr<ModelRunner> r(new ModelRunner());
  Impl& im = *r->impl_;
  im.cfg = cfg;
  im.weights_hash = weights_hash;
  // bf16 compute when every matrix is bf16 or block-quantized (GGUF); f32
  // when one is f16 or f32.
  im.act = DType::kBF16;
  for (const auto& spec : model::ExpectedTensors(cfg)) {
    if (spec.init == model::TensorSpec::Init::kMatrix || spec.init == model::TensorSpec::Init::kEmbedding) {
      const TensorView t = files.Get(spec.name).value();
      if (!t.quantized() && t.dtype != DType::kBF16) im.act = DType::kF32;
    }
  }
  if (options.dtype) {
    if (*options.dtype == DType::kF16) return Unimplemented("float16 compute is not supported (use bfloat16 or float32)");
    im.act = *options.dtype;
  }
  auto get = [&](const std::string& name) { return files.Get(name).value(); };  // validated above
  const int64_t hs = cfg.hidden_size, total = cfg.num_layers + 2;
  std::vector<uint8_t> buf;
  if (!options.quantization.empty()) {
    RETURN_IF_ERROR(model::TensorTypeFor(options.quantization, "", {}, cfg).status());
    // Other weights, other outputs: the KV of a quantized model is its own.
    Hasher128 h;
    h.Update(&weights_hash, sizeof(weights_hash));
    h.Update(options.quantization.data(), options.quantization.size());
    im.weights_hash = h.Finish();
  }
  std::vector<std::vector<uint8_t>> qbufs;  // quantized at load; live until packed
  auto make_linear = [&](std::initializer_list<std::string> names, std::initializer_list<std::string> biases,
                         int64_t k) -> Result<Linear> {
    std::vector<float> bias;
    for (const auto& name : biases) {
      std::vector<float> b = ToF32(get(name));
      bias.insert(bias.end(), b.begin(), b.end());
    }
    // Block-quantized when any part is (a GGUF) or when asked to quantize.
    std::vector<TensorView> parts;
    std::vector<QuantType> types;
    bool quantized = false;
    for (const auto& name : names) {
      parts.push_back(get(name));
      QuantType t = parts.back().quant;
      if (!parts.back().quantized() && !options.quantization.empty()) {
        ASSIGN_OR_RETURN(t, model::TensorTypeFor(options.quantization, name, parts.back().shape, cfg));
      }
      types.push_back(t);
      quantized = quantized || IsBlockQuantized(t);
    }
    if (quantized && options.dequantize) {
      // The reference: each part through its block type's values, then dense.
      buf.clear();
      int64_t n = 0;
      std::vector<uint8_t> q;
      for (size_t i = 0; i < parts.size(); ++i) {
        n += parts[i].shape[0];
        if (parts[i].quantized() || !IsBlockQuantized(types[i])) {
          AppendAs(parts[i], im.act, buf);
          continue;
        }
        ASSIGN_OR_RETURN(TensorView v, QuantizedView(parts[i], types[i], &q));
        AppendAs(v, im.act, buf);  // dequantized row by row
      }
      return Linear::Create(n, k, im.act, buf.data(), bias.empty() ? nullptr : bias.data());
    }
    if (quantized) {
      qbufs.clear();
      std::vector<kernels::QuantSegment> segs;
      for (size_t i = 0; i < parts.size(); ++i) {
        const TensorView& t = parts[i];
        const int64_t rows = t.shape[0];
        if (t.quantized()) {
          segs.push_back({t.quant, rows, t.bytes.data()});
          continue;
        }
        // A plain part beside quantized ones (or asked to be quantized): Q8_0
        // unless its type was chosen above.
        const QuantType qt = IsBlockQuantized(types[i]) ? types[i] : QuantType::kQ8_0;
        ASSIGN_OR_RETURN(TensorView v, QuantizedView(t, qt, &qbufs.emplace_back()));
        segs.push_back({qt, rows, v.bytes.data()});
      }
      return Linear::CreateQuantized(k, segs, bias.empty() ? nullptr : bias.data(), im.act);
    }
    buf.clear();
    int64_t n = 0;
    for (const TensorView& t : parts) {
      AppendAs(t, im.act, buf);
      n += t.shape[0];
    }
    return Linear::Create(n, k, im.act, buf.data(), bias.empty() ? nullptr : bias.data());
  };

  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    auto n = [&](std::string_view s) { return model::LayerTensorName(l, s); };
    Layer layer;
    layer.input_norm = ToF32(get(n("input_layernorm.weight")));
    layer.post_norm = ToF32(get(n("post_attention_layernorm.weight")));
    if (cfg.qk_norm) {
      layer.q_norm = ToF32(get(n("self_attn.q_norm.weight")));
      layer.k_norm = ToF32(get(n("self_attn.k_norm.weight")));
    }
    std::initializer_list<std::string> no_bias{};
    ASSIGN_OR_RETURN(layer.qkv, cfg.qkv_bias
                                    ? make_linear({n("self_attn.q_proj.weight"), n("self_attn.k_proj.weight"),
                                                   n("self_attn.v_proj.weight")},
                                                  {n("self_attn.q_proj.bias"), n("self_attn.k_proj.bias"),
                                                   n("self_attn.v_proj.bias")},
                                                  hs)
                                    : make_linear({n("self_attn.q_proj.weight"), n("self_attn.k_proj.weight"),
                                                   n("self_attn.v_proj.weight")},
                                                  no_bias, hs));
    ASSIGN_OR_RETURN(layer.o, cfg.o_bias ? make_linear({n("self_attn.o_proj.weight")}, {n("self_attn.o_proj.bias")},
                                                       cfg.q_dim())
                                         : make_linear({n("self_attn.o_proj.weight")}, no_bias, cfg.q_dim()));
    ASSIGN_OR_RETURN(layer.gate_up, make_linear({n("mlp.gate_proj.weight"), n("mlp.up_proj.weight")}, no_bias, hs));
    ASSIGN_OR_RETURN(layer.down, make_linear({n("mlp.down_proj.weight")}, no_bias, cfg.intermediate_size));
    im.layers.push_back(std::move(layer));
    if (progress) progress(l + 1, total);
  }
  im.final_norm = ToF32(get("model.norm.weight"));
  TensorView embed = get("model.embed_tokens.weight");
  // Quantized at load: the embedding's rows go through the type a GGUF of
  // that kind stores it in, so both hold the same values.
  std::vector<uint8_t> embed_q;
  if (!options.quantization.empty() && !embed.quantized()) {
    ASSIGN_OR_RETURN(QuantType et, model::TensorTypeFor(options.quantization, "model.embed_tokens.weight", embed.shape, cfg));
    if (IsBlockQuantized(et)) {
      ASSIGN_OR_RETURN(embed, QuantizedView(embed, et, &embed_q));
    }
  }
  if (im.act == DType::kBF16) {
    // Converted unless it is bf16 already (an f32 model run in bf16, a GGUF).
    std::vector<uint8_t> bytes;
    AppendAs(embed, DType::kBF16, bytes);
    im.embed_bf16.resize(static_cast<size_t>(embed.numel()));
    std::memcpy(im.embed_bf16.data(), bytes.data(), bytes.size());
  } else {
    im.embed_f32 = ToF32(embed);
  }
  std::string head = (cfg.tie_word_embeddings && !files.Has("lm_head.weight")) ? "model.embed_tokens.weight"
                                                                                : "lm_head.weight";
  ASSIGN_OR_RETURN(im.lm_head, make_linear({head}, {}, hs));
  if (progress) progress(total, total);

  kernels::RopeParams rp;
  rp.head_dim = cfg.head_dim;
  rp.theta = cfg.rope_theta;
  rp.factor = cfg.rope_scaling.factor;
  rp.low_freq_factor = cfg.rope_scaling.low_freq_factor;
  rp.high_freq_factor = cfg.rope_scaling.high_freq_factor;
  rp.original_max_position = static_cast<double>(cfg.rope_scaling.original_max_position_embeddings);
  rp.scaling = cfg.rope_scaling.type == model::RopeScaling::Type::kLlama3   ? kernels::RopeParams::Scaling::kLlama3
               : cfg.rope_scaling.type == model::RopeScaling::Type::kLinear ? kernels::RopeParams::Scaling::kLinear
                                                                            : kernels::RopeParams::Scaling::kNone;
  im.rope = std::make_unique<kernels::Rope>(rp);
  return r;
}

const Hash128& ModelRunner::weights_hash() const { return impl_->weights_hash; }

Hash128 ModelHash(const model::ModelConfig& config, const Hash128& weights_hash) {
  const Hash128 parts[2] = {config.Fingerprint(), weights_hash};
  return HashBytes128(parts, sizeof(parts));
}

Hash128 ModelRunner::KvFingerprint(int64_t page_tokens, int64_t chunk_tokens) const {
  const KvCacheShape shape = kv_shape(page_tokens);
  const KvGeometry g{shape.num_layers, shape.kv_heads, shape.head_dim, static_cast<int64_t>(shape.dtype),
                     page_tokens, chunk_tokens};
  return KvModelFingerprint(impl_->cfg.Fingerprint(), impl_->weights_hash, g);
}

int64_t ModelRunner::weight_bytes_per_step() const {
  int64_t b = impl_->lm_head.weight_bytes();
  for (const Layer& l : impl_->layers) {
    b += l.qkv.weight_bytes() + l.o.weight_bytes() + l.gate_up.weight_bytes() + l.down.weight_bytes();
  }
  return b;
}

double ModelRunner::ForwardFlops(int64_t start_pos, int64_t new_tokens) const {
  const auto& c = impl_->cfg;
  double per_token = 2.0 * (c.hidden_size * (c.q_dim() + 2 * c.kv_dim()) + c.q_dim() * c.hidden_size +
                            3.0 * c.hidden_size * c.intermediate_size);
  double flops = per_token * c.num_layers * new_tokens;
  // Attention: QKᵀ and PV, 2 * head_dim FLOPs each per (query head, key).
  double keys = static_cast<double>(new_tokens) * start_pos + new_tokens * (new_tokens + 1) / 2.0;
  flops += 4.0 * c.head_dim * c.num_heads * keys * c.num_layers;
  flops += 2.0 * c.hidden_size * c.vocab_size;  // lm_head for the last row
  return flops;
}

Status ModelRunner::Forward(std::span<const ForwardSeq> seqs, KvPagePool& pool, std::vector<float>* logits,
                            const std::function<void(int64_t layer)>& layer_written) {
  Impl& im = *impl_;
  const auto& c = im.cfg;
  const int64_t hs = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), hd = c.head_dim;
  const int64_t qkv_w = qd + 2 * kvd, inter = c.intermediate_size;
  if (pool.shape().num_layers != c.num_layers || pool.shape().kv_heads != c.num_kv_heads ||
      pool.shape().head_dim != hd || pool.shape().dtype != im.act) {
    return InvalidArgument("KV pool shape does not match the model");
  }
  // Validate and lay out the batch.
  std::vector<kernels::AttentionSeq> aseqs;
  std::vector<int64_t> logit_rows;
  int64_t T = 0;
  for (const ForwardSeq& s : seqs) {
    if (s.kv == nullptr) return InvalidArgument("ForwardSeq without KV");
    if (s.tokens.empty()) return InvalidArgument("ForwardSeq with no tokens");
    const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
    if (s.start_pos < 0 || s.start_pos > s.kv->num_tokens) return OutOfRange("start_pos beyond the cached tokens");
    if (end > static_cast<int64_t>(s.kv->pages.size()) * pool.shape().page_tokens) {
      return OutOfRange("KV pages do not cover the new tokens");
    }
    for (int32_t t : s.tokens) {
      if (t < 0 || t >= c.vocab_size) return InvalidArgument("token id " + std::to_string(t) + " is outside the vocabulary");
    }
    kernels::AttentionSeq a;
    a.block_table = s.kv->pages.data();
    a.start_pos = s.start_pos;
    a.num_tokens = static_cast<int64_t>(s.tokens.size());
    a.row = T;
    aseqs.push_back(a);
    T += a.num_tokens;
    if (s.all_logits) {
      for (int64_t r = T - a.num_tokens; r < T; ++r) logit_rows.push_back(r);
    } else if (s.want_logits) {
      logit_rows.push_back(T - 1);
    }
  }
  if (T == 0) return Status::Ok();

  const size_t as = im.ActSize();
  im.x.resize(static_cast<size_t>(T * hs));
  im.qkv.resize(static_cast<size_t>(T * qkv_w));
  im.gu.resize(static_cast<size_t>(T * 2 * inter));
  im.h.resize(static_cast<size_t>(T * hs) * as);
  im.attn.resize(static_cast<size_t>(T * qd) * as);
  im.mlp.resize(static_cast<size_t>(T * inter) * as);
  im.positions.resize(static_cast<size_t>(T));
  im.rope_cos.resize(static_cast<size_t>(T * hd / 2));
  im.rope_sin.resize(static_cast<size_t>(T * hd / 2));

  // Embeddings and positions.
  {
    int64_t r = 0;
    for (const ForwardSeq& s : seqs) {
      for (size_t i = 0; i < s.tokens.size(); ++i, ++r) {
        im.positions[r] = s.start_pos + static_cast<int64_t>(i);
        float* dst = im.x.data() + r * hs;
        if (im.act == DType::kBF16) {
          kernels::Bf16ToF32(im.embed_bf16.data() + static_cast<int64_t>(s.tokens[i]) * hs, dst, hs);
        } else {
          std::memcpy(dst, im.embed_f32.data() + static_cast<int64_t>(s.tokens[i]) * hs, hs * 4);
        }
      }
    }
    im.rope->Tables(im.positions.data(), T, im.rope_cos.data(), im.rope_sin.data());
  }

  kernels::AttentionParams ap;
  ap.num_heads = c.num_heads;
  ap.num_kv_heads = c.num_kv_heads;
  ap.head_dim = hd;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  ap.sliding_window = c.sliding_window;
  const float eps = static_cast<float>(c.rms_norm_eps);

  for (int64_t l = 0; l < c.num_layers; ++l) {
    const Layer& L = im.layers[l];
    im.Norm(im.x.data(), L.input_norm, T, im.h.data());
    L.qkv.Forward(im.h.data(), T, im.qkv.data());
    ThreadPool::Default().ParallelFor(T, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        float* q = im.qkv.data() + r * qkv_w;
        float* k = q + qd;
        if (c.qk_norm) {
          kernels::RmsNorm(q, L.q_norm.data(), c.num_heads, hd, eps, q);
          kernels::RmsNorm(k, L.k_norm.data(), c.num_kv_heads, hd, eps, k);
        }
        const float* cs = im.rope_cos.data() + r * hd / 2;
        const float* sn = im.rope_sin.data() + r * hd / 2;
        im.rope->Apply(q, c.num_heads, cs, sn);
        im.rope->Apply(k, c.num_kv_heads, cs, sn);
      }
    }, 4);
    kernels::KvLayerView view = pool.Layer(l);
    kernels::WriteKvPages(view, aseqs, im.qkv.data() + qd, im.qkv.data() + qd + kvd, qkv_w);
    if (layer_written) layer_written(l);
    if (im.act == DType::kBF16) {
      kernels::PagedAttention(ap, view, aseqs, im.qkv.data(), qkv_w, reinterpret_cast<uint16_t*>(im.attn.data()));
    } else {
      kernels::PagedAttentionF32(ap, view, aseqs, im.qkv.data(), qkv_w, reinterpret_cast<float*>(im.attn.data()));
    }
    L.o.Forward(im.attn.data(), T, im.x.data(), /*accumulate=*/true);
    im.Norm(im.x.data(), L.post_norm, T, im.h.data());
    L.gate_up.Forward(im.h.data(), T, im.gu.data());
    ThreadPool::Default().ParallelFor(T, [&](int64_t b, int64_t e) {
      if (im.act == DType::kBF16) {
        kernels::SiluMulBf16(im.gu.data() + b * 2 * inter, e - b, inter,
                             reinterpret_cast<uint16_t*>(im.mlp.data()) + b * inter);
      } else {
        kernels::SiluMul(im.gu.data() + b * 2 * inter, e - b, inter, reinterpret_cast<float*>(im.mlp.data()) + b * inter);
      }
    }, 4);
    L.down.Forward(im.mlp.data(), T, im.x.data(), /*accumulate=*/true);
  }

  for (size_t i = 0; i < seqs.size(); ++i) seqs[i].kv->num_tokens = std::max(seqs[i].kv->num_tokens, aseqs[i].start_pos + aseqs[i].num_tokens);

  const int64_t B = static_cast<int64_t>(logit_rows.size());
  if (logits == nullptr) return Status::Ok();
  logits->resize(static_cast<size_t>(B * c.vocab_size));
  if (B == 0) return Status::Ok();
  im.last_x.resize(static_cast<size_t>(B * hs));
  for (int64_t b = 0; b < B; ++b) {
    std::memcpy(im.last_x.data() + b * hs, im.x.data() + logit_rows[b] * hs, hs * 4);
  }
  im.last_h.resize(static_cast<size_t>(B * hs) * as);
  im.Norm(im.last_x.data(), im.final_norm, B, im.last_h.data());
  im.lm_head.Forward(im.last_h.data(), B, logits->data());
  return Status::Ok();
}

}  // namespace crescent::engine
