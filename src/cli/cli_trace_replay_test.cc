#include "cli/cli_trace_replay.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "cli/cli_trace_report.h"

namespace crescent::cli {
namespace {

sim::Trace Parse(const std::string& text) {
  auto t = sim::ParseTrace(text, "t");
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return *t;
}

TEST(TraceReplayTest, EqualLeadingBlockIdsGiveEqualLeadingTokensAndNoMore) {
  sim::Trace t = Parse(
      R"({"timestamp": 0, "input_length": 1200, "output_length": 5, "hash_ids": [7, 8, 9]}
{"timestamp": 10, "input_length": 1100, "output_length": 5, "hash_ids": [7, 8, 4]}
{"timestamp": 20, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]})");
  ReplayOptions o;
  o.length_scale = 0.25;  // blocks of 128 tokens
  std::vector<PlannedRequest> plan = PlanArrivals(t, o);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].prompt_tokens, 300);
  EXPECT_EQ(plan[1].prompt_tokens, 275);
  auto a = SynthesizeTokens(plan[0].keys, plan[0].prompt_tokens, 128, 32000, 0);
  auto b = SynthesizeTokens(plan[1].keys, plan[1].prompt_tokens, 128, 32000, 1);
  auto c = SynthesizeTokens(plan[2].keys, plan[2].prompt_tokens, 128, 32000, 2);
  ASSERT_EQ(a.size(), 300u);
  ASSERT_EQ(b.size(), 275u);
  EXPECT_TRUE(std::equal(a.begin(), a.begin() + 256, b.begin()));       // blocks 7, 8
  EXPECT_FALSE(std::equal(a.begin() + 256, a.begin() + 275, b.begin() + 256));  // 9 vs 4
  EXPECT_NE(a[0], c[0]);
  for (int32_t x : a) {
    EXPECT_GE(x, 100);
    EXPECT_LT(x, 32000);
  }
  // The same as text for chat: equal leading words.
  const std::string ta = SynthesizeText(plan[0].keys, 300, 128, 0), tb = SynthesizeText(plan[1].keys, 275, 128, 1);
  size_t same = 0;
  while (same < std::min(ta.size(), tb.size()) && ta[same] == tb[same]) ++same;
  EXPECT_GT(same, 256u);  // 256 words of at least one letter and a space
}

TEST(TraceReplayTest, BlocksPastTheKeysAreTheRequestsOwn) {
  std::vector<sim::BlockKey> keys{{5, 0}};
  auto a = SynthesizeTokens(keys, 40, 16, 1000, 1), b = SynthesizeTokens(keys, 40, 16, 1000, 2);
  EXPECT_TRUE(std::equal(a.begin(), a.begin() + 16, b.begin()));
  EXPECT_FALSE(std::equal(a.begin() + 16, a.end(), b.begin() + 16));
}

TEST(TraceReplayTest, ArrivalsFollowTimestampsOrARateAndStop) {
  sim::Trace t = Parse(R"({"timestamp": 1000, "input_length": 10, "output_length": 50, "hash_ids": [1]}
{"timestamp": 3000, "input_length": 10, "output_length": 50, "hash_ids": [2]}
{"timestamp": 9000, "input_length": 10, "output_length": 50, "hash_ids": [3]})");
  ReplayOptions o;
  o.time_scale = 0.5;
  o.output_scale = 0.1;
  auto plan = PlanArrivals(t, o);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_DOUBLE_EQ(plan[1].at_s, 1.0);
  EXPECT_DOUBLE_EQ(plan[2].at_s, 4.0);
  EXPECT_EQ(plan[0].max_tokens, 5);
  o.duration_s = 2;
  EXPECT_EQ(PlanArrivals(t, o).size(), 2u);
  o.duration_s = 0;
  o.max_requests = 1;
  EXPECT_EQ(PlanArrivals(t, o).size(), 1u);
  // A rate: gaps with the right mean, the same with the same seed.
  std::string many;
  for (int i = 0; i < 4000; ++i) many += R"({"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [1]})" "\n";
  sim::Trace m = Parse(many);
  ReplayOptions r;
  r.request_rate = 20;
  auto p1 = PlanArrivals(m, r), p2 = PlanArrivals(m, r);
  EXPECT_NEAR(p1.back().at_s / 3999.0, 0.05, 0.005);
  EXPECT_EQ(p1.back().at_s, p2.back().at_s);
  r.burstiness = 0.25;  // burstier: the same mean
  EXPECT_NEAR(PlanArrivals(m, r).back().at_s / 3999.0, 0.05, 0.01);
}

TEST(TraceReportTest, MooncakeTbtIsTheMeanOfTheLongestTenthOfGaps) {
  std::vector<double> g(20, 0.01);
  g[3] = 0.5;
  g[9] = 0.3;
  EXPECT_DOUBLE_EQ(MooncakeTbt(g), 0.4);  // the longest 2 of 20
  EXPECT_DOUBLE_EQ(MooncakeTbt({0.2, 0.1}), 0.2);  // at least one gap
  EXPECT_EQ(MooncakeTbt({}), 0);
}

TEST(TraceReportTest, SummaryCountsOutcomesSlosAndHits) {
  std::vector<RequestRecord> recs(4);
  recs[0].outcome = Outcome::kOk;
  recs[0].ttft_s = 0.1;
  recs[0].itl_s = {0.01, 0.02};
  recs[0].prompt_tokens = 100;
  recs[0].cached_tokens = 50;
  recs[0].output_tokens = 3;
  recs[1].outcome = Outcome::kOk;
  recs[1].ttft_s = 2.0;  // breaks the TTFT SLO
  recs[1].prompt_tokens = 100;
  recs[1].cached_tokens = 0;
  recs[1].output_tokens = 1;
  recs[2].outcome = Outcome::kRejected;
  recs[3].outcome = Outcome::kFailed;
  TraceSummary s = Summarize(recs, 2.0, 1.0, 0.05, false);
  EXPECT_EQ(s.ok, 2);
  EXPECT_EQ(s.rejected, 1);
  EXPECT_EQ(s.failed, 1);
  EXPECT_DOUBLE_EQ(s.slo_fraction, 0.25);
  EXPECT_DOUBLE_EQ(s.goodput, 0.5);
  EXPECT_DOUBLE_EQ(s.hit_rate, 0.25);
  EXPECT_DOUBLE_EQ(s.output_tokens_per_s, 2.0);
  EXPECT_EQ(s.ttft.n, 2);
  EXPECT_EQ(s.itl.n, 2);
  // Records survive their JSON lines (for --compare).
  std::string lines;
  for (const auto& r : recs) lines += boost::json::serialize(RecordJson(r)) + "\n";
  auto back = ParseRecords(lines, "r");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 4u);
  EXPECT_EQ((*back)[0].itl_s, recs[0].itl_s);
  EXPECT_EQ((*back)[2].outcome, Outcome::kRejected);
  auto bad = ParseRecords("{\"index\": 1}\nnot json\n", "r.jsonl");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("r.jsonl:1"), std::string::npos);
}

TEST(HttpClientTest, ParsesUrls) {
  auto u = ParseHttpUrl("http://127.0.0.1:8000");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8000);
  EXPECT_EQ(u->prefix, "");
  u = ParseHttpUrl("http://[::1]:9/api/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 9);
  EXPECT_EQ(u->prefix, "/api");
  EXPECT_EQ(ParseHttpUrl("http://localhost")->port, 80);
  EXPECT_FALSE(ParseHttpUrl("https://x").ok());
  EXPECT_FALSE(ParseHttpUrl("ftp://x").ok());
  EXPECT_FALSE(ParseHttpUrl("http://x:0").ok());
  EXPECT_FALSE(ParseHttpUrl("http://x:99999").ok());
  EXPECT_FALSE(ParseHttpUrl("http://:80").ok());
}

TEST(HttpClientTest, AnUnreachablePortIsAnErrorNotAHang) {
  HttpCall c;
  auto r = c.Run(*ParseHttpUrl("http://127.0.0.1:1"), "GET", "/v1/models", "", "", 5);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace crescent::cli
