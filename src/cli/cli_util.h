// Small helpers shared by subcommands: parsing id lists, loading a model with
// a progress line.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/model_runner.h"

namespace crescent::cli {

// "1,2, 3" -> {1,2,3}; InvalidArgument naming the bad item otherwise.
Result<std::vector<int32_t>> ParseIdList(const std::string& text, const std::string& flag);
// "1,8,32" -> {1,8,32} (positive integers).
Result<std::vector<int64_t>> ParseIntList(const std::string& text, const std::string& flag);
// Loads a model folder, logging progress to stderr. dtype: auto|bfloat16|float32.
Result<std::unique_ptr<engine::ModelRunner>> LoadModel(const std::string& dir, const std::string& dtype = "auto");

}  // namespace crescent::cli
