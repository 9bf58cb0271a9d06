// ThreadPool: data-parallel loops over the machine's cores.
//
// Two sets of threads, one for each kind of work, never both busy at once:
//   - Our kernels' loops (ParallelFor, RunOnAll) run on a hot team: one
//     persistent worker per core beside the caller, which spins for up to
//     kSpinMicros after a loop before it sleeps on a futex. A decode step is
//     a hundred short loops with a few microseconds of serial work between
//     them; a team that sleeps in those gaps pays a futex wake per loop
//     (libgomp sleeps after ~100 spins once a second thread has its own
//     OpenMP team, as the loader's does: that was 5% of decode).
//   - oneDNN (Debian's build) runs on the OpenMP team. Linear calls
//     ParkWorkers() before a multi-threaded oneDNN primitive so the hot team
//     stops spinning and leaves the cores to it. (Quantized prefill instead
//     runs single-threaded oneDNN primitives on the hot team, one per chunk
//     of columns: kernels/linear.cc.)
// Thread-safety: ParallelFor/RunOnAll may be called from any thread; one
// caller at a time gets the hot team, a second caller meanwhile gets an
// OpenMP team of its own (and shares the cores). Not reentrant from inside a
// loop body (the inner loop then runs serially on the calling thread).
// A child made by fork() gets a team of its own on its first loop.
#pragma once

#include <cstdint>
#include <functional>

namespace crescent {

class ThreadPool {
 public:
  // The process-wide pool, sized to the cores this process may use.
  static ThreadPool& Default();

  // How long a hot-team worker spins for the next loop before it sleeps.
  static constexpr int64_t kSpinMicros = 300;

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

  // Asks the hot team's spinning workers to sleep now (before work that runs
  // on other threads, such as a oneDNN primitive). Cheap; any later loop
  // wakes them.
  void ParkWorkers() const;

 private:
  ThreadPool();
  int num_threads_;
};

}  // namespace crescent
