// A GGUF file (the input): header, metadata and tensor table validated, then
// everything a load reads from it: the model config, the tokenizer rebuilt
// from the metadata (and loaded), the first row of every tensor
// dequantized. An error for anything malformed, never a crash.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/quant.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/gguf_tokenizer.h"
#include "model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crescent;
  auto g = model::GgufFile::Parse({reinterpret_cast<const std::byte*>(data), size}, "fuzz.gguf");
  if (!g.ok()) return 0;
  for (const model::GgufTensor& t : g->tensors()) {
    const int64_t k = t.ne.empty() ? 1 : t.ne[0];
    if (k <= 0 || k > 4096 || t.numel() == 0) continue;
    std::vector<float> row(static_cast<size_t>(k));
    DequantizeRow(t.type, t.bytes.data(), row.data(), k);
  }
  auto tj = model::GgufTokenizerJson(*g);
  if (tj.ok()) (void)model::Tokenizer::FromJson(tj->tokenizer_json, tj->config_json);
  std::vector<model::GgufFile> parts;
  parts.push_back(std::move(g).value());
  (void)model::GgufModelConfig(parts);
  return 0;
}
