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

namespace crescent::engine {
namespace {

TEST(SamplerTest, Penalties) {
  // Token 2 leads by 0.5; it appeared twice in the output, token 1 in the prompt.
  std::vector<float> logits = {0.0f, 1.0f, 1.5f, -1.0f};
  TokenHistory h;
  std::vector<int32_t> prompt = {1, 1, 3};
  h.SetPrompt(prompt);
  h.AddOutput(2);
  h.AddOutput(2);
  Rng rng(1);
  SamplingParams p;
  p.temperature = 0;
  EXPECT_EQ(Sample(logits.data(), 4, p, rng, &h).token, 2);
  p.frequency_penalty = 0.3f;  // 1.5 - 0.6 = 0.9 < 1.0
  EXPECT_EQ(Sample(logits.data(), 4, p, rng, &h).token, 1);
  p.frequency_penalty = 0;
  p.presence_penalty = 0.6f;  // 1.5 - 0.6 = 0.9
  EXPECT_EQ(Sample(logits.data(), 4, p, rng, &h).token, 1);
  p.presence_penalty = 0;
  p.repetition_penalty = 2.0f;  // 1.0 -> 0.5 (prompt), 1.5 -> 0.75 (output), -1 -> -2
  SampledToken t = Sample(logits.data(), 4, p, rng, &h);
  EXPECT_EQ(t.token, 2);
  // Reported log-probs are the raw model's.
  double lse = std::log(std::exp(0.0) + std::exp(1.0) + std::exp(1.5) + std::exp(-1.0));
  EXPECT_NEAR(t.logprob, 1.5 - lse, 1e-6);
  p.repetition_penalty = 4.0f;  // 1.5 -> 0.375 < 0 ? no: 0.375 > 0.25 (1.0/4), token 0 stays 0
  EXPECT_EQ(Sample(logits.data(), 4, p, rng, &h).token, 2);
  logits[0] = 0.5f;  // now token 0 (never seen) wins over 0.375 and 0.25
  EXPECT_EQ(Sample(logits.data(), 4, p, rng, &h).token, 0);
}

}  // namespace
}  // namespace crescent::engine
