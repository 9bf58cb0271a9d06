// The cluster simulator's entry point: replays a trace against N prefill and M
// decode instances driven by a Conductor policy, or against N+M coupled
// (vLLM-like) instances, and reports per-request outcomes.
//
// Discrete events, virtual time in seconds, no I/O, deterministic: the same
// trace, config and seed give bit-identical results (events tie-break by
// insertion order; no unordered container is ever iterated to decide).
// Simulate() is a pure function; thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "conductor/conductor.h"
#include "sim/cost_model.h"
#include "sim/trace.h"

namespace crescent::sim {

struct SimConfig {
  // random | least-loaded | local-cache | global-cache (disaggregated, Conductor)
  // coupled | coupled-prefix | coupled-chunked (prefill+decode on prefill+decode nodes)
  std::string policy = "global-cache";
  int prefill = 16;
  int decode = 16;
  int64_t cache_tokens_per_node = 3'000'000;  // DRAM KVCache per prefill node (~1 TB)
  double ttft_slo_s = 0;  // <= 0: none
  double tbt_slo_s = 0;   // <= 0: none
  bool admission = true;  // reject on predicted SLO breach (only when an SLO is set)
  double speedup = 1;     // arrivals at timestamp / speedup
  uint64_t seed = 1;
  double kvcache_balancing_threshold = 1.0;
  CostProfile profile;
  // Called with every placement the Conductor makes, the view as it saw it
  // and the time (disaggregated policies): what a recorded run replays
  // through another view (the live cluster's) to check both place alike.
  std::function<void(const conductor::Request&, const conductor::ClusterView&, double now_s,
                     const conductor::Placement&)>
      on_place;
};

struct RequestOutcome {
  bool rejected = false;
  double arrival_s = 0;
  double ttft_s = 0;        // arrival to first token
  double tbt_s = 0;         // mean of the request's longest 10% token intervals; 0 with < 2 tokens
  double finish_s = 0;
  int prefill_instance = -1;
  int64_t input_tokens = 0;
  int64_t reused_tokens = 0;  // prefix KV reused (local or fetched)
};

struct SimResult {
  std::vector<RequestOutcome> requests;        // trace order
  std::vector<int64_t> requests_per_instance;  // prefill (or coupled) instance
  double prefill_compute_s = 0;                // GPU-node seconds spent in prefill
  int64_t cache_capacity_blocks = 0;           // per node
  int64_t max_cache_blocks = 0;                // largest any node's cache ever held
  int64_t kv_capacity_tokens = 0;              // per decode (or coupled) node, HBM
  int64_t max_kv_tokens = 0;                   // largest reservation any node ever held
  int64_t transfers = 0;                       // prefix fetches between prefill nodes
  int64_t transferred_tokens = 0;
  double end_s = 0;                            // last event
};

struct SimSummary {
  int64_t requests = 0;
  int64_t rejected = 0;
  double ttft_avg_s = 0, ttft_p50_s = 0, ttft_p90_s = 0, ttft_p99_s = 0;
  double tbt_avg_s = 0, tbt_p90_s = 0;
  double cache_hit_rate = 0;           // reused / input tokens over served requests
  double effective_request_ratio = 0;  // served within both SLOs / all requests
  double prefill_compute_s = 0;
};

Result<SimResult> Simulate(const Trace& trace, const SimConfig& config);
// The Conductor's options a disaggregated simulation runs with.
conductor::PolicyOptions ConductorOptions(const SimConfig& config);
// SLOs <= 0 count as met.
SimSummary Summarize(const SimResult& result, double ttft_slo_s, double tbt_slo_s);

}  // namespace crescent::sim
