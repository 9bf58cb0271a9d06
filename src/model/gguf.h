// GGUF reading: one file (GgufFile) with its metadata and tensor table.
//
// Format (v2 and v3, little-endian; v1 and big-endian files are refused):
//   u32 magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x  { string key | u32 type | value }
//   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to general.alignment (default 32) | tensor data
// A string is u64 length + bytes (no terminator); an array is u32 element type
// + u64 count + elements (arrays of arrays are refused). ne[0] is the innermost
// (fastest) dimension: a weight of Hugging Face shape [N, K] has ne = {K, N}.
//
// Everything is validated at Open, before any value is used: every length and
// count against the bytes left in the file, duplicate keys and tensor names,
// at most 4 dimensions, element counts and byte sizes that overflow, the
// alignment (a power of two), each tensor's offset aligned (and its data at a
// multiple of 4 bytes in the file) and inside the file, rows that are not
// whole blocks. A bad file is an InvalidArgument or DataLoss Status, a tensor
// type crescent cannot read an Unimplemented one naming the tensor and the
// type; never undefined behaviour. A tensor may have a zero dimension (no
// data); the product of its non-zero dimensions fits int64.
//
// The file is mmapped read-only; tensor bytes point into the mapping and live
// as long as the GgufFile. Thread-safety: immutable after Open.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "base/file.h"
#include "base/quant.h"
#include "base/status.h"

namespace crescent::model {

// GGUF's value types (their ids in the file).
enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

struct GgufArray {
  GgufType type = GgufType::kU8;
  std::vector<int64_t> ints;         // integer and bool elements (u64 past INT64_MAX refused)
  std::vector<double> floats;        // f32 and f64 elements
  std::vector<std::string> strings;  // string elements
  size_t size() const;
};

struct GgufValue {
  GgufType type = GgufType::kU8;
  std::variant<int64_t, double, std::string, GgufArray> v;
};

struct GgufTensor {
  std::string name;
  QuantType type = QuantType::kF32;
  std::vector<int64_t> ne;  // ggml order: ne[0] innermost
  std::span<const std::byte> bytes;

  int64_t numel() const;
  // Hugging Face order (ne reversed): [N, K] for a matrix.
  std::vector<int64_t> shape() const;
};

class GgufFile {
 public:
  static Result<GgufFile> Open(const std::string& path);
  // The same checks over bytes in memory (the fuzz target); the view must
  // outlive the result.
  static Result<GgufFile> Parse(std::span<const std::byte> bytes, std::string where);

  const std::string& path() const { return where_; }
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }

  bool Has(const std::string& key) const { return kv_.count(key) > 0; }
  // Typed reads; NotFound when absent, InvalidArgument when of another kind.
  Result<int64_t> Int(const std::string& key) const;  // any integer or bool type
  Result<double> Float(const std::string& key) const; // f32/f64 (or an integer)
  Result<std::string> String(const std::string& key) const;
  Result<const GgufArray*> Array(const std::string& key) const;

 private:
  MappedFile file_;
  std::string where_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
};

}  // namespace crescent::model
