// KvEventLog: what an engine's prefix cache holds, as a stream of events a
// Conductor's cluster view follows (DESIGN.md "The KV path": instances
// publish KV events with their epoch and a sequence number).
//
//   stored(key)   a full page was keyed (its prefix became reusable here)
//   removed(key)  a keyed page was evicted (or the cache was cleared)
//
// Every event gets the next sequence number (1, 2, ...). The log keeps the
// last `ring` events and the set of keys held now, so a follower that missed
// some asks Since(its last seq): the events after it, or, when the ring no
// longer reaches back that far, a resync (every key held, and the seq they
// are current as of). The epoch is drawn at construction: a restarted engine
// has another, and a follower drops what it knew of the old one.
// Page keys are chain keys (base/kv_identity.h): a page key at a chunk
// boundary is that chunk's key, so followers look up chunk keys directly.
// Thread-safety: all methods from any thread (one mutex; Record is O(1)).
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_set>
#include <vector>

#include "base/hash.h"
#include "base/thread_annotations.h"

namespace crescent::engine {

struct KvEvent {
  uint64_t seq = 0;
  bool stored = true;  // false: removed
  Hash128 key;
};

struct KvEventBatch {
  uint64_t epoch = 0;
  uint64_t last_seq = 0;       // the log's newest seq when this batch was taken
  bool resync = false;         // the ring missed events the caller asked for: `held` replaces its view
  std::vector<KvEvent> events;  // after the asked seq, oldest first (empty on a resync)
  std::vector<Hash128> held;    // on a resync: every key held as of last_seq
};

class KvEventLog {
 public:
  explicit KvEventLog(size_t ring = 1 << 16);
  uint64_t epoch() const { return epoch_; }
  void Record(bool stored, const Hash128& key);
  // The events after `after_seq` of `epoch` (at most `max_events`; a caller
  // asks again from the batch's last event). Another epoch, or a seq the
  // ring no longer holds: a resync.
  KvEventBatch Since(uint64_t epoch, uint64_t after_seq, size_t max_events = 8192) const;
  size_t num_held() const;

 private:
  const uint64_t epoch_;
  const size_t ring_;
  mutable Mutex mu_;
  uint64_t seq_ GUARDED_BY(mu_) = 0;
  std::deque<KvEvent> events_ GUARDED_BY(mu_);
  std::unordered_set<Hash128, Hash128Hasher> held_ GUARDED_BY(mu_);
};

}  // namespace crescent::engine
