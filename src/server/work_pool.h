// WorkPool: a few threads for the work a request needs before the engine
// (parsing, chat-template rendering, tokenization of prompts up to the body
// limit), so a large prompt never occupies an io thread: /health and other
// connections keep being answered while it is tokenized.
// Tasks run in submission order across the threads; Stop runs what is queued,
// then joins. Thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>
#include "base/thread_annotations.h"

namespace crescent::server {

class WorkPool {
 public:
  explicit WorkPool(int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        for (;;) {
          std::function<void()> fn;
          {
            MutexLock l(mu_);
            cv_.Wait(mu_, [&]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and nothing left
            fn = std::move(queue_.front());
            queue_.pop_front();
          }
          fn();
        }
      });
    }
  }
  ~WorkPool() { Stop(); }
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // False once stopping (the task is not run).
  bool Submit(std::function<void()> fn) {
    {
      MutexLock l(mu_);
      if (stopping_) return false;
      queue_.push_back(std::move(fn));
    }
    cv_.NotifyOne();
    return true;
  }
  void Stop() {
    {
      MutexLock l(mu_);
      stopping_ = true;
    }
    cv_.NotifyAll();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace crescent::server
