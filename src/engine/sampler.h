// Sampler: picks the next token from one row of logits.
//
// Order (as vLLM): a grammar's mask, then logit_bias added (OpenAI's: -100 bans a token, 100
// all but forces it), then penalties (repetition over prompt and output tokens:
// positive logits divided, negative multiplied; frequency and presence over output
// tokens, OpenAI's definition), then: temperature == 0 is greedy (argmax, lowest id on ties);
// otherwise logits / temperature, then top-k, top-p (smallest set whose
// probability reaches p) and min-p (drop tokens below min_p * max prob), then a
// draw from the renormalized distribution: an exponential race (argmax of
// prob / Exp(1), as vLLM) keyed by the request's own Rng — so a seeded request
// samples the same tokens whatever else is in the batch, and a float-level
// change in the logits (a preempted sequence recomputed) rarely moves a draw.
// Log-probs are of the raw model distribution (log_softmax of the logits), as
// OpenAI's API reports them. Stateless apart from the Rng; thread-compatible.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace crescent::engine {

// xoshiro256** seeded through splitmix64: small state, reproducible streams.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  double Uniform();  // [0, 1)

 private:
  uint64_t s_[4];
};

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy
  int32_t top_k = 0;         // 0 = off
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;  // 1 = off
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int32_t logprobs = 0;  // top log-probs to report per token (0 = none)
  // Added to the logits before anything else; token ids in [0, vocab) (others
  // are ignored: the API layer refuses them). At most one entry per token.
  std::vector<std::pair<int32_t, float>> logit_bias;

  bool has_penalties() const {
    return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f;
  }
};

// What the penalties look at: the prompt's distinct tokens and the output's counts.
struct TokenHistory {
  std::vector<int32_t> prompt_tokens;              // sorted, unique
  std::vector<std::pair<int32_t, int32_t>> output; // (token, count), unsorted
  void SetPrompt(std::span<const int32_t> prompt);
  void AddOutput(int32_t token);
};

struct SampledToken {
  int32_t token = -1;
  float logprob = 0;                             // of the chosen token
  std::vector<std::pair<int32_t, float>> top;    // best first, `logprobs` entries
};

// `history` may be null when p has no penalties. `allowed` (a bit per token,
// or null): a structured output's mask, applied before everything else; a
// refused token is never drawn (its logit is -inf whatever the bias).
SampledToken Sample(const float* logits, int64_t vocab, const SamplingParams& p, Rng& rng,
                    const TokenHistory* history = nullptr, const uint64_t* allowed = nullptr);

// The log-prob of `token` under a row of raw logits, with the `top` best
// alternatives (best first): what a prompt token's log-probs report.
SampledToken ScoreToken(const float* logits, int64_t vocab, int32_t token, int32_t top);

// log_softmax of a row, in place (f64 accumulation for the normalizer).
void LogSoftmax(float* row, int64_t n);

}  // namespace crescent::engine
