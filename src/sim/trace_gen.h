// Synthetic request traces in the Mooncake format (sim/trace.h), so that a bare
// clone can run the simulator, its tests and `crescent bench trace` without
// Mooncake's released traces (which are not ours to ship).
//
// What is modelled is what the Conductor reacts to:
//   * arrivals over time: sessions start as a Poisson process; a session's
//     later turns follow after a think time (lognormal);
//   * long-tailed input lengths and shorter outputs (lognormal, capped);
//   * prefix sharing as a tree: every request starts with one shared system
//     block (as in the conversation trace), some sessions add one of a few
//     application prompts (Zipf-popular), and turn k of a session extends
//     turn k-1's prompt, its answer and a new user message, so it shares every
//     full 512-token block of the previous turn's prompt.
// `synthetic` mimics the synthetic trace instead: no common block, long
// documents (Zipf-popular) that many requests ask questions about, and
// standalone prompts, many of them tiny.
//
// Block ids are numbered in order of first appearance, as in the released
// traces; a request has ceil(input_length / 512) of them. docs/simulator.md
// compares the statistics with the real traces (crescent trace-stats).
// Deterministic: the same options give the same trace on every machine.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "sim/trace.h"

namespace crescent::sim {

struct TraceGenOptions {
  std::string like = "conversation";  // conversation | synthetic
  int64_t requests = 2000;
  uint64_t seed = 1;
  // Mean arrivals per second (0: the real trace's own rate: 3.4 for
  // conversation, 3.9 for synthetic).
  double requests_per_s = 0;
  int64_t max_input_tokens = 128 * 1024;
  int64_t block_tokens = 512;
};

Result<Trace> GenerateTrace(const TraceGenOptions& options);

}  // namespace crescent::sim
