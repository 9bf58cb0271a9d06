// The simulator on Mooncake's released traces (conversation_trace.jsonl and
// synthetic_trace.jsonl, FAST'25; https://github.com/kvcache-ai/Mooncake,
// folder FAST25-release/traces). They are not ours to ship, so these tests
// read them from the folder CRESCENT_TRACES_DIR names; scripts/test.sh runs
// this group (ctest label "traces") only when it is set, and a run without
// the files fails here instead of passing vacuously.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "base/file.h"
#include "sim/hit_rate.h"
#include "sim/simulation.h"
#include "sim/trace.h"
#include "sim/trace_gen.h"
#include "sim/trace_stats.h"

namespace crescent::sim {
namespace {

// The released trace `name`, or a test failure that says how to get it.
const Trace* Released(const std::string& name) {
  const char* dir = std::getenv("CRESCENT_TRACES_DIR");
  if (dir == nullptr || *dir == '\0') {
    ADD_FAILURE() << "CRESCENT_TRACES_DIR is not set: point it at a folder holding Mooncake's " << name
                  << " (https://github.com/kvcache-ai/Mooncake, FAST25-release/traces)";
    return nullptr;
  }
  static std::map<std::string, Trace>* cache = new std::map<std::string, Trace>();
  auto it = cache->find(name);
  if (it != cache->end()) return &it->second;
  Result<Trace> t = LoadTrace(JoinPath(dir, name));
  if (!t.ok()) {
    ADD_FAILURE() << t.status().ToString() << " (CRESCENT_TRACES_DIR=" << dir << ")";
    return nullptr;
  }
  return &cache->emplace(name, std::move(t).value()).first->second;
}

TEST(MooncakeTracesTest, LoadTheReleasedTraces) {
  const Trace* c = Released("conversation_trace.jsonl");
  const Trace* s = Released("synthetic_trace.jsonl");
  ASSERT_TRUE(c && s);
  EXPECT_EQ(c->requests.size(), 12031u);
  EXPECT_EQ(c->requests.front().input_tokens, 6758);
  EXPECT_EQ(s->requests.size(), 3993u);
}

TEST(MooncakeTracesTest, HitRateMonotoneInCapacity) {
  for (const char* name : {"conversation_trace.jsonl", "synthetic_trace.jsonl"}) {
    const Trace* full = Released(name);
    ASSERT_TRUE(full);
    const Trace t = full->Prefix(3000);
    double prev = -1;
    for (int64_t cap = 1000; cap <= 100'000'000; cap = cap * 3) {
      const double h = LruHitRate(t, cap);
      EXPECT_GE(h, prev) << name << " capacity " << cap;
      prev = h;
    }
    EXPECT_GE(MaxHitRate(t), prev);
    EXPECT_GT(MaxHitRate(t), 0.2) << name;
  }
}

// Figure 5 of the paper (16 prefill + 16 decode, the whole conversation
// trace): average TTFT falls from random to least-loaded to local-cache to
// global-cache, and the cache-aware policies reuse the most.
TEST(MooncakeTracesTest, Figure5PolicyOrdering) {
  const Trace* t = Released("conversation_trace.jsonl");
  ASSERT_TRUE(t);
  double ttft[4], hit[4];
  int i = 0;
  for (const char* policy : {"random", "least-loaded", "local-cache", "global-cache"}) {
    SimConfig c;
    c.policy = policy;
    Result<SimResult> r = Simulate(*t, c);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const SimSummary s = Summarize(*r, 0, 0);
    EXPECT_EQ(s.requests, 12031);
    ttft[i] = s.ttft_avg_s;
    hit[i++] = s.cache_hit_rate;
    std::printf("%-13s TTFT avg %.2f s, hit rate %.3f\n", policy, s.ttft_avg_s, s.cache_hit_rate);
  }
  EXPECT_GT(ttft[0], ttft[1]);
  EXPECT_GT(ttft[1], ttft[2]);
  EXPECT_GT(ttft[2], ttft[3]);
  EXPECT_GT(hit[2], 2 * hit[1]);
  EXPECT_GT(hit[3], hit[2]);
}

// The generator's claims (docs/simulator.md) against the real files: the
// statistics the Conductor reacts to agree within these bounds.
TEST(MooncakeTracesTest, GeneratedTracesMatchTheReleasedOnes) {
  for (const char* like : {"conversation", "synthetic"}) {
    const Trace* real = Released(std::string(like) + "_trace.jsonl");
    ASSERT_TRUE(real);
    TraceGenOptions o;
    o.like = like;
    o.requests = static_cast<int64_t>(real->requests.size());
    const TraceStats g = ComputeTraceStats(*GenerateTrace(o)), r = ComputeTraceStats(*real);
    EXPECT_NEAR(g.requests_per_s, r.requests_per_s, 0.15 * r.requests_per_s) << like;
    EXPECT_NEAR(g.input_quantiles[3].second, r.input_quantiles[3].second, 0.3 * r.input_quantiles[3].second) << like;
    EXPECT_NEAR(g.output_quantiles[3].second, r.output_quantiles[3].second, 0.3 * r.output_quantiles[3].second) << like;
    EXPECT_NEAR(g.share_two_blocks, r.share_two_blocks, 0.05) << like;
    EXPECT_NEAR(g.max_hit_rate, r.max_hit_rate, 0.05) << like;
    for (size_t k = 0; k < g.lru_curve.size(); ++k) {
      EXPECT_NEAR(g.lru_curve[k].second, r.lru_curve[k].second, 0.12) << like << " at " << g.lru_curve[k].first;
    }
  }
}

}  // namespace
}  // namespace crescent::sim
