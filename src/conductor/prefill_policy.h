// Prefill placement policies (Mooncake §4): Random, LeastLoaded (load
// balancing), LocalCacheAware (§4.1) and GlobalCacheAware (Algorithm 1 with
// kvcache_balancing_threshold, §4.2), behind one interface.
//
// A policy reads the cluster only through ClusterView and predicts with the
// Estimators it is handed; it does no I/O and takes the time as an argument.
// Policies hold only their own RNG state: one instance per Conductor, called
// from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "base/status.h"
#include "conductor/cluster_view.h"
#include "conductor/estimators.h"

namespace crescent::conductor {

enum class PolicyKind { kRandom, kLeastLoaded, kLocalCacheAware, kGlobalCacheAware };

// "random", "least-loaded", "local-cache", "global-cache".
Result<PolicyKind> ParsePolicyKind(std::string_view name);
std::string_view PolicyKindName(PolicyKind kind);

struct Request {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  std::span<const BlockKey> block_keys;  // one per block_tokens of prompt
};

struct PolicyOptions {
  int64_t block_tokens = 512;
  // Algorithm 1: fetch the best remote prefix onto an instance when
  // best_len / instance.prefix_len exceeds this (and the fetch predicts a lower
  // TTFT than recomputing). Larger values move less KVCache.
  double kvcache_balancing_threshold = 1.0;
  bool admission = false;   // reject when a prediction breaks an SLO
  double ttft_slo_s = 0;    // <= 0: no SLO
  double tbt_slo_s = 0;     // <= 0: no SLO
  // Hysteresis: after a rejection for an SLO, requests are refused while
  // their prediction exceeds (1 - this) of it, until one is admitted below
  // that; so rejection does not flap at the boundary. 0: none.
  double admission_hysteresis = 0;
  uint64_t seed = 1;        // Random's stream
};

struct PrefillChoice {
  int prefill = -1;
  int64_t local_prefix_tokens = 0;  // the chosen instance's own cached prefix
  int64_t prefix_tokens = 0;        // reused in all: local + fetched
  int transfer_from = -1;           // instance to fetch the prefix from, kSharedStore, or -1
  int64_t transfer_tokens = 0;      // prefix_tokens - local_prefix_tokens when fetching
  double predicted_ttft_s = 0;      // transfer + queue + prefill
};

class PrefillPolicy {
 public:
  virtual ~PrefillPolicy() = default;
  // REQUIRES: view.num_prefill() >= 1.
  virtual PrefillChoice Choose(const Request& request, const ClusterView& view, const Estimators& est,
                               double now_s) = 0;
};

std::unique_ptr<PrefillPolicy> MakePrefillPolicy(PolicyKind kind, const PolicyOptions& options);

// Tokens covered by `blocks` leading blocks of a prompt of `input_tokens`; the
// last block of a prompt may be partial:
//
//   prompt  |  block 0  |  block 1  |  block 2  |blk 3|     input = 3*512 + 100
//   held    |  block 0  |  block 1  |                    -> 2 blocks = 1024 tokens
//   held    |  block 0  |  block 1  |  block 2  |blk 3|  -> 4 blocks = input (1636)
inline int64_t PrefixTokens(int64_t blocks, int64_t block_tokens, int64_t input_tokens) {
  return blocks * block_tokens < input_tokens ? blocks * block_tokens : input_tokens;
}

}  // namespace crescent::conductor
