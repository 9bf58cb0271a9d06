// Safetensors reading: one file (SafetensorsFile) or a sharded set described by
// model.safetensors.index.json (WeightFiles).
//
// File format:  [u64 LE header_len][header_len bytes of JSON][data ...]
//   header: {"<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}, ...,
//            "__metadata__": {...}}   offsets are relative to the data section.
// Everything is validated at open: header length within the file, JSON well
// formed, known dtype, non-negative shape whose byte size equals e - b, ranges
// inside the data section and not overlapping. A corrupt file is a DataLoss or
// InvalidArgument Status, never undefined behaviour.
//
// The file is mmapped read-only; TensorView points into the mapping and lives as
// long as the SafetensorsFile. Callers copy what they keep (DESIGN.md: the kernel
// here reclaims idle file pages, so weights are served from anonymous memory).
// Thread-safety: immutable after Open; safe to read from many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/file.h"
#include "base/status.h"
#include "base/dtype.h"
#include "base/quant.h"

namespace crescent::model {

// One tensor's bytes. `quant` is its element format: for plain tensors it
// agrees with `dtype`; for block-quantized ones (GGUF's Q8_0, Q4_K, ...) dtype
// is kF32, the type its values dequantize to, and bytes hold whole blocks
// along each row (the last dimension).
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  QuantType quant = QuantType::kF32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;  // points into the mapped file (or memory the WeightFiles owns)

  int64_t numel() const;
  bool quantized() const { return IsBlockQuantized(quant); }
  // Element i converted to f32 (any format). REQUIRES: i < numel().
  float At(int64_t i) const;
  // Row r (of the last dimension) in f32. REQUIRES: r < numel() / shape.back().
  void Row(int64_t r, float* out) const;
  std::string ShapeString() const;  // "[4096, 2048]"
};

class SafetensorsFile {
 public:
  static Result<SafetensorsFile> Open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  bool Has(const std::string& name) const { return infos_.count(name) > 0; }
  Result<TensorView> Get(const std::string& name) const;
  std::vector<std::string> Names() const;

 private:
  struct Info {
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;  // relative to data_
  };
  MappedFile file_;
  const std::byte* data_ = nullptr;
  std::map<std::string, Info> infos_;
};

class GgufFile;

// All weights of a model: model.safetensors, the shards listed in
// model.safetensors.index.json ("weight_map": name -> file), or a GGUF model
// (model/gguf_model.h: a .gguf file, a split set, or a folder holding one),
// whose tensors appear under their Hugging Face names.
class WeightFiles {
 public:
  static Result<WeightFiles> Open(const std::string& path);
  static Result<WeightFiles> OpenGguf(const std::vector<std::string>& files);
  WeightFiles();
  ~WeightFiles();
  WeightFiles(WeightFiles&&) noexcept;
  WeightFiles& operator=(WeightFiles&&) noexcept;

  // The files the weights come from (for cache stamps).
  const std::vector<std::string>& paths() const { return paths_; }
  bool is_gguf() const { return !gguf_.empty(); }

  bool Has(const std::string& name) const { return where_.count(name) > 0 || views_.count(name) > 0; }
  Result<TensorView> Get(const std::string& name) const;
  // Bytes of tensor data over all files.
  uint64_t total_bytes() const { return total_bytes_; }
  // Every tensor's name, in order.
  std::vector<std::string> Names() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
  std::vector<std::unique_ptr<GgufFile>> gguf_;
  std::map<std::string, TensorView> views_;            // GGUF tensors by HF name
  std::vector<std::unique_ptr<std::byte[]>> owned_;    // rows put back in HF order
  std::vector<std::string> paths_;
  uint64_t total_bytes_ = 0;
};

// Parses a safetensors dtype name. Only BF16, F16 and F32 are supported.
Result<DType> ParseSafetensorsDType(std::string_view name);

}  // namespace crescent::model
