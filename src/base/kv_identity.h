// The KV identity the engine, the store and the Conductor share (DESIGN.md,
// "KV layout and keys"): one module derives the model fingerprint and the
// chained keys, so KV is reused exactly when it is the same KV.
//
//   fingerprint = XXH3-128(config hash, weights content hash, KV geometry)
//   key(block)  = XXH3-128(parent key, the block's token ids, fingerprint)
//
// A key names its whole prefix and its model: a base model and its fine-tune,
// two dummy models of different seeds, another KV dtype, page or chunk size
// never share a key.
#pragma once

#include <cstdint>
#include <span>

#include "base/hash.h"

namespace crescent {

struct KvGeometry {
  int64_t num_layers = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t kv_dtype = 0;      // the DType enum's value
  int64_t page_tokens = 0;
  int64_t chunk_tokens = 0;  // 0: no KV leaves the engine
};

Hash128 KvModelFingerprint(const Hash128& config_hash, const Hash128& weights_hash, const KvGeometry& geometry);

// The key of `tokens` after the prefix named by `parent` (zero for the first block).
Hash128 KvChainKey(const Hash128& parent, std::span<const int32_t> tokens, const Hash128& fingerprint);

}  // namespace crescent
