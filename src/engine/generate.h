// GenerateBatch: run a few requests to completion together on a ModelRunner —
// one prefill of every prompt, then batched decode steps until each request hits
// max_tokens or a stop token. This is the foundation's request path (used by
// `crescent generate` and the correctness tests); the continuous-batching engine
// replaces it as the one path for the CLI and the server.
// Thread-compatible: uses the runner and pool exclusively while it runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "engine/sampler.h"

namespace crescent::engine {

struct GenerateRequest {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 16;
  SamplingParams sampling;
  uint64_t seed = 0;
  std::vector<int32_t> stop_token_ids;  // generation ends after emitting one
};

struct GenerateResult {
  std::vector<int32_t> tokens;
  std::vector<SampledToken> samples;  // one per token (logprobs)
  std::string finish_reason;          // "stop" or "length"
};

struct GenerateTimings {
  double prefill_s = 0;
  double decode_s = 0;
  int64_t decode_steps = 0;
};

// Pages: the caller's pool must have room for every prompt + max_tokens.
Result<std::vector<GenerateResult>> GenerateBatch(ModelRunner& runner, KvPagePool& pool,
                                                  const std::vector<GenerateRequest>& requests,
                                                  GenerateTimings* timings = nullptr);

// Pages needed to hold `tokens` tokens.
inline int64_t PagesFor(int64_t tokens, int64_t page_tokens) { return (tokens + page_tokens - 1) / page_tokens; }

}  // namespace crescent::engine
