// `crescent bench trace --simulate PROFILE`: the simulator's prediction of
// the run just measured. The planned requests (their scaled arrivals,
// lengths and hash blocks) go through sim::Simulate with the measured cost
// profile (`crescent bench engine --profile-out`), one coupled instance of
// the server's KV capacity (from its /metrics: crescent_kv_pages_total x 16
// tokens; the prefix cache lives in the same pages) and chunked prefill at
// the profile's step budget; the TTFT distributions are printed side by
// side with the error of the simulator's mean and p90, and the prefix hit
// rates (measured: the server's cached_tokens; predicted: reused tokens).
// With `sim_prefill` prefill and `sim_decode` (>= 1) decode instances and a
// disaggregated policy (random, least-loaded, local-cache, global-cache) it
// simulates a cluster instead, each prefill instance's cache and each decode
// instance's KV being kv_tokens (a live cluster's /metrics names neither:
// the caller passes them).
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "cli/cli_trace_replay.h"
#include "sim/cost_model.h"

namespace crescent::cli {

struct SimulatedRun {
  boost::json::object json;  // measured and predicted TTFT, errors, settings
  std::string text;          // the side-by-side table
};

Result<SimulatedRun> SimulateLikeReplay(const std::vector<PlannedRequest>& plan,
                                        const std::vector<RequestRecord>& measured, sim::CostProfile profile,
                                        const ReplayOptions& o, int64_t kv_tokens, const std::string& policy,
                                        int sim_prefill = 1, int sim_decode = 0);

}  // namespace crescent::cli
