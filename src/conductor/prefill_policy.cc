#include "conductor/prefill_policy.h"

#include <limits>
#include <string>

namespace crescent::conductor {
namespace {

// Predicted TTFT on instance i reusing only its own cache.
PrefillChoice LocalOption(int i, const Request& r, const ClusterView& view, const Estimators& est,
                          const PolicyOptions& opt, double now_s) {
  PrefillChoice c;
  c.prefill = i;
  c.local_prefix_tokens = PrefixTokens(view.PrefixBlocks(i, r.block_keys), opt.block_tokens, r.input_tokens);
  c.prefix_tokens = c.local_prefix_tokens;
  c.predicted_ttft_s = EstimateQueueSeconds(view.GetPrefillLoad(i), est.prefill, now_s) +
                       est.prefill.Seconds(r.input_tokens, c.prefix_tokens);
  return c;
}

class RandomPolicy final : public PrefillPolicy {
 public:
  explicit RandomPolicy(const PolicyOptions& o) : opt_(o), state_(o.seed) {}
  PrefillChoice Choose(const Request& r, const ClusterView& view, const Estimators& est, double now_s) override {
    CHECK_GE(view.num_prefill(), 1);
    const int i = static_cast<int>(Next() % static_cast<uint64_t>(view.num_prefill()));
    return LocalOption(i, r, view, est, opt_, now_s);
  }

 private:
  uint64_t Next() {  // splitmix64: the same stream on every platform
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  PolicyOptions opt_;
  uint64_t state_;
};

// Load balancing: the shortest predicted queue; ties to the lowest index.
class LeastLoadedPolicy final : public PrefillPolicy {
 public:
  explicit LeastLoadedPolicy(const PolicyOptions& o) : opt_(o) {}
  PrefillChoice Choose(const Request& r, const ClusterView& view, const Estimators& est, double now_s) override {
    CHECK_GE(view.num_prefill(), 1);
    int best = 0;
    double best_q = std::numeric_limits<double>::infinity();
    for (int i = 0; i < view.num_prefill(); ++i) {
      const double q = EstimateQueueSeconds(view.GetPrefillLoad(i), est.prefill, now_s);
      if (q < best_q) best_q = q, best = i;
    }
    return LocalOption(best, r, view, est, opt_, now_s);
  }

 private:
  PolicyOptions opt_;
};

// §4.1: minimum of queue + prefill(len, local prefix) over instances.
class LocalCacheAwarePolicy final : public PrefillPolicy {
 public:
  explicit LocalCacheAwarePolicy(const PolicyOptions& o) : opt_(o) {}
  PrefillChoice Choose(const Request& r, const ClusterView& view, const Estimators& est, double now_s) override {
    CHECK_GE(view.num_prefill(), 1);
    PrefillChoice best;
    best.predicted_ttft_s = std::numeric_limits<double>::infinity();
    for (int i = 0; i < view.num_prefill(); ++i) {
      PrefillChoice c = LocalOption(i, r, view, est, opt_, now_s);
      if (c.predicted_ttft_s < best.predicted_ttft_s) best = c;
    }
    return best;
  }

 private:
  PolicyOptions opt_;
};

// Algorithm 1. For each instance: when the best prefix anywhere is longer than
// the local one by more than the balancing threshold, consider fetching it
// (T_transfer + T_queue + T_prefill(len, best_len)); keep the better of fetching
// and recomputing. Fetching a hot prefix onto a less loaded instance is what
// replicates hot chunks (§4.2).
class GlobalCacheAwarePolicy final : public PrefillPolicy {
 public:
  explicit GlobalCacheAwarePolicy(const PolicyOptions& o) : opt_(o) {}
  PrefillChoice Choose(const Request& r, const ClusterView& view, const Estimators& est, double now_s) override {
    const int n = view.num_prefill();
    CHECK_GE(n, 1);
    const PrefixHolder holder = view.BestPrefix(r.block_keys);  // FindBestPrefixMatch
    CHECK(holder.blocks == 0 || holder.prefill == kSharedStore || (holder.prefill >= 0 && holder.prefill < n));
    const int64_t best_len = PrefixTokens(holder.blocks, opt_.block_tokens, r.input_tokens);
    PrefillChoice best;
    best.predicted_ttft_s = std::numeric_limits<double>::infinity();
    for (int i = 0; i < n; ++i) {
      PrefillChoice c;
      c.prefill = i;
      c.local_prefix_tokens = PrefixTokens(view.PrefixBlocks(i, r.block_keys), opt_.block_tokens, r.input_tokens);
      c.prefix_tokens = c.local_prefix_tokens;
      const double queue = EstimateQueueSeconds(view.GetPrefillLoad(i), est.prefill, now_s);
      c.predicted_ttft_s = queue + est.prefill.Seconds(r.input_tokens, c.local_prefix_tokens);
      const bool above_threshold =
          best_len > c.local_prefix_tokens &&
          (c.local_prefix_tokens == 0 ||
           static_cast<double>(best_len) / static_cast<double>(c.local_prefix_tokens) >
               opt_.kvcache_balancing_threshold);
      if (above_threshold) {
        const int64_t transfer = best_len - c.local_prefix_tokens;
        const double fetch = est.transfer.Seconds(transfer) + queue + est.prefill.Seconds(r.input_tokens, best_len);
        if (fetch < c.predicted_ttft_s) {
          c.prefix_tokens = best_len;
          c.transfer_from = holder.prefill;
          c.transfer_tokens = transfer;
          c.predicted_ttft_s = fetch;
        }
      }
      if (c.predicted_ttft_s < best.predicted_ttft_s) best = c;
    }
    return best;
  }

 private:
  PolicyOptions opt_;
};

}  // namespace

Result<PolicyKind> ParsePolicyKind(std::string_view name) {
  if (name == "random") return PolicyKind::kRandom;
  if (name == "least-loaded") return PolicyKind::kLeastLoaded;
  if (name == "local-cache") return PolicyKind::kLocalCacheAware;
  if (name == "global-cache") return PolicyKind::kGlobalCacheAware;
  return InvalidArgument("unknown policy '" + std::string(name) +
                         "' (expected random, least-loaded, local-cache or global-cache)");
}

std::string_view PolicyKindName(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::kRandom: return "random";
    case PolicyKind::kLeastLoaded: return "least-loaded";
    case PolicyKind::kLocalCacheAware: return "local-cache";
    case PolicyKind::kGlobalCacheAware: return "global-cache";
  }
  return "unknown";
}

std::unique_ptr<PrefillPolicy> MakePrefillPolicy(PolicyKind kind, const PolicyOptions& options) {
  switch (kind) {
    case PolicyKind::kRandom: return std::make_unique<RandomPolicy>(options);
    case PolicyKind::kLeastLoaded: return std::make_unique<LeastLoadedPolicy>(options);
    case PolicyKind::kLocalCacheAware: return std::make_unique<LocalCacheAwarePolicy>(options);
    case PolicyKind::kGlobalCacheAware: return std::make_unique<GlobalCacheAwarePolicy>(options);
  }
  CHECK(false) << "unhandled policy kind";
  return nullptr;
}

}  // namespace crescent::conductor
