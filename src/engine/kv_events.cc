#include "engine/kv_events.h"
#include "base/thread_annotations.h"

#include <chrono>
#include <random>

namespace crescent::engine {
namespace {

uint64_t DrawEpoch() {
  std::random_device rd;
  const uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  const uint64_t t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return (r ^ (t * 0x9e3779b97f4a7c15ULL)) | 1;  // never 0: 0 is "nothing known yet"
}

}  // namespace

KvEventLog::KvEventLog(size_t ring) : epoch_(DrawEpoch()), ring_(ring < 1 ? 1 : ring) {}

void KvEventLog::Record(bool stored, const Hash128& key) {
  MutexLock l(mu_);
  if (stored ? !held_.insert(key).second : held_.erase(key) == 0) return;  // no change: no event
  events_.push_back({++seq_, stored, key});
  if (events_.size() > ring_) events_.pop_front();
}

KvEventBatch KvEventLog::Since(uint64_t epoch, uint64_t after_seq, size_t max_events) const {
  MutexLock l(mu_);
  KvEventBatch b;
  b.epoch = epoch_;
  b.last_seq = seq_;
  const uint64_t oldest = events_.empty() ? seq_ + 1 : events_.front().seq;
  if (epoch != epoch_ || after_seq > seq_ || after_seq + 1 < oldest) {
    b.resync = true;
    b.held.assign(held_.begin(), held_.end());
    return b;
  }
  for (size_t i = static_cast<size_t>(after_seq + 1 - oldest); i < events_.size() && b.events.size() < max_events; ++i) {
    b.events.push_back(events_[i]);
  }
  if (!b.events.empty()) b.last_seq = b.events.back().seq;
  return b;
}

size_t KvEventLog::num_held() const {
  MutexLock l(mu_);
  return held_.size();
}

}  // namespace crescent::engine
