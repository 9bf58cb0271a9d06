#include "sim/hit_rate.h"

#include <limits>

#include "conductor/prefill_policy.h"
#include "sim/block_lru.h"

namespace crescent::sim {

double LruHitRate(const Trace& trace, int64_t capacity_tokens, int64_t block_tokens) {
  BlockLru lru(capacity_tokens < 0 ? std::numeric_limits<int64_t>::max() : capacity_tokens / block_tokens);
  double hit = 0, total = 0;
  for (const TraceRequest& r : trace.requests) {
    const auto keys = trace.Keys(r);
    hit += static_cast<double>(conductor::PrefixTokens(lru.MatchPrefix(keys), block_tokens, r.input_tokens));
    total += static_cast<double>(r.input_tokens);
    lru.InsertChain(keys);
  }
  return total > 0 ? hit / total : 0;
}

double MaxHitRate(const Trace& trace, int64_t block_tokens) { return LruHitRate(trace, -1, block_tokens); }

}  // namespace crescent::sim
