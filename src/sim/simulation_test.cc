// Simulator invariants and the hot-prefix case, on traces crescent generates
// (sim/trace_gen.h) with the size and structure of Mooncake's conversation
// trace. The same checks on the released traces: mooncake_traces_test.cc.
#include "sim/simulation.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "sim/trace_gen.h"

namespace crescent::sim {
namespace {

// 12,031 requests, as many as the released conversation trace.
const Trace& ConversationTrace() {
  static const Trace* t = [] {
    TraceGenOptions o;
    o.requests = 12031;
    Result<Trace> r = GenerateTrace(o);
    CHECK(r.ok()) << r.status().ToString();
    return new Trace(std::move(r).value());
  }();
  return *t;
}

const char* kAllPolicies[] = {"random",  "least-loaded",   "local-cache",    "global-cache",
                              "coupled", "coupled-prefix", "coupled-chunked"};

std::string Counts(const SimResult& r) {
  std::string s;
  for (int64_t c : r.requests_per_instance) s += std::to_string(c) + " ";
  return s;
}

// Every request completes or is rejected; caches and HBM never exceed capacity.
TEST(SimulationTest, InvariantsUnderStress) {
  const Trace t = ConversationTrace().Prefix(1500);
  for (const char* policy : kAllPolicies) {
    SimConfig c;
    c.policy = policy;
    c.prefill = 4;
    c.decode = 4;
    c.cache_tokens_per_node = 200'000;  // small: forces eviction
    c.speedup = 3;
    c.ttft_slo_s = 30;
    c.tbt_slo_s = 0.2;
    Result<SimResult> r = Simulate(t, c);
    ASSERT_TRUE(r.ok()) << policy << ": " << r.status().ToString();
    ASSERT_EQ(r->requests.size(), t.requests.size());
    int64_t served = 0;
    for (size_t i = 0; i < r->requests.size(); ++i) {
      const RequestOutcome& o = r->requests[i];
      if (o.rejected) continue;
      ++served;
      EXPECT_GT(o.ttft_s, 0) << policy << " request " << i;
      EXPECT_GE(o.finish_s, o.arrival_s + o.ttft_s - 1e-9) << policy << " request " << i;
      EXPECT_GE(o.tbt_s, 0);
      EXPECT_LE(o.reused_tokens, o.input_tokens);
      if (t.requests[i].output_tokens > 1) {
        EXPECT_GT(o.tbt_s, 0) << policy << " request " << i;
      }
    }
    int64_t placed = 0;
    for (int64_t n : r->requests_per_instance) placed += n;
    EXPECT_EQ(placed, served) << policy;
    EXPECT_LE(r->max_cache_blocks, r->cache_capacity_blocks) << policy;
    EXPECT_LE(r->max_kv_tokens, r->kv_capacity_tokens) << policy;
    const SimSummary s = Summarize(*r, c.ttft_slo_s, c.tbt_slo_s);
    EXPECT_EQ(s.rejected + served, s.requests);
    EXPECT_GE(s.effective_request_ratio, 0);
    EXPECT_LE(s.effective_request_ratio, 1);
  }
}

TEST(SimulationTest, SameSeedSameOutput) {
  const Trace t = ConversationTrace().Prefix(800);
  SimConfig c;
  c.policy = "random";
  c.prefill = 4;
  c.decode = 2;
  c.seed = 7;
  SimResult a = *Simulate(t, c), b = *Simulate(t, c);
  c.seed = 8;
  SimResult other = *Simulate(t, c);
  bool differs = false;
  for (size_t i = 0; i < a.requests.size(); ++i) {
    EXPECT_EQ(a.requests[i].prefill_instance, b.requests[i].prefill_instance);
    EXPECT_EQ(a.requests[i].ttft_s, b.requests[i].ttft_s);
    EXPECT_EQ(a.requests[i].tbt_s, b.requests[i].tbt_s);
    EXPECT_EQ(a.requests[i].finish_s, b.requests[i].finish_s);
    differs |= a.requests[i].prefill_instance != other.requests[i].prefill_instance;
  }
  EXPECT_TRUE(differs);
  c.policy = "global-cache";
  SimResult g1 = *Simulate(t, c), g2 = *Simulate(t, c);
  for (size_t i = 0; i < g1.requests.size(); ++i) EXPECT_EQ(g1.requests[i].ttft_s, g2.requests[i].ttft_s);
}

TEST(SimulationTest, AdmissionRejectsOnlyWhenAnSloIsSetAndOn) {
  const Trace t = ConversationTrace().Prefix(1500);
  SimConfig c;
  c.prefill = 2;
  c.decode = 2;
  c.speedup = 2;  // overloaded: queues grow
  c.ttft_slo_s = 5;
  SimSummary on = Summarize(*Simulate(t, c), c.ttft_slo_s, 0);
  EXPECT_GT(on.rejected, 0);
  c.admission = false;
  SimSummary off = Summarize(*Simulate(t, c), c.ttft_slo_s, 0);
  EXPECT_EQ(off.rejected, 0);
  // Rejecting early keeps the admitted ones fast: more of them meet the SLO.
  EXPECT_GT(on.effective_request_ratio, off.effective_request_ratio);
}

TEST(SimulationTest, BadConfigIsAnError) {
  const Trace t = ConversationTrace().Prefix(10);
  SimConfig c;
  c.policy = "round-robin";
  Result<SimResult> r = Simulate(t, c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("coupled-chunked"), std::string::npos) << r.status().message();
  c.policy = "global-cache";
  c.decode = 0;
  EXPECT_FALSE(Simulate(t, c).ok());
  c.decode = 1;
  c.speedup = 0;
  EXPECT_FALSE(Simulate(t, c).ok());
}

// Every request shares one 16K-token system prompt and adds 1K tokens of its
// own. The first computes the prompt on one instance; from t = 10 s the rest
// arrive every 120 ms, faster than three instances can prefill them even with the prompt
// cached. They must not pile onto the instance that holds the prompt; once
// replicas exist the load spreads.
Trace HotPrefixTrace(int n) {
  Trace t;
  for (int i = 0; i < n; ++i) {
    TraceRequest r;
    r.timestamp_ms = i == 0 ? 0 : 10'000 + 120 * i;
    r.input_tokens = 17 * 1024;
    r.output_tokens = 20;
    r.keys_begin = static_cast<uint32_t>(t.keys.size());
    for (uint64_t k = 0; k < 32; ++k) t.keys.push_back(conductor::TraceBlockKey(k));                  // the shared prompt
    t.keys.push_back(conductor::TraceBlockKey(1000 + 2 * i)), t.keys.push_back(conductor::TraceBlockKey(1001 + 2 * i));  // the user's own text
    r.keys_count = 34;
    t.requests.push_back(r);
  }
  return t;
}

TEST(SimulationTest, HotPrefixSpreadsOnceReplicasExist) {
  const Trace t = HotPrefixTrace(400);
  SimConfig c;
  c.prefill = 4;
  c.decode = 2;
  double ttft[2];
  int k = 0;
  for (const char* policy : {"local-cache", "global-cache"}) {
    c.policy = policy;
    SimResult r = *Simulate(t, c);
    const SimSummary s = Summarize(r, 0, 0);
    std::printf("hot prefix, %s: requests per prefill instance: %s(prefix transfers %lld, TTFT avg %.2f s)\n", policy,
                Counts(r).c_str(), static_cast<long long>(r.transfers), s.ttft_avg_s);
    for (int64_t n : r.requests_per_instance) EXPECT_GE(n, 400 / 4 / 2) << policy << ": " << Counts(r);
    EXPECT_EQ(s.rejected, 0);
    ttft[k++] = s.ttft_avg_s;
    if (std::string(policy) == "global-cache") {
      EXPECT_GE(r.transfers, 3);  // a replica on every other instance
    }
  }
  EXPECT_LT(ttft[1], ttft[0]);  // fetching the prompt beats recomputing it
}

// A whole conversation-sized trace runs to completion under one policy.
// (Its speed is a benchmark, bench/sim_bench.cc, not a timed test.)
TEST(SimulationTest, WholeConversationTrace) {
  SimConfig c;  // global-cache, 16 prefill + 16 decode
  Result<SimResult> r = Simulate(ConversationTrace(), c);
  ASSERT_TRUE(r.ok());
  const SimSummary s = Summarize(*r, 0, 0);
  EXPECT_EQ(s.requests, 12031);
  EXPECT_GT(s.cache_hit_rate, 0.0);
}

// Coupled prefill stalls decoding: at the same node count, its TBT tail is far
// worse than the disaggregated cluster's.
TEST(SimulationTest, CoupledPrefillInflatesTbt) {
  const Trace t = ConversationTrace().Prefix(1500);
  SimConfig c;
  c.prefill = 4;
  c.decode = 4;
  c.policy = "global-cache";
  const SimSummary dis = Summarize(*Simulate(t, c), 0, 0);
  c.policy = "coupled-prefix";
  const SimSummary cpl = Summarize(*Simulate(t, c), 0, 0);
  c.policy = "coupled-chunked";
  const SimSummary chk = Summarize(*Simulate(t, c), 0, 0);
  EXPECT_GT(cpl.tbt_p90_s, 3 * dis.tbt_p90_s);
  EXPECT_LT(chk.tbt_p90_s, cpl.tbt_p90_s);
}

}  // namespace
}  // namespace crescent::sim
