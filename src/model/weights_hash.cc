#include "model/weights_hash.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "base/file.h"

namespace crescent::model {
namespace {

// "name size mtime_ns" of every weight file, sorted: what the cache is valid for.
std::string FilesStamp(const std::string& dir) {
  std::vector<std::string> lines;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.ends_with(".safetensors") && name != "model.safetensors.index.json") continue;
    struct stat st{};
    if (stat(e.path().c_str(), &st) != 0) continue;
    lines.push_back(fmt::format("{} {} {}", name, st.st_size,
                                static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec));
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

bool ParseHex128(const std::string& hex, Hash128* out) {
  if (hex.size() != 32 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) return false;
  out->hi = std::stoull(hex.substr(0, 16), nullptr, 16);
  out->lo = std::stoull(hex.substr(16), nullptr, 16);
  return true;
}

}  // namespace

Result<Hash128> WeightsContentHash(const std::string& dir, const WeightFiles& files) {
  const std::string cache = JoinPath(dir, ".crescent-weights-hash");
  const std::string stamp = FilesStamp(dir);
  Result<std::string> cached = ReadFileToString(cache);
  if (cached.ok() && cached->size() > 33 && cached->substr(33) == stamp) {
    Hash128 h;
    if (ParseHex128(cached->substr(0, 32), &h)) return h;
  }
  Hasher128 hasher;
  for (const std::string& name : files.Names()) {
    ASSIGN_OR_RETURN(TensorView t, files.Get(name));
    hasher.Update(name.data(), name.size() + 1);
    const int64_t dtype = static_cast<int64_t>(t.dtype);
    hasher.Update(&dtype, sizeof(dtype));
    hasher.Update(t.shape.data(), t.shape.size() * sizeof(int64_t));
    hasher.Update(t.bytes.data(), t.bytes.size());
  }
  const Hash128 h = hasher.Finish();
  WriteFileAtomic(cache, h.ToHex() + "\n" + stamp).IgnoreError();  // best effort: read-only folders hash again
  return h;
}

}  // namespace crescent::model
