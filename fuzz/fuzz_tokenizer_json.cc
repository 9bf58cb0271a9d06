// tokenizer.json (the input) loaded, then a short text encoded and decoded:
// a tokenizer or an error naming what is wrong, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  crescent::Result<crescent::model::Tokenizer> t = crescent::model::Tokenizer::FromJson(json, "{}");
  if (!t.ok()) return 0;
  const std::vector<int32_t> ids = t->Encode("Hello, wörld! 123  \n\t<s>", true);
  (void)t->Decode(ids, false);
  return 0;
}
