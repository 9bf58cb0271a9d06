#include "server/prefill_jobs.h"
#include "base/thread_annotations.h"

#include <algorithm>
#include <chrono>

namespace crescent::server {
namespace {

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

PrefillJobs::Handle PrefillJobs::Add(uint64_t placement_id, int64_t input_tokens, int64_t expected_prefix_tokens) {
  MutexLock l(mu_);
  Job j;
  j.v.placement_id = placement_id;
  j.v.input_tokens = input_tokens;
  j.v.prefix_tokens = std::clamp<int64_t>(expected_prefix_tokens, 0, input_tokens);
  j.arrived_us = NowUs();
  jobs_.push_back(j);
  return std::prev(jobs_.end());
}

void PrefillJobs::End(Handle h, int64_t prefix_tokens, double seconds) {
  MutexLock l(mu_);
  if (seconds >= 0) {
    timings_.push_back({next_index_++, h->v.input_tokens, std::clamp<int64_t>(prefix_tokens, 0, h->v.input_tokens),
                        seconds});
    if (timings_.size() > kept_) timings_.pop_front();
  }
  jobs_.erase(h);
  last_end_us_ = NowUs();
}

std::vector<PrefillJobView> PrefillJobs::Jobs() const {
  MutexLock l(mu_);
  std::vector<PrefillJobView> out;
  out.reserve(jobs_.size());
  const int64_t now = NowUs();
  for (const Job& j : jobs_) {
    out.push_back(j.v);
    if (out.size() == 1) {
      out[0].running = true;
      out[0].running_us = now - std::max(j.arrived_us, last_end_us_);
    }
  }
  return out;
}

std::vector<PrefillTimingRecord> PrefillJobs::TimingsAfter(uint64_t index) const {
  MutexLock l(mu_);
  std::vector<PrefillTimingRecord> out;
  for (const PrefillTimingRecord& t : timings_) {
    if (t.index > index) out.push_back(t);
  }
  return out;
}

}  // namespace crescent::server
