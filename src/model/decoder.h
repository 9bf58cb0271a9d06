// Decoder: turns token strings back into text, following tokenizer.json's
// "decoder" as the reference interprets it. Supported: Sequence, ByteLevel,
// Replace, ByteFallback, Fuse, Strip, Metaspace. Unknown types are refused at load.
// Each step maps a list of strings to a list of strings (the reference's
// decode_chain); the result is their concatenation.
// Thread-safety: immutable after construction.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "base/status.h"

namespace boost::json {
class value;
}

namespace crescent::model {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

// `added_tokens` holds the contents of every added token: the ByteLevel decoder
// passes them through verbatim instead of mapping their characters to bytes.
Result<std::unique_ptr<Decoder>> MakeDecoder(const boost::json::value& config,
                                             const std::unordered_set<std::string>* added_tokens);

}  // namespace crescent::model
