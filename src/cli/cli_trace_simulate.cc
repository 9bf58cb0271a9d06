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
                                        const ReplayOptions& o, int64_t kv_tokens, const std::string& policy,
                                        int sim_prefill, int sim_decode) {
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
  cfg.prefill = sim_prefill;
  cfg.decode = sim_decode;
  if (kv_tokens > 0) cfg.cache_tokens_per_node = kv_tokens;
  cfg.admission = false;
  cfg.profile = profile;
  ASSIGN_OR_RETURN(sim::SimResult res, sim::Simulate(t, cfg));
  std::vector<double> predicted, measured_ttft;
  double sim_in = 0, sim_reused = 0, live_in = 0, live_cached = 0;
  for (const sim::RequestOutcome& r : res.requests) {
    if (r.rejected) continue;
    predicted.push_back(r.ttft_s);
    sim_in += static_cast<double>(r.input_tokens);
    sim_reused += static_cast<double>(r.reused_tokens);
  }
  for (const RequestRecord& r : measured) {
    if (r.outcome == Outcome::kOk && r.ttft_s >= 0) measured_ttft.push_back(r.ttft_s);
    if (r.outcome == Outcome::kOk && r.cached_tokens >= 0) {
      live_in += static_cast<double>(r.server_prompt_tokens >= 0 ? r.server_prompt_tokens : r.prompt_tokens);
      live_cached += static_cast<double>(r.cached_tokens);
    }
  }
  const double sim_hit = sim_in > 0 ? sim_reused / sim_in : 0, live_hit = live_in > 0 ? live_cached / live_in : 0;
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
              {"p90_error", err(p.p90, m.p90)},
              {"prefill_instances", sim_prefill},
              {"decode_instances", sim_decode},
              {"measured_hit_rate", live_hit},
              {"simulated_hit_rate", sim_hit}};
  out.text = fmt::format(
      "  simulator ({}, {}, {} KV tokens, chunks of {:g}, blocks of {:g})\n"
      "  TTFT (ms)       mean       p50       p90       p99\n"
      "  measured   {:9.1f} {:9.1f} {:9.1f} {:9.1f}\n"
      "  simulated  {:9.1f} {:9.1f} {:9.1f} {:9.1f}\n"
      "  error      mean {:+.1f}%, p90 {:+.1f}% (target: within 25%)\n"
      "  prefix hit rate: measured {:.1f}%, simulated {:.1f}%\n",
      policy,
      sim_decode > 0 ? fmt::format("{} prefill + {} decode instances", sim_prefill, sim_decode)
                     : std::string("1 instance"),
      kv_tokens, profile.chunk_tokens, profile.block_tokens, m.mean * 1e3, m.p50 * 1e3, m.p90 * 1e3,
      m.p99 * 1e3, p.mean * 1e3, p.p50 * 1e3, p.p90 * 1e3, p.p99 * 1e3, err(p.mean, m.mean) * 100,
      err(p.p90, m.p90) * 100, live_hit * 100, sim_hit * 100);
  return out;
}

}  // namespace crescent::cli
