// Mooncake trace lines (the input): a trace or an error naming the line,
// never a crash (truncated lines, wrong types, huge numbers, bad hash ids).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sim/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)crescent::sim::ParseTrace(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  return 0;
}
