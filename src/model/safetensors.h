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

namespace crescent::model {

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;  // points into the mapped file

  int64_t numel() const;
  // Element i converted to f32 (any dtype). REQUIRES: i < numel().
  float At(int64_t i) const;
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

// All weights of a model folder: model.safetensors, or the shards listed in
// model.safetensors.index.json ("weight_map": name -> file).
class WeightFiles {
 public:
  static Result<WeightFiles> Open(const std::string& dir);

  bool Has(const std::string& name) const { return where_.count(name) > 0; }
  Result<TensorView> Get(const std::string& name) const;
  // Bytes of tensor data over all files.
  uint64_t total_bytes() const { return total_bytes_; }
  // Every tensor's name, in order.
  std::vector<std::string> Names() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
  uint64_t total_bytes_ = 0;
};

// Parses a safetensors dtype name. Only BF16, F16 and F32 are supported.
Result<DType> ParseSafetensorsDType(std::string_view name);

}  // namespace crescent::model
