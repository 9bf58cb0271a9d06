// A GGUF file (the input): header, metadata and tensor table validated, then
// everything a load reads from it: the model config, the tokenizer rebuilt
// from the metadata (and loaded), the first row of every tensor
// dequantized, and the file opened as model weights (Hugging Face names,
// llama's q/k rows put back) with a row of each read. An error for anything
// malformed, never a crash.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/quant.h"
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
  const int fd = memfd_create("fuzz.gguf", 0);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  auto w = model::WeightFiles::OpenGguf({"/proc/self/fd/" + std::to_string(fd)});
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
