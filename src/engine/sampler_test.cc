#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <map>
#include <numeric>

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

// logit_bias moves the pick (greedy and sampled), not the reported raw
// log-probs; -100 bans a token; it composes with the penalties.
TEST(SamplerTest, LogitBias) {
  std::vector<float> logits = {1.0f, 3.0f, 2.0f, 0.5f};
  Rng rng(1);
  SamplingParams p;
  p.temperature = 0;
  p.logit_bias = {{1, -100.0f}};
  SampledToken t = Sample(logits.data(), 4, p, rng);
  EXPECT_EQ(t.token, 2);
  const double lse = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + std::exp(0.5));
  EXPECT_NEAR(t.logprob, 2.0 - lse, 1e-6) << "log-probs stay the model's";
  p.logit_bias = {{3, 5.0f}};
  EXPECT_EQ(Sample(logits.data(), 4, p, rng).token, 3);
  p.logit_bias = {{99, 100.0f}, {-1, 100.0f}};  // outside the vocabulary: ignored
  EXPECT_EQ(Sample(logits.data(), 4, p, rng).token, 1);
  // Sampled: a banned token is never drawn; a +100 one always is.
  p.temperature = 1.0f;
  p.logit_bias = {{1, -100.0f}};
  for (int i = 0; i < 500; ++i) EXPECT_NE(Sample(logits.data(), 4, p, rng).token, 1);
  p.logit_bias = {{0, 100.0f}};
  for (int i = 0; i < 100; ++i) EXPECT_EQ(Sample(logits.data(), 4, p, rng).token, 0);
  // With a penalty: the bias comes first, the presence penalty then applies.
  p.temperature = 0;
  p.logit_bias = {{3, 3.0f}};  // 3.5: the best
  EXPECT_EQ(Sample(logits.data(), 4, p, rng).token, 3);
  p.presence_penalty = 1.0f;
  TokenHistory h;
  h.AddOutput(3);  // 3.5 - 1 = 2.5 < 3
  EXPECT_EQ(Sample(logits.data(), 4, p, rng, &h).token, 1);
  // The caller's logits are untouched.
  EXPECT_EQ(logits, (std::vector<float>{1.0f, 3.0f, 2.0f, 0.5f}));
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

namespace crescent::engine {
namespace {

// The draw follows the distribution: frequencies over a 1000-token vocabulary
// match softmax(logits / T) within a few standard errors, with and without top-p.
TEST(SamplerTest, DrawsFollowTheDistribution) {
  const int64_t vocab = 1000;
  std::vector<float> logits(vocab);
  for (int64_t i = 0; i < vocab; ++i) logits[i] = static_cast<float>(std::sin(0.37 * i) * 3.0);
  SamplingParams p;
  p.temperature = 0.7f;
  std::vector<double> prob(vocab);
  double z = 0;
  for (int64_t i = 0; i < vocab; ++i) z += (prob[i] = std::exp(logits[i] / p.temperature));
  for (double& x : prob) x /= z;
  const int draws = 200000;
  std::vector<int> count(vocab);
  Rng rng(3);
  for (int i = 0; i < draws; ++i) count[Sample(logits.data(), vocab, p, rng).token]++;
  for (int64_t i = 0; i < vocab; ++i) {
    const double expect = prob[i] * draws, sd = std::sqrt(expect * (1 - prob[i])) + 1;
    ASSERT_NEAR(count[i], expect, 5 * sd) << "token " << i;
  }
  // top-p 0.5: only the best tokens whose mass first reaches half are drawn.
  p.top_p = 0.5f;
  std::vector<int64_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return prob[a] > prob[b]; });
  std::vector<bool> allowed(vocab);
  double acc = 0;
  for (int64_t i : order) {
    allowed[i] = true;
    if ((acc += prob[i]) >= 0.5) break;
  }
  for (int i = 0; i < 20000; ++i) EXPECT_TRUE(allowed[Sample(logits.data(), vocab, p, rng).token]);
}

// A seeded draw barely moves when the logits move by float rounding, as they do
// when a preempted sequence is recomputed in another batch shape.
TEST(SamplerTest, SeededDrawIsStableUnderTinyLogitChanges) {
  const int64_t vocab = 128256;  // flat-ish, like a random model
  std::vector<float> logits(vocab), nudged(vocab);
  for (int64_t i = 0; i < vocab; ++i) {
    logits[i] = static_cast<float>(std::sin(1.3 * i));
    nudged[i] = logits[i] * (1.0f + 1e-6f * static_cast<float>(std::cos(7.1 * i)));
  }
  SamplingParams p;
  p.temperature = 0.9f;
  int moved = 0;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    Rng a(seed), b(seed);
    moved += Sample(logits.data(), vocab, p, a).token != Sample(nudged.data(), vocab, p, b).token;
  }
  EXPECT_LE(moved, 1);
}

// Tokens 70 nats below the best (probability ~1e-31 each, ~1e-26 together) are
// never drawn, over a vocabulary large enough that every race also meets the
// extreme uniforms.
TEST(SamplerTest, NegligibleTokensAreNeverDrawn) {
  const int64_t vocab = 128256;
  std::vector<float> logits(vocab, -70.0f);
  logits[12345] = 0.0f;
  SamplingParams p;
  p.temperature = 1.0f;
  Rng rng(11);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(Sample(logits.data(), vocab, p, rng).token, 12345) << "draw " << i;
}

}  // namespace
}  // namespace crescent::engine
