// The KV identity: a fingerprint moves with every part of it, and chained keys
// name a whole prefix of one model.
#include "base/kv_identity.h"

#include <gtest/gtest.h>

#include <vector>

namespace crescent {
namespace {

TEST(KvIdentityTest, TheFingerprintCoversConfigWeightsAndGeometry) {
  const Hash128 cfg{1, 2}, w{3, 4};
  const KvGeometry g{16, 8, 64, 1, 16, 256};
  const Hash128 base = KvModelFingerprint(cfg, w, g);
  EXPECT_EQ(base, KvModelFingerprint(cfg, w, g));
  EXPECT_NE(base, KvModelFingerprint(Hash128{1, 3}, w, g)) << "another config";
  EXPECT_NE(base, KvModelFingerprint(cfg, Hash128{3, 5}, g)) << "other weights (a fine-tune, another seed)";
  for (int field = 0; field < 6; ++field) {
    KvGeometry o = g;
    int64_t* f[6] = {&o.num_layers, &o.kv_heads, &o.head_dim, &o.kv_dtype, &o.page_tokens, &o.chunk_tokens};
    *f[field] += 1;
    EXPECT_NE(base, KvModelFingerprint(cfg, w, o)) << "geometry field " << field;
  }
}

TEST(KvIdentityTest, ChainedKeysNameTheWholePrefixOfOneModel) {
  const Hash128 fp{7, 7};
  const std::vector<int32_t> a{1, 2, 3}, b{4, 5, 6};
  const Hash128 ka = KvChainKey(Hash128{}, a, fp);
  EXPECT_NE(KvChainKey(ka, b, fp), KvChainKey(Hash128{}, b, fp)) << "the same block after another prefix";
  EXPECT_NE(ka, KvChainKey(Hash128{}, a, Hash128{7, 8})) << "another model";
  EXPECT_NE(ka, KvChainKey(Hash128{}, b, fp));
}

}  // namespace
}  // namespace crescent
