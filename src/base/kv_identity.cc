#include "base/kv_identity.h"

namespace crescent {

Hash128 KvModelFingerprint(const Hash128& config_hash, const Hash128& weights_hash, const KvGeometry& g) {
  Hasher128 h;
  const char tag[] = "crescent-kv-v1";
  h.Update(tag, sizeof(tag));
  h.Update(&config_hash, sizeof(config_hash));
  h.Update(&weights_hash, sizeof(weights_hash));
  const int64_t geo[6] = {g.num_layers, g.kv_heads, g.head_dim, g.kv_dtype, g.page_tokens, g.chunk_tokens};
  h.Update(geo, sizeof(geo));
  return h.Finish();
}

Hash128 KvChainKey(const Hash128& parent, std::span<const int32_t> tokens, const Hash128& fingerprint) {
  Hasher128 h;
  h.Update(&parent, sizeof(parent));
  h.Update(tokens.data(), tokens.size_bytes());
  h.Update(&fingerprint, sizeof(fingerprint));
  return h.Finish();
}

}  // namespace crescent
