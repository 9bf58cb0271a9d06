#include "sim/block_lru.h"

#include <gtest/gtest.h>

#include <vector>

#include "sim/hit_rate.h"
#include "sim/trace.h"
#include "sim/trace_gen.h"

namespace crescent::sim {
namespace {

std::vector<BlockKey> Keys(std::initializer_list<uint64_t> ids) {
  std::vector<BlockKey> out;
  for (uint64_t id : ids) out.push_back(conductor::TraceBlockKey(id));
  return out;
}

TEST(BlockLruTest, PrefixOutlivesSuffixAndCapacityHolds) {
  BlockLru lru(4);
  std::vector<BlockKey> a = Keys({1, 2, 3});
  lru.InsertChain(a);
  EXPECT_EQ(lru.MatchPrefix(a), 3);
  std::vector<BlockKey> b = Keys({1, 9, 10});  // shares block 1
  lru.InsertChain(b);                    // 4 slots for {1,2,3,9,10}: evicts the oldest, 3
  EXPECT_EQ(lru.size(), 4);
  EXPECT_EQ(lru.MatchPrefix(a), 2);
  EXPECT_EQ(lru.MatchPrefix(b), 3);
  EXPECT_EQ(lru.evictions(), 1);
  std::vector<BlockKey> long_chain = Keys({20, 21, 22, 23, 24, 25});
  lru.InsertChain(long_chain);  // longer than the cache: its prefix survives
  EXPECT_EQ(lru.size(), 4);
  EXPECT_EQ(lru.MatchPrefix(long_chain), 4);
}

TEST(BlockLruTest, ZeroCapacityHoldsNothing) {
  BlockLru lru(0);
  std::vector<BlockKey> a = Keys({1, 2});
  lru.InsertChain(a);
  EXPECT_EQ(lru.size(), 0);
  EXPECT_EQ(lru.MatchPrefix(a), 0);
}

TEST(HitRateTest, HandBuiltTrace) {
  // 1000 tokens on blocks {0,1}; then 600 tokens on {0,2}: 512 reused.
  Trace t = *ParseTrace(
      "{\"timestamp\": 0, \"input_length\": 1000, \"output_length\": 1, \"hash_ids\": [0, 1]}\n"
      "{\"timestamp\": 1, \"input_length\": 600, \"output_length\": 1, \"hash_ids\": [0, 2]}\n",
      "t");
  EXPECT_DOUBLE_EQ(MaxHitRate(t), 512.0 / 1600.0);
  EXPECT_DOUBLE_EQ(LruHitRate(t, 0), 0.0);
}

// More capacity never lowers the LRU hit rate (3000 requests of each kind of
// generated trace; the released traces: mooncake_traces_test.cc).
TEST(HitRateTest, MonotoneInCapacity) {
  for (const char* like : {"conversation", "synthetic"}) {
    TraceGenOptions o;
    o.like = like;
    o.requests = 3000;
    const Trace t = *GenerateTrace(o);
    double prev = -1;
    for (int64_t cap = 1000; cap <= 100'000'000; cap = cap * 3) {
      const double h = LruHitRate(t, cap);
      EXPECT_GE(h, prev) << like << " capacity " << cap;
      prev = h;
    }
    EXPECT_GE(MaxHitRate(t), prev);
    EXPECT_GT(MaxHitRate(t), 0.2) << like;
  }
}

}  // namespace
}  // namespace crescent::sim
