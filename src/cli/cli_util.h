// Small helpers shared by subcommands: parsing id lists, loading a model with
// a progress line.
#pragma once

#include <cstdint>
#include <functional>
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
// "4096", "64K", "8M", "2G" -> bytes (powers of 1024); zero or junk is an error.
Result<uint64_t> ParseSize(const std::string& text);
// Blocks SIGINT and SIGTERM in this thread (call before starting threads, so
// they all inherit the mask), then waits for one, calling `tick` every 100 ms
// (it may throw CommandError to stop). Returns the signal.
void BlockTerminationSignals();
int WaitForTermination(const std::function<void()>& tick = {});
// A port on 127.0.0.1 free a moment ago (for children the CLI starts);
// throws CommandError when none can be bound.
int FreeLocalPort();
// Loads a model folder or GGUF file, logging progress to stderr.
// dtype: auto|bfloat16|float32; quantization: "" or q8_0, q4_k_m, ...
Result<std::unique_ptr<engine::ModelRunner>> LoadModel(const std::string& dir, const std::string& dtype = "auto",
                                                       const std::string& quantization = "");

}  // namespace crescent::cli
