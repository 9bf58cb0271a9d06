// Writes a safetensors file (format in model/safetensors.h). The header is
// padded with spaces to a multiple of 8 bytes, as the reference writer does.
// Tensors are written in the order given. Single-threaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/dtype.h"

namespace crescent::model {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;  // numel * DTypeSize(dtype)
};

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

}  // namespace crescent::model
