// The fuzz input as a file the code under test can open by path: a memfd
// holding the bytes, named /proc/self/fd/N. Close it with close(fd).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace crescent::fuzz {

// The descriptor (-1 when memfd_create fails) and its path.
inline int MemoryFile(const uint8_t* data, size_t size, const char* name, std::string* path) {
  const int fd = memfd_create(name, 0);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  *path = "/proc/self/fd/" + std::to_string(fd);
  return fd;
}

}  // namespace crescent::fuzz
