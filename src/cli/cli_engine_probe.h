// Timing probes on a live engine::Engine, shared by `crescent bench engine`
// and its --profile-out: time to first token of one prompt, aggregate decode
// rate of a batch, and the measured cost profile the simulator reads
// (sim/cost_model.h: least-squares fits of prefill(n, p) and of one decode
// step(B, C) to this engine's own timings).
// Thread-safety: one probe at a time per engine.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

#include "engine/engine.h"
#include "engine/sampler.h"

namespace crescent::cli {

class PromptMaker {
 public:
  PromptMaker(uint64_t seed, int64_t vocab) : rng_(seed), vocab_(vocab) {}
  std::vector<int32_t> Make(int64_t n);

 private:
  engine::Rng rng_;
  int64_t vocab_;
};

engine::EngineRequest GreedyRequest(std::vector<int32_t> prompt, int64_t max_tokens);
// Seconds to the first token of one request, and its cached prompt tokens
// (throws CommandError when it fails).
std::pair<double, int64_t> TimeToFirstToken(engine::Engine& e, std::vector<int32_t> prompt);
// Aggregate decode tokens/s with `batch` requests of `prompt_len` tokens in
// flight, each generating gen_len + 1: tokens after the last one's first,
// over the time until the last one finished.
double DecodeRate(engine::Engine& e, PromptMaker& pm, int64_t batch, int64_t prompt_len, int64_t gen_len);

// Measures prefill at several (input, prefix) points and decode steps at
// several (batch, context) points on `e` (its step budget must hold
// max_prompt tokens in one step, its pool max_batch x (max_prompt + 64)),
// fits the profile and returns it as the JSON object ParseCostProfile reads
// (with the samples and the fits' relative errors under "_measured", which
// ParseCostProfile ignores). `chunk_tokens`: the serving step budget.
boost::json::object MeasureCostProfile(engine::Engine& e, PromptMaker& pm, int64_t max_prompt, int64_t max_batch,
                                       int64_t chunk_tokens);

}  // namespace crescent::cli
