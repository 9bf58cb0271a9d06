// Summary statistics of a request trace: the figures docs/simulator.md uses
// to compare `crescent make-trace` output with Mooncake's released traces
// (`crescent trace-stats`). Pure function; thread-safe.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "sim/trace.h"

namespace crescent::sim {

struct TraceStats {
  int64_t requests = 0;
  double duration_s = 0;       // first to last timestamp
  double requests_per_s = 0;   // requests / duration (0 when all arrive at once)
  double mean_input = 0, mean_output = 0;
  // (quantile, tokens) at kTraceQuantiles.
  std::vector<std::pair<double, int64_t>> input_quantiles, output_quantiles;
  // Requests whose first block was seen before / that share 2+ leading blocks
  // with an earlier request (a system prompt vs. an earlier turn or document).
  double share_first_block = 0;
  double share_two_blocks = 0;
  double max_hit_rate = 0;  // MaxHitRate
  std::vector<std::pair<int64_t, double>> lru_curve;  // (capacity tokens, LruHitRate)
};

inline constexpr double kTraceQuantiles[] = {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0};

TraceStats ComputeTraceStats(const Trace& trace, int64_t block_tokens = 512);

}  // namespace crescent::sim
