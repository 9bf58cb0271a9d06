// WeightFiles over a GGUF model (declared in model/safetensors.h): the GGUF
// tensors under their Hugging Face names, llama's q/k rows put back in
// Hugging Face order (model/gguf_model.h).
#include <cstring>

#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/safetensors.h"

namespace crescent::model {

Result<WeightFiles> WeightFiles::OpenGguf(const std::vector<std::string>& files) {
  ASSIGN_OR_RETURN(std::vector<GgufFile> parts, OpenGgufModel(files));
  ASSIGN_OR_RETURN(ModelConfig cfg, GgufModelConfig(parts));
  WeightFiles w;
  w.paths_ = files;
  for (GgufFile& p : parts) w.gguf_.push_back(std::make_unique<GgufFile>(std::move(p)));
  const bool permute = GgufPermutesQk(cfg.architecture);
  for (const auto& g : w.gguf_) {
    for (const GgufTensor& t : g->tensors()) {
      Result<std::string> hf_or = GgufToHfName(t.name);
      if (!hf_or.ok()) return hf_or.status().WithContext(g->path());
      const std::string hf = *hf_or;
      if (hf.empty()) continue;  // derived elsewhere (rope_freqs.weight)
      TensorView v;
      v.name = hf;
      v.quant = t.type;
      v.dtype = t.type == QuantType::kBF16 ? DType::kBF16 : t.type == QuantType::kF16 ? DType::kF16 : DType::kF32;
      v.shape = t.shape();
      v.bytes = t.bytes;
      w.total_bytes_ += t.bytes.size();
      if (permute && (hf.ends_with("self_attn.q_proj.weight") || hf.ends_with("self_attn.k_proj.weight") ||
                      hf.ends_with("self_attn.q_proj.bias") || hf.ends_with("self_attn.k_proj.bias"))) {
        const int64_t rows = v.shape.empty() ? 0 : v.shape[0];
        if (v.shape.empty() || v.shape.size() > 2 || rows <= 0 || rows % cfg.head_dim != 0) {
          return InvalidArgument(g->path() + ": tensor '" + t.name + "' of shape " + v.ShapeString() +
                                 " is not whole heads of " + std::to_string(cfg.head_dim));
        }
        const size_t row_bytes = t.bytes.size() / static_cast<size_t>(rows);
        auto buf = std::make_unique<std::byte[]>(t.bytes.size());
        for (int64_t r = 0; r < rows; ++r) {
          std::memcpy(buf.get() + r * row_bytes, t.bytes.data() + GgufRowOfHfRow(r, cfg.head_dim) * row_bytes,
                      row_bytes);
        }
        v.bytes = {buf.get(), t.bytes.size()};
        w.owned_.push_back(std::move(buf));
      }
      w.views_[hf] = std::move(v);
    }
  }
  return w;
}

}  // namespace crescent::model
