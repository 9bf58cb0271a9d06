// The KV page pool: reference counts, the prefix cache's keys and LRU
// eviction, all-or-nothing reservation, and page keys that chain a prefix.
#include "engine/kv_cache.h"

#include <gtest/gtest.h>

#include <set>

namespace crescent::engine {
namespace {

KvCacheShape Shape() {
  KvCacheShape s;
  s.num_layers = 2;
  s.kv_heads = 1;
  s.head_dim = 4;
  s.page_tokens = 4;
  s.dtype = DType::kF32;
  return s;
}

Hash128 K(uint64_t v) { return Hash128{v, v * 31}; }

TEST(KvPagePoolTest, PagesAreSharedByReferenceAndFreedByTheLast) {
  KvPagePool pool(Shape(), 4);
  const int32_t a = pool.Allocate();
  EXPECT_EQ(pool.ref_count(a), 1);
  pool.Ref(a);
  pool.Unref(a);
  EXPECT_EQ(pool.num_free_pages(), 3);
  pool.Unref(a);
  EXPECT_EQ(pool.num_free_pages(), 4);
  std::set<int32_t> got;
  for (int i = 0; i < 4; ++i) got.insert(pool.Allocate());
  EXPECT_EQ(got.size(), 4u);
  EXPECT_EQ(pool.Allocate(), -1) << "every page owned";
}

TEST(KvPagePoolTest, CachedPagesAreRevivedByKeyAndEvictedLeastRecentlyUsedFirst) {
  KvPagePool pool(Shape(), 3);
  int32_t p[3];
  for (int i = 0; i < 3; ++i) {
    p[i] = pool.Allocate();
    pool.SetKey(p[i], K(i + 1));
  }
  for (int i = 0; i < 3; ++i) pool.Unref(p[i]);  // cached in the order 0, 1, 2
  EXPECT_EQ(pool.num_cached_pages(), 3);
  EXPECT_EQ(pool.num_free_pages(), 3) << "cached pages can be handed out";
  // A lookup revives page 0 (it leaves the LRU list) and makes 1 the oldest.
  ASSERT_EQ(pool.Lookup(K(1)), p[0]);
  pool.Ref(p[0]);
  const int32_t fresh = pool.Allocate();
  EXPECT_EQ(fresh, p[1]) << "the least recently used cached page goes first";
  EXPECT_EQ(pool.Lookup(K(2)), -1) << "its key went with it";
  EXPECT_EQ(pool.Lookup(K(3)), p[2]);
  pool.Ref(p[2]);
  // First writer wins: a second key for a keyed page is ignored.
  pool.SetKey(p[2], K(9));
  EXPECT_EQ(pool.Lookup(K(9)), -1);
  pool.Unref(p[0]);
  pool.Unref(p[2]);
  pool.Unref(fresh);
  pool.ClearCache();
  EXPECT_EQ(pool.num_cached_pages(), 0);
  EXPECT_EQ(pool.Lookup(K(1)), -1);
  EXPECT_EQ(pool.num_free_pages(), 3);
}

TEST(KvPagePoolTest, ReserveIsAllOrNothing) {
  KvPagePool pool(Shape(), 4);
  SequenceKv kv;
  ASSERT_TRUE(pool.Reserve(kv, 9).ok());  // 3 pages of 4 tokens
  EXPECT_EQ(kv.pages.size(), 3u);
  SequenceKv other;
  Status s = pool.Reserve(other, 8);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(other.pages.empty()) << "nothing taken on failure";
  EXPECT_EQ(pool.num_free_pages(), 1);
  pool.Release(kv);
  EXPECT_EQ(pool.num_free_pages(), 4);
  EXPECT_TRUE(kv.pages.empty());
}

TEST(KvPagePoolTest, PageKeysNameTheWholePrefixAndTheModel) {
  const std::vector<int32_t> a{1, 2, 3, 4}, b{1, 2, 3, 5};
  const Hash128 fp{7, 7}, other_fp{7, 8};
  const Hash128 ka = PageKey(Hash128{}, a, fp);
  EXPECT_EQ(ka, PageKey(Hash128{}, a, fp));
  EXPECT_NE(ka, PageKey(Hash128{}, b, fp)) << "other tokens";
  EXPECT_NE(ka, PageKey(Hash128{}, a, other_fp)) << "another model";
  EXPECT_NE(PageKey(ka, a, fp), PageKey(PageKey(Hash128{}, b, fp), a, fp)) << "the same page after another prefix";
}

TEST(KvPagePoolTest, PagesHoldKAndVOfEveryLayerApart) {
  KvPagePool pool(Shape(), 2);
  const int32_t p = pool.Allocate();
  std::set<const std::byte*> starts;
  for (int64_t l = 0; l < pool.num_layers(); ++l) {
    EXPECT_EQ(pool.K(l, p).size(), static_cast<size_t>(pool.page_bytes_per_layer()));
    starts.insert(pool.K(l, p).data());
    starts.insert(pool.V(l, p).data());
  }
  EXPECT_EQ(starts.size(), 4u);
  EXPECT_EQ(pool.page_bytes_per_layer(), 4 * 4 * 4);  // page_tokens x head_dim x float
}

}  // namespace
}  // namespace crescent::engine
