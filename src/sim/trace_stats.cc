#include "sim/trace_stats.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "sim/hit_rate.h"

namespace crescent::sim {
namespace {

std::vector<std::pair<double, int64_t>> Quantiles(std::vector<int64_t> v) {
  std::vector<std::pair<double, int64_t>> out;
  if (v.empty()) return out;
  std::sort(v.begin(), v.end());
  for (double q : kTraceQuantiles) {
    const size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - (q > 0 ? 1 : 0);
    out.emplace_back(q, v[std::min(i, v.size() - 1)]);
  }
  return out;
}

}  // namespace

TraceStats ComputeTraceStats(const Trace& trace, int64_t block_tokens) {
  TraceStats s;
  s.requests = static_cast<int64_t>(trace.requests.size());
  if (trace.requests.empty()) return s;
  std::vector<int64_t> in, out;
  std::unordered_set<BlockKey, conductor::BlockKeyHasher> seen;
  int64_t first = 0, two = 0;
  for (const TraceRequest& r : trace.requests) {
    in.push_back(r.input_tokens);
    out.push_back(r.output_tokens);
    s.mean_input += static_cast<double>(r.input_tokens);
    s.mean_output += static_cast<double>(r.output_tokens);
    const auto keys = trace.Keys(r);
    size_t k = 0;
    while (k < keys.size() && seen.contains(keys[k])) ++k;
    first += k >= 1;
    two += k >= 2;
    seen.insert(keys.begin(), keys.end());
  }
  const double n = static_cast<double>(s.requests);
  s.mean_input /= n;
  s.mean_output /= n;
  s.share_first_block = static_cast<double>(first) / n;
  s.share_two_blocks = static_cast<double>(two) / n;
  s.duration_s = static_cast<double>(trace.requests.back().timestamp_ms - trace.requests.front().timestamp_ms) / 1000.0;
  s.requests_per_s = s.duration_s > 0 ? n / s.duration_s : 0;
  s.input_quantiles = Quantiles(std::move(in));
  s.output_quantiles = Quantiles(std::move(out));
  s.max_hit_rate = MaxHitRate(trace, block_tokens);
  for (int64_t cap : {10'000, 30'000, 100'000, 300'000, 1'000'000, 3'000'000, 10'000'000}) {
    s.lru_curve.emplace_back(cap, LruHitRate(trace, cap, block_tokens));
  }
  return s;
}

}  // namespace crescent::sim
