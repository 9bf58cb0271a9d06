// A safetensors file (the input, in a memory file): its header and tensor
// table read, every tensor looked up; an error for anything malformed
// (sizes, offsets, dtypes, a header longer than the file), never a crash.
#include <unistd.h>

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/json.h"
#include "fuzz/memory_file.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path;
  const int fd = crescent::fuzz::MemoryFile(data, size, "fuzz.safetensors", &path);
  if (fd < 0) return 0;
  crescent::Result<crescent::model::SafetensorsFile> f =
      crescent::model::SafetensorsFile::Open(path);
  if (f.ok() && size > 8) {
    // Look every name of the header up (valid JSON or not, Open decided).
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(data[i]) << (8 * i);
    if (n <= size - 8) {
      crescent::Result<boost::json::value> h =
          crescent::ParseJson(std::string_view(reinterpret_cast<const char*>(data) + 8, n), "header");
      if (h.ok() && h->is_object()) {
        for (const auto& kv : h->get_object()) (void)f->Get(std::string(kv.key()));
      }
    }
  }
  close(fd);
  return 0;
}
