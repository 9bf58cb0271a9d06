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
std::string FilesStamp(const std::string& dir, const WeightFiles& files) {
  std::vector<std::string> lines;
  std::error_code ec;
  std::vector<std::filesystem::path> paths;
  if (files.is_gguf()) {
    for (const auto& p : files.paths()) paths.emplace_back(p);
  } else {
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.ends_with(".safetensors") || name == "model.safetensors.index.json") paths.push_back(e.path());
    }
  }
  for (const auto& path : paths) {
    const std::string name = path.filename().string();
    struct stat st{};
    if (stat(path.c_str(), &st) != 0) continue;
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
  // Beside the weights: in the folder, or ".<file>.crescent-weights-hash" beside a GGUF file.
  const std::string cache =
      files.is_gguf() ? JoinPath(DirName(files.paths()[0]),
                                 fmt::format(".{}.crescent-weights-hash",
                                             std::filesystem::path(files.paths()[0]).filename().string()))
                      : JoinPath(dir, ".crescent-weights-hash");
  const std::string stamp = FilesStamp(dir, files);
  Result<std::string> cached = ReadFileToString(cache);
  if (cached.ok() && cached->size() > 33 && cached->substr(33) == stamp) {
    Hash128 h;
    if (ParseHex128(cached->substr(0, 32), &h)) return h;
  }
  Hasher128 hasher;
  for (const std::string& name : files.Names()) {
    ASSIGN_OR_RETURN(TensorView t, files.Get(name));
    hasher.Update(name.data(), name.size() + 1);
    // Plain tensors as before (cached hashes stay valid); quantized ones by their ggml type.
    const int64_t dtype = t.quantized() ? 1000 + GgmlTypeId(t.quant) : static_cast<int64_t>(t.dtype);
    hasher.Update(&dtype, sizeof(dtype));
    hasher.Update(t.shape.data(), t.shape.size() * sizeof(int64_t));
    hasher.Update(t.bytes.data(), t.bytes.size());
  }
  const Hash128 h = hasher.Finish();
  WriteFileAtomic(cache, h.ToHex() + "\n" + stamp).IgnoreError();  // best effort: read-only folders hash again
  return h;
}

}  // namespace crescent::model
