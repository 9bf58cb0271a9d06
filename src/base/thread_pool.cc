#include "base/thread_pool.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>

#include "base/check.h"

namespace crescent {

ThreadPool& ThreadPool::Default() {
  static ThreadPool* pool = new ThreadPool();
  return *pool;
}

ThreadPool::ThreadPool() {
  cpu_set_t set;
  int cores = 1;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = CPU_COUNT(&set);
  num_threads_ = std::max(1, cores);
  omp_set_num_threads(num_threads_);
}

void ThreadPool::SetNumThreads(int n) {
  CHECK_GE(n, 1);
  num_threads_ = n;
  omp_set_num_threads(n);
}

namespace {
// Under ThreadSanitizer the kernels' parallel loops run on the calling thread:
// libgomp is not instrumented, so TSan cannot see its barriers and would
// report every hand-over of a loop's output; what the TSan build checks is
// crescent's own threads (step thread, io threads, callbacks, transfers).
#if defined(__SANITIZE_THREAD__)
constexpr bool kSerialLoops = true;
#else
constexpr bool kSerialLoops = false;
#endif
}  // namespace

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t min_grain) const {
  if (n <= 0) return;
  min_grain = std::max<int64_t>(1, min_grain);
  int64_t parts = std::min<int64_t>(num_threads_, (n + min_grain - 1) / min_grain);
  if (parts <= 1 || kSerialLoops || omp_in_parallel()) {
    fn(0, n);
    return;
  }
#pragma omp parallel num_threads(static_cast<int>(parts))
  {
    int64_t t = omp_get_thread_num();
    int64_t p = omp_get_num_threads();
    int64_t begin = n * t / p;
    int64_t end = n * (t + 1) / p;
    if (begin < end) fn(begin, end);
  }
}

void ThreadPool::RunOnAll(const std::function<void(int, int)>& fn, int threads) const {
  int k = threads > 0 ? std::min(threads, num_threads_) : num_threads_;
  if (k <= 1 || kSerialLoops || omp_in_parallel()) {
    fn(0, 1);
    return;
  }
#pragma omp parallel num_threads(k)
  { fn(omp_get_thread_num(), omp_get_num_threads()); }
}

}  // namespace crescent
