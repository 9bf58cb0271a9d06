// A model's config.json (the input): parsed as ModelConfig; an error for
// anything malformed, out of range or of the wrong type, never a crash or an
// overflow. A config that parses writes itself back (ToJson) as text that
// parses to the same config (equal fingerprints), and its derived sizes are
// computed without overflow (UBSan checks).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "model/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  crescent::Result<crescent::model::ModelConfig> c = crescent::model::ParseModelConfig(text, "config.json");
  if (!c.ok()) return 0;
  (void)c->q_dim();
  (void)c->kv_dim();
  (void)c->NonEmbeddingParams();
  const std::string again = c->ToJson();
  crescent::Result<crescent::model::ModelConfig> d = crescent::model::ParseModelConfig(again, "ToJson");
  if (!d.ok() || !(d->Fingerprint() == c->Fingerprint())) std::abort();  // the written config must read back
  return 0;
}
