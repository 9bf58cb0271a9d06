#include "sim/trace_gen.h"

#include <gtest/gtest.h>

#include <unordered_set>

#include "sim/hit_rate.h"
#include "sim/trace_stats.h"

namespace crescent::sim {
namespace {

Trace Make(const std::string& like, int64_t n, uint64_t seed) {
  TraceGenOptions o;
  o.like = like;
  o.requests = n;
  o.seed = seed;
  Result<Trace> t = GenerateTrace(o);
  CHECK(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

TEST(TraceGenTest, DeterministicBySeed) {
  for (const char* like : {"conversation", "synthetic"}) {
    const std::string a = FormatTrace(Make(like, 500, 3)), b = FormatTrace(Make(like, 500, 3));
    EXPECT_EQ(a, b) << like;
    EXPECT_NE(a, FormatTrace(Make(like, 500, 4))) << like;
  }
}

// The format's own rules hold: timestamps in order, one id per 512-token block
// (the last one partial), ids numbered by first appearance, and the file
// parses back to the same trace.
TEST(TraceGenTest, WellFormed) {
  for (const char* like : {"conversation", "synthetic"}) {
    const Trace t = Make(like, 3000, 1);
    ASSERT_EQ(t.requests.size(), 3000u) << like;
    int64_t last_ts = 0;
    uint64_t next_new = 0;
    std::unordered_set<BlockKey, conductor::BlockKeyHasher> seen;
    for (const TraceRequest& r : t.requests) {
      EXPECT_GE(r.timestamp_ms, last_ts);
      last_ts = r.timestamp_ms;
      EXPECT_GT(r.input_tokens, 0);
      EXPECT_LE(r.input_tokens, 128 * 1024);
      EXPECT_GE(r.output_tokens, 1);
      EXPECT_EQ(static_cast<int64_t>(r.keys_count), (r.input_tokens + 511) / 512);
      for (BlockKey k : t.Keys(r)) {
        if (seen.insert(k).second) {
          EXPECT_EQ(k, conductor::TraceBlockKey(next_new++)) << like;
        }
      }
    }
    Result<Trace> back = ParseTrace(FormatTrace(t), "generated");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(FormatTrace(*back), FormatTrace(t));
  }
}

// What the Conductor reacts to, in the ranges of the released traces
// (docs/simulator.md has the side-by-side table; mooncake_traces_test.cc
// compares against the real files when they are present).
TEST(TraceGenTest, ConversationLooksLikeTheConversationTrace) {
  const TraceStats s = ComputeTraceStats(Make("conversation", 12031, 1));
  EXPECT_NEAR(s.requests_per_s, 3.4, 0.5);
  EXPECT_NEAR(s.input_quantiles[3].second, 6909, 0.2 * 6909);  // median
  EXPECT_NEAR(s.input_quantiles[5].second, 27367, 0.25 * 27367);  // p90
  EXPECT_NEAR(s.output_quantiles[3].second, 350, 0.2 * 350);
  EXPECT_LT(s.mean_output, 0.1 * s.mean_input);  // outputs far shorter than prompts
  EXPECT_GT(s.share_first_block, 0.999);  // the common system block (all but the first)
  EXPECT_NEAR(s.share_two_blocks, 0.39, 0.06);    // later turns of a session
  EXPECT_NEAR(s.max_hit_rate, 0.374, 0.05);
  EXPECT_GT(s.lru_curve.back().second, 2 * s.lru_curve.front().second);  // capacity matters
}

TEST(TraceGenTest, SyntheticLooksLikeTheSyntheticTrace) {
  const TraceStats s = ComputeTraceStats(Make("synthetic", 3993, 1));
  EXPECT_NEAR(s.requests_per_s, 3.9, 0.4);
  EXPECT_LT(s.input_quantiles[2].second, 1000);  // a quarter are short prompts
  EXPECT_NEAR(s.input_quantiles[3].second, 11587, 0.35 * 11587);
  EXPECT_NEAR(s.share_two_blocks, 0.44, 0.06);  // questions about shared documents
  EXPECT_NEAR(s.max_hit_rate, 0.651, 0.05);
}

TEST(TraceGenTest, BadOptionsAreErrors) {
  TraceGenOptions o;
  o.like = "chat";
  EXPECT_EQ(GenerateTrace(o).status().code(), StatusCode::kInvalidArgument);
  o.like = "conversation";
  o.requests = 0;
  EXPECT_FALSE(GenerateTrace(o).ok());
  o.requests = 10;
  o.requests_per_s = -1;
  EXPECT_FALSE(GenerateTrace(o).ok());
}

}  // namespace
}  // namespace crescent::sim
