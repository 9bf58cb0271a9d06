// Files: whole-file reads, atomic writes, and a read-only memory map.
// MappedFile is move-only and owns its mapping; views into it die with it.
// Thread-safety: a MappedFile may be read from many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"

namespace crescent {

Result<std::string> ReadFileToString(const std::string& path);
// Writes to "<path>.tmp" then renames, so readers never see half a file.
Status WriteFileAtomic(const std::string& path, std::string_view data);
bool FileExists(const std::string& path);
bool IsDirectory(const std::string& path);
Status MakeDirectories(const std::string& path);
// "a/b" + "c" -> "a/b/c"
std::string JoinPath(std::string_view a, std::string_view b);
std::string DirName(std::string_view path);

class MappedFile {
 public:
  static Result<MappedFile> Open(const std::string& path);
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace crescent
