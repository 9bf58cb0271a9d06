// A safetensors file (the input, in a memory file): its header and tensor
// table read, every tensor looked up; an error for anything malformed
// (sizes, offsets, dtypes, a header longer than the file), never a crash.
#include <sys/mman.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/json.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("fuzz.safetensors", 0);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  crescent::Result<crescent::model::SafetensorsFile> f =
      crescent::model::SafetensorsFile::Open("/proc/self/fd/" + std::to_string(fd));
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
