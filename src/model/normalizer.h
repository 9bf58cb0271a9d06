// Normalizer: the first stage of tokenizer.json's pipeline, applied to each text
// section between added tokens. Supported types (the ones real LLM tokenizers use):
// Sequence, NFC, NFD, NFKC, NFKD, Replace, Prepend, Lowercase, Strip. Anything else
// is refused at load time, naming the type.
// Thread-safety: immutable after construction; Normalize may run on many threads.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"

namespace boost::json {
class value;
}

namespace crescent::model {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // REQUIRES: *text is valid UTF-8; it stays valid UTF-8.
  virtual Status Normalize(std::string* text) const = 0;
};

// Builds from tokenizer.json's "normalizer" value. Returns nullptr for JSON null.
Result<std::unique_ptr<Normalizer>> MakeNormalizer(const boost::json::value& config);

}  // namespace crescent::model
