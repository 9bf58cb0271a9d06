#include "engine/kv_events.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "engine/kv_cache.h"

namespace crescent::engine {
namespace {

Hash128 K(uint64_t i) { return {i, 42}; }

TEST(KvEventLogTest, AFollowerGetsTheEventsAfterItsSeqInOrder) {
  KvEventLog log(16);
  KvEventBatch first = log.Since(0, 0);  // nothing known: a resync of nothing
  EXPECT_TRUE(first.resync);
  EXPECT_TRUE(first.held.empty());
  log.Record(true, K(1));
  log.Record(true, K(2));
  log.Record(true, K(2));  // no change: no event
  log.Record(false, K(1));
  KvEventBatch b = log.Since(first.epoch, first.last_seq);
  ASSERT_FALSE(b.resync);
  ASSERT_EQ(b.events.size(), 3u);
  EXPECT_EQ(b.events[0].seq, 1u);
  EXPECT_TRUE(b.events[0].stored);
  EXPECT_EQ(b.events[2].key, K(1));
  EXPECT_FALSE(b.events[2].stored);
  EXPECT_EQ(b.last_seq, 3u);
  EXPECT_TRUE(log.Since(b.epoch, b.last_seq).events.empty());
  EXPECT_EQ(log.Since(b.epoch, 2, /*max_events=*/8).events.size(), 1u);
  KvEventBatch capped = log.Since(b.epoch, 0, 2);  // a capped batch ends at its last event
  EXPECT_EQ(capped.events.size(), 2u);
  EXPECT_EQ(capped.last_seq, 2u);
}

TEST(KvEventLogTest, AFollowerTheRingNoLongerReachesOrOfAnotherEpochResyncs) {
  KvEventLog log(4);
  for (uint64_t i = 0; i < 10; ++i) log.Record(true, K(i));
  log.Record(false, K(3));
  KvEventBatch b = log.Since(log.epoch(), 2);  // events 3.. were dropped from the ring
  ASSERT_TRUE(b.resync);
  EXPECT_EQ(b.held.size(), 9u);
  EXPECT_EQ(b.last_seq, 11u);
  EXPECT_EQ(std::count(b.held.begin(), b.held.end(), K(3)), 0);
  EXPECT_TRUE(log.Since(log.epoch() + 1, 11).resync);  // another process's epoch
  EXPECT_TRUE(log.Since(log.epoch(), 12).resync);       // ahead of the log: not this log's history
  EXPECT_FALSE(log.Since(log.epoch(), 8).resync);
  KvEventLog other(4);
  EXPECT_NE(other.epoch(), log.epoch());  // a restarted engine is another epoch
}

// The pool records what its prefix cache gains and loses.
TEST(KvEventLogTest, ThePoolRecordsKeysSetAndEvicted) {
  KvCacheShape shape;
  shape.num_layers = 1;
  shape.kv_heads = 1;
  shape.head_dim = 8;
  shape.page_tokens = 4;
  KvPagePool pool(shape, 2);
  KvEventLog log;
  pool.set_event_log(&log);
  const int32_t a = pool.Allocate(), b = pool.Allocate();
  pool.SetKey(a, K(1));
  pool.SetKey(b, K(2));
  pool.Unref(a);
  pool.Unref(b);
  EXPECT_EQ(log.num_held(), 2u);
  ASSERT_GE(pool.Allocate(), 0);  // evicts the least recently used: K(1)
  KvEventBatch e = log.Since(log.epoch(), 2);
  ASSERT_EQ(e.events.size(), 1u);
  EXPECT_FALSE(e.events[0].stored);
  EXPECT_EQ(e.events[0].key, K(1));
  pool.ClearCache();
  EXPECT_EQ(log.num_held(), 0u);
}

}  // namespace
}  // namespace crescent::engine
