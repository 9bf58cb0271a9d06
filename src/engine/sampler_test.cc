#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace crescent::engine {
namespace {

TEST(SamplerTest, GreedyAndLogprobs) {
  std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f};
  Rng rng(1);
  SamplingParams p;
  p.temperature = 0;
  p.logprobs = 3;
  SampledToken t = Sample(logits.data(), 4, p, rng);
  EXPECT_EQ(t.token, 1);  // lowest id wins a tie
  double lse = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(2.0));
  EXPECT_NEAR(t.logprob, 3.0 - lse, 1e-6);
  ASSERT_EQ(t.top.size(), 3u);
  EXPECT_EQ(t.top[0].first, 1);
  EXPECT_EQ(t.top[1].first, 3);
  EXPECT_EQ(t.top[2].first, 2);
}

TEST(SamplerTest, FiltersAndSeeds) {
  std::vector<float> logits = {0.0f, 1.0f, 2.0f, 3.0f, 4.0f};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 2;
  std::map<int32_t, int> seen;
  Rng rng(7);
  for (int i = 0; i < 2000; ++i) seen[Sample(logits.data(), 5, p, rng).token]++;
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[4], seen[3]);
  p.top_k = 0;
  p.top_p = 0.5f;  // p(4) = 0.636 alone reaches it
  for (int i = 0; i < 100; ++i) EXPECT_EQ(Sample(logits.data(), 5, p, rng).token, 4);
  p.top_p = 1.0f;
  p.min_p = 0.3f;  // keeps 4 (1.0) and 3 (0.37)
  seen.clear();
  for (int i = 0; i < 500; ++i) seen[Sample(logits.data(), 5, p, rng).token]++;
  EXPECT_EQ(seen.size(), 2u);
  p.min_p = 0;
  Rng a(42), b(42);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(Sample(logits.data(), 5, p, a).token, Sample(logits.data(), 5, p, b).token);
}

}  // namespace
}  // namespace crescent::engine
