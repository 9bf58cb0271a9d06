// A GGUF file (the input): header, metadata and tensor table validated, then
// everything a load reads from it: the model config, the tokenizer rebuilt
// from the metadata (and loaded), the first row of every tensor
// dequantized, and the file opened as model weights (Hugging Face names,
// llama's q/k rows put back) with a row of each read. An error for anything
// malformed, never a crash.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/quant.h"
#include "fuzz/memory_file.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/gguf_tokenizer.h"
#include "model/safetensors.h"
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
  if (!model::GgufModelConfig(parts).ok()) return 0;
  std::string path;
  const int fd = crescent::fuzz::MemoryFile(data, size, "fuzz.gguf", &path);
  if (fd < 0) return 0;
  auto w = model::WeightFiles::OpenGguf({path});
  if (w.ok()) {
    for (const std::string& name : w->Names()) {
      auto t = w->Get(name);
      if (!t.ok() || t->shape.empty() || t->numel() == 0 || t->shape.back() > 4096) continue;
      std::vector<float> row(static_cast<size_t>(t->shape.back()));
      t->Row(0, row.data());
    }
  }
  close(fd);
  return 0;
}
