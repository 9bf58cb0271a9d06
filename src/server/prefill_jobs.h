// PrefillJobs: a prefill instance's queue as the Conductor sees it (its
// Report RPC), and the timings of the prefills that ended (what the front's
// estimators fit).
//
// A job is added when its Prefill call arrives and ends when the call ends.
// The engine runs prompts first come, first served, so the oldest job is the
// one running, since the later of its arrival and the previous job's end.
// A timing is a prefill's engine time alone (its first step to its first
// token, as the engine measured it), never the time it queued.
// Thread-safety: all methods from any thread.
#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <vector>
#include "base/thread_annotations.h"

namespace crescent::server {

struct PrefillJobView {
  uint64_t placement_id = 0;
  int64_t input_tokens = 0, prefix_tokens = 0;
  bool running = false;
  int64_t running_us = 0;
};

struct PrefillTimingRecord {
  uint64_t index = 0;  // 1, 2, ...
  int64_t input_tokens = 0, prefix_tokens = 0;
  double seconds = 0;
};

class PrefillJobs {
  struct Job {
    PrefillJobView v;
    int64_t arrived_us = 0;
  };

 public:
  using Handle = std::list<Job>::iterator;
  explicit PrefillJobs(size_t timings_kept = 512) : kept_(timings_kept) {}
  Handle Add(uint64_t placement_id, int64_t input_tokens, int64_t expected_prefix_tokens);
  // The job ended; a finished prefill's timing is recorded (seconds < 0: none).
  void End(Handle h, int64_t prefix_tokens, double seconds);
  std::vector<PrefillJobView> Jobs() const;  // FIFO; the first one is running
  std::vector<PrefillTimingRecord> TimingsAfter(uint64_t index) const;

 private:
  const size_t kept_;
  mutable Mutex mu_;
  std::list<Job> jobs_ GUARDED_BY(mu_);  // , FIFO
  int64_t last_end_us_ GUARDED_BY(mu_) = 0;
  std::deque<PrefillTimingRecord> timings_ GUARDED_BY(mu_);
  uint64_t next_index_ GUARDED_BY(mu_) = 1;
};

}  // namespace crescent::server
