// Writes GGUF v3 files (format in model/gguf.h): metadata in the order added,
// then the tensor table and the data, each tensor aligned to 32 bytes
// (general.alignment is not written: 32 is the default). Used by
// `crescent make-model --format gguf` and by tests that need bad files.
// Single-threaded; the tensors' bytes must live until Write returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/quant.h"
#include "base/status.h"

namespace crescent::model {

class GgufWriter {
 public:
  void AddString(std::string_view key, std::string_view value);
  void AddU32(std::string_view key, uint32_t value);
  void AddI32(std::string_view key, int32_t value);
  void AddF32(std::string_view key, float value);
  void AddBool(std::string_view key, bool value);
  void AddStrings(std::string_view key, const std::vector<std::string>& values);
  void AddI32s(std::string_view key, const std::vector<int32_t>& values);
  void AddF32s(std::string_view key, const std::vector<float>& values);

  // ne in ggml order (ne[0] innermost); bytes = QuantBytes(type, prod(ne)).
  void AddTensor(std::string name, QuantType type, std::vector<int64_t> ne, std::span<const std::byte> bytes);

  // The whole file, and writing it (atomically: readers never see half a file).
  std::string Serialize() const;
  Status Write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    QuantType type;
    std::vector<int64_t> ne;
    std::span<const std::byte> bytes;
  };
  void Key(std::string_view key, uint32_t type);
  std::string kv_;
  uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
};

}  // namespace crescent::model
