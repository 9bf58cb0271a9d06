// OutputQueue: a blocking adaptor over Engine callbacks for callers that want to
// wait (the CLI, tests, benchmarks). Callback() makes a callback that appends to
// the queue; Next() blocks until an output is there; WaitFinished() collects a
// request's outputs until its final one.
// Thread-safe: the engine thread pushes, any thread pops.
#pragma once

#include <deque>
#include <vector>

#include "engine/engine.h"
#include "base/thread_annotations.h"

namespace crescent::engine {

class OutputQueue {
 public:
  OutputCallback Callback() {
    return [this](RequestOutput o) {
      MutexLock lock(mu_);
      queue_.push_back(std::move(o));
      cv_.NotifyAll();
    };
  }

  RequestOutput Next() {
    MutexLock lock(mu_);
    cv_.Wait(mu_, [&]() REQUIRES(mu_) { return !queue_.empty(); });
    RequestOutput o = std::move(queue_.front());
    queue_.pop_front();
    return o;
  }

  // Outputs of every request until `count` of them finished, grouped by id.
  std::vector<std::vector<RequestOutput>> WaitFinished(size_t count) {
    std::vector<std::vector<RequestOutput>> out;
    std::vector<uint64_t> ids;
    size_t done = 0;
    while (done < count) {
      RequestOutput o = Next();
      size_t i = 0;
      while (i < ids.size() && ids[i] != o.request_id) ++i;
      if (i == ids.size()) {
        ids.push_back(o.request_id);
        out.emplace_back();
      }
      if (o.finished) ++done;
      out[i].push_back(std::move(o));
    }
    return out;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::deque<RequestOutput> queue_;
};

// Concatenation of a request's outputs.
struct Completion {
  uint64_t id = 0;
  std::vector<int32_t> tokens;
  std::vector<SampledToken> samples;
  std::vector<SampledToken> prompt_samples;
  std::string text;
  FinishReason finish_reason = FinishReason::kNone;
  Usage usage;
  Status error;
};

inline Completion Collect(const std::vector<RequestOutput>& outputs) {
  Completion c;
  for (const RequestOutput& o : outputs) {
    c.id = o.request_id;
    c.tokens.insert(c.tokens.end(), o.tokens.begin(), o.tokens.end());
    c.samples.insert(c.samples.end(), o.samples.begin(), o.samples.end());
    c.prompt_samples.insert(c.prompt_samples.end(), o.prompt_samples.begin(), o.prompt_samples.end());
    c.text += o.text;
    c.usage = o.usage;
    if (o.finished) {
      c.finish_reason = o.finish_reason;
      c.error = o.error;
    }
  }
  return c;
}

}  // namespace crescent::engine
