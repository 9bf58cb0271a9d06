// Pieces shared by the disaggregated and coupled simulators: the event queue,
// the per-request longest-10% interval tracker, and the two engines' entry
// points. Internal to sim/; single-threaded.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "conductor/prefill_policy.h"
#include "sim/simulation.h"

namespace crescent::sim::internal {

struct Event {
  double t = 0;
  uint64_t seq = 0;  // insertion order breaks ties: determinism
  int type = 0;
  int a = 0;
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

class EventQueue {
 public:
  void Push(double t, int type, int a) { q_.push(Event{t, seq_++, type, a}); }
  bool empty() const { return q_.empty(); }
  const Event& top() const { return q_.top(); }
  Event Pop() {
    Event e = q_.top();
    q_.pop();
    return e;
  }

 private:
  uint64_t seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> q_;
};

// TBT as Mooncake defines it: the mean of a request's longest 10% token
// intervals (at least one). A min-heap of the k longest seen so far.
class TopIntervals {
 public:
  void Reset(int64_t total_intervals) {
    k_ = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(0.1 * static_cast<double>(total_intervals))));
    heap_.clear();
  }
  void Add(double v) {
    if (static_cast<int64_t>(heap_.size()) < k_) {
      heap_.push_back(static_cast<float>(v));
      std::push_heap(heap_.begin(), heap_.end(), std::greater<float>());
    } else if (v > heap_.front()) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<float>());
      heap_.back() = static_cast<float>(v);
      std::push_heap(heap_.begin(), heap_.end(), std::greater<float>());
    }
  }
  double Mean() const {
    if (heap_.empty()) return 0;
    double s = 0;
    for (float v : heap_) s += v;
    return s / static_cast<double>(heap_.size());
  }
  void Release() { std::vector<float>().swap(heap_); }

 private:
  int64_t k_ = 1;
  std::vector<float> heap_;
};

// A request in a continuous decode batch.
struct Running {
  int req = 0;
  int64_t ctx = 0;        // KV tokens it holds now
  int64_t remaining = 0;  // tokens still to generate
  double last_token_s = 0;
};

inline double ArrivalSeconds(const TraceRequest& r, double speedup) {
  return static_cast<double>(r.timestamp_ms) / 1000.0 / speedup;
}

Result<SimResult> RunDisaggregated(const Trace& trace, const SimConfig& config, conductor::PolicyKind kind);

enum class CoupledKind { kPlain, kPrefix, kChunked };
Result<SimResult> RunCoupled(const Trace& trace, const SimConfig& config, CoupledKind kind);

}  // namespace crescent::sim::internal
