// ClusterView: everything a Conductor policy may see of the cluster.
//
// Policies never touch instances (engine/, server/) directly; they read this
// interface, so the discrete-event simulator (sim/) and the real cluster run the
// same policy code. An implementation reports state; it makes no decisions.
// Spans handed out stay valid until the implementation's state next changes.
// Thread-safety: up to the implementation; policies call it from one thread.
#pragma once

#include <cstdint>
#include <span>

#include "base/hash.h"

namespace crescent::conductor {

// A prefix block key: one per `block_tokens` tokens of prompt, naming the
// whole prefix up to and including that block, and the model. In a live
// cluster these are the KV identity's chain keys (base/kv_identity.h), the
// very keys the engine and the store use; a trace's hash ids (plain
// integers) become keys through TraceBlockKey.
using BlockKey = Hash128;
using BlockKeyHasher = Hash128Hasher;
inline BlockKey TraceBlockKey(uint64_t id) { return {id, 0}; }

// One prefill job as the estimators see it.
struct PrefillWork {
  int64_t input_tokens = 0;
  int64_t prefix_tokens = 0;  // reused tokens (local cache or fetched)
};

// A prefill instance's queue: the job running now (if any) and the FIFO behind it.
struct PrefillLoad {
  bool running = false;
  PrefillWork running_work;
  double running_started_s = 0;
  std::span<const PrefillWork> queued;  // waiting, in FIFO order
};

// `PrefixHolder::prefill` (and `PrefillChoice::transfer_from`) when the
// longest prefix is in the shared KV store rather than in an instance's cache
// (a live cluster whose instances load from one store).
inline constexpr int kSharedStore = -2;

// The longest prefix held anywhere in the pool, and where.
struct PrefixHolder {
  int64_t blocks = 0;
  // A prefill instance holding `blocks` leading blocks, kSharedStore, or -1
  // when blocks == 0.
  int prefill = -1;
};

// A decode instance's continuous batch, counting requests waiting to join it.
struct DecodeLoad {
  int64_t batch_size = 0;
  int64_t context_tokens = 0;  // sum of KV tokens over those requests
  int64_t free_kv_tokens = 0;  // KV room not yet reserved
};

class ClusterView {
 public:
  virtual ~ClusterView() = default;
  virtual int num_prefill() const = 0;
  virtual int num_decode() const = 0;
  // How many leading blocks of `keys` prefill instance `prefill` holds in its
  // local cache (DRAM tier). The global pool is the union of these caches.
  virtual int64_t PrefixBlocks(int prefill, std::span<const BlockKey> keys) const = 0;
  // FindBestPrefixMatch over the global pool. The default scans PrefixBlocks of
  // every instance (ties to the lowest index); a cluster whose store keeps a
  // key -> holders index answers from it instead.
  virtual PrefixHolder BestPrefix(std::span<const BlockKey> keys) const {
    PrefixHolder best;
    for (int i = 0; i < num_prefill(); ++i) {
      const int64_t b = PrefixBlocks(i, keys);
      if (b > best.blocks) best = {b, i};
    }
    return best;
  }
  virtual PrefillLoad GetPrefillLoad(int prefill) const = 0;
  virtual DecodeLoad GetDecodeLoad(int decode) const = 0;
};

}  // namespace crescent::conductor
