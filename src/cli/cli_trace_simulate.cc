#include "cli/cli_trace_simulate.h"

#include <cmath>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "cli/cli_trace_report.h"
#include "sim/simulation.h"

namespace crescent::cli {
namespace json = boost::json;

Result<SimulatedRun> SimulateLikeReplay(const std::vector<PlannedRequest>& plan,
                                        const std::vector<RequestRecord>& measured, sim::CostProfile profile,
                                        const ReplayOptions& o, int64_t kv_tokens, const std::string& policy) {
  // The planned requests as a trace: the same arrivals, lengths and blocks.
  sim::Trace t;
  for (const PlannedRequest& p : plan) {
    sim::TraceRequest r;
    r.timestamp_ms = std::llround(p.at_s * 1000);
    r.input_tokens = p.prompt_tokens;
    r.output_tokens = p.max_tokens;
    r.keys_begin = static_cast<uint32_t>(t.keys.size());
    r.keys_count = static_cast<uint32_t>(p.keys.size());
    t.keys.insert(t.keys.end(), p.keys.begin(), p.keys.end());
    t.requests.push_back(r);
  }
  profile.block_tokens = std::max<double>(1, std::llround(static_cast<double>(o.block_tokens) * o.length_scale));
  if (kv_tokens > 0) {
    profile.kv_capacity_tokens = static_cast<double>(kv_tokens);
    profile.coupled_cache_tokens = static_cast<double>(kv_tokens);
  }
  sim::SimConfig cfg;
  cfg.policy = policy;
  cfg.prefill = 1;
  cfg.decode = 0;
  cfg.admission = false;
  cfg.profile = profile;
  ASSIGN_OR_RETURN(sim::SimResult res, sim::Simulate(t, cfg));
  std::vector<double> predicted, measured_ttft;
  for (const sim::RequestOutcome& r : res.requests) {
    if (!r.rejected) predicted.push_back(r.ttft_s);
  }
  for (const RequestRecord& r : measured) {
    if (r.outcome == Outcome::kOk && r.ttft_s >= 0) measured_ttft.push_back(r.ttft_s);
  }
  const Dist m = Distribution(measured_ttft), p = Distribution(predicted);
  auto err = [](double pred, double meas) { return meas > 0 ? (pred - meas) / meas : 0.0; };
  SimulatedRun out;
  out.json = {{"policy", policy},
              {"kv_capacity_tokens", kv_tokens},
              {"block_tokens", profile.block_tokens},
              {"chunk_tokens", profile.chunk_tokens},
              {"measured_ttft_s", DistJson(m)},
              {"simulated_ttft_s", DistJson(p)},
              {"mean_error", err(p.mean, m.mean)},
              {"p90_error", err(p.p90, m.p90)}};
  out.text = fmt::format(
      "  simulator ({}, 1 instance, {} KV tokens, chunks of {:g}, blocks of {:g})\n"
      "  TTFT (ms)       mean       p50       p90       p99\n"
      "  measured   {:9.1f} {:9.1f} {:9.1f} {:9.1f}\n"
      "  simulated  {:9.1f} {:9.1f} {:9.1f} {:9.1f}\n"
      "  error      mean {:+.1f}%, p90 {:+.1f}% (target: within 25%)\n",
      policy, kv_tokens, profile.chunk_tokens, profile.block_tokens, m.mean * 1e3, m.p50 * 1e3, m.p90 * 1e3,
      m.p99 * 1e3, p.mean * 1e3, p.p50 * 1e3, p.p90 * 1e3, p.p99 * 1e3, err(p.mean, m.mean) * 100,
      err(p.p90, m.p90) * 100);
  return out;
}

}  // namespace crescent::cli
