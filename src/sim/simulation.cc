#include "sim/simulation.h"

#include <algorithm>
#include <cmath>

#include "sim/sim_internal.h"

namespace crescent::sim {

Result<SimResult> Simulate(const Trace& trace, const SimConfig& config) {
  if (config.prefill < 1) return InvalidArgument("--prefill must be at least 1");
  if (config.decode < 0) return InvalidArgument("--decode must not be negative");
  if (!(config.speedup > 0) || !std::isfinite(config.speedup)) return InvalidArgument("--speedup must be positive");
  if (config.cache_tokens_per_node < 0) return InvalidArgument("--cache-tokens-per-node must not be negative");
  if (!(config.kvcache_balancing_threshold >= 1.0)) {
    return InvalidArgument("the kvcache balancing threshold must be at least 1");
  }
  if (trace.requests.empty()) return InvalidArgument("the trace has no requests");
  if (config.policy == "coupled") return internal::RunCoupled(trace, config, internal::CoupledKind::kPlain);
  if (config.policy == "coupled-prefix") return internal::RunCoupled(trace, config, internal::CoupledKind::kPrefix);
  if (config.policy == "coupled-chunked") return internal::RunCoupled(trace, config, internal::CoupledKind::kChunked);
  Result<conductor::PolicyKind> kind = conductor::ParsePolicyKind(config.policy);
  if (!kind.ok()) {
    return InvalidArgument(kind.status().message().substr(0, kind.status().message().size() - 1) +
                           ", coupled, coupled-prefix or coupled-chunked)");
  }
  return internal::RunDisaggregated(trace, config, *kind);
}

namespace {
// Nearest-rank percentile of a sorted, non-empty vector.
double Percentile(const std::vector<double>& sorted, double q) {
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}
}  // namespace

SimSummary Summarize(const SimResult& result, double ttft_slo_s, double tbt_slo_s) {
  SimSummary s;
  s.requests = static_cast<int64_t>(result.requests.size());
  s.prefill_compute_s = result.prefill_compute_s;
  std::vector<double> ttft, tbt;
  double input = 0, reused = 0;
  int64_t effective = 0;
  for (const RequestOutcome& o : result.requests) {
    if (o.rejected) {
      ++s.rejected;
      continue;
    }
    ttft.push_back(o.ttft_s);
    tbt.push_back(o.tbt_s);
    input += static_cast<double>(o.input_tokens);
    reused += static_cast<double>(o.reused_tokens);
    if ((ttft_slo_s <= 0 || o.ttft_s <= ttft_slo_s) && (tbt_slo_s <= 0 || o.tbt_s <= tbt_slo_s)) ++effective;
  }
  if (s.requests > 0) s.effective_request_ratio = static_cast<double>(effective) / static_cast<double>(s.requests);
  if (ttft.empty()) return s;
  for (double v : ttft) s.ttft_avg_s += v;
  s.ttft_avg_s /= static_cast<double>(ttft.size());
  std::sort(ttft.begin(), ttft.end());
  s.ttft_p50_s = Percentile(ttft, 0.5);
  s.ttft_p90_s = Percentile(ttft, 0.9);
  s.ttft_p99_s = Percentile(ttft, 0.99);
  for (double v : tbt) s.tbt_avg_s += v;
  s.tbt_avg_s /= static_cast<double>(tbt.size());
  std::sort(tbt.begin(), tbt.end());
  s.tbt_p90_s = Percentile(tbt, 0.9);
  s.cache_hit_rate = input > 0 ? reused / input : 0;
  return s;
}

}  // namespace crescent::sim
