// ThreadPool: data-parallel loops over the machine's cores.
//
// It is a thin layer over the OpenMP runtime on purpose: oneDNN (Debian's build)
// runs its kernels on the OpenMP team, and our own kernels must share that one
// team, or two sets of spinning threads would fight over the same cores.
// Thread-safety: ParallelFor may be called from any thread; calls from two threads
// at once each get their own team (and share the cores). Not reentrant from
// inside a ParallelFor body (the inner loop then runs serially).
#pragma once

#include <cstdint>
#include <functional>

namespace crescent {

class ThreadPool {
 public:
  // The process-wide pool, sized to the cores this process may use.
  static ThreadPool& Default();

  int num_threads() const { return num_threads_; }
  // REQUIRES: n >= 1. Also sets the OpenMP team size used by oneDNN.
  void SetNumThreads(int n);

  // Splits [0, n) into at most num_threads() contiguous ranges of at least
  // `min_grain` items and runs fn(begin, end) on each; returns when all are done.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                   int64_t min_grain = 1) const;

  // Runs fn(thread_index, num_threads) once on each of `threads` threads
  // (0 = all); for kernels that partition work themselves.
  void RunOnAll(const std::function<void(int, int)>& fn, int threads = 0) const;

 private:
  ThreadPool();
  int num_threads_;
};

}  // namespace crescent
