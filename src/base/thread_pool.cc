#include "base/thread_pool.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "base/check.h"

namespace crescent {

namespace {

// Under ThreadSanitizer the OpenMP loops run on the calling thread: libgomp
// is not instrumented, so TSan cannot see its barriers and would report every
// hand-over of a loop's output. The hot team is ours and instrumented: it
// runs as in a release build.
#if defined(__SANITIZE_THREAD__)
constexpr bool kSerialOmp = true;
#else
constexpr bool kSerialOmp = false;
#endif

inline void CpuRelax() {
#if defined(__x86_64__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Set on a hot-team worker, and on a caller while its loop runs: a loop
// started there runs serially.
thread_local bool t_in_loop = false;

// Persistent workers 1..size-1; the caller is worker 0. A job is published by
// bumping gen_ after fn_/n_ are written; every worker acknowledges
// every job through pending_, so the caller may reuse fn_/n_ once it is 0.
class HotTeam {
 public:
  // Starts no thread: the workers start with the first job, so a team made
  // and thrown away (a lost race in Team()) costs nothing.
  explicit HotTeam(int size) : size_(size) {}
  int size() const { return size_; }

  // Runs fn(i, n) for i in [0, n) with n <= size(); false (nothing run) when
  // another thread holds the team.
  bool TryRun(int n, const std::function<void(int, int)>& fn) {
    std::unique_lock<std::mutex> lock(run_mu_, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    if (!started_) {
      for (int i = 1; i < size_; ++i) std::thread([this, i] { Worker(i); }).detach();
      started_ = true;
    }
    fn_ = &fn;
    n_ = n;
    park_.store(false, std::memory_order_relaxed);
    pending_.store(size_ - 1, std::memory_order_relaxed);
    gen_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) gen_.notify_all();
    t_in_loop = true;
    try {
      fn(0, n);
    } catch (...) {
      // A bug threw in the caller's part: the workers still run theirs on
      // this frame's fn, so wait for them before the frame unwinds.
      t_in_loop = false;
      WaitForWorkers();
      throw;
    }
    t_in_loop = false;
    WaitForWorkers();
    return true;
  }

  void Park() { park_.store(true, std::memory_order_relaxed); }

 private:
  void WaitForWorkers() {
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 100000) {
        CpuRelax();
      } else {
        std::this_thread::yield();  // a worker was descheduled: let it run
      }
    }
  }

  void Worker(int index) {
    t_in_loop = true;
    // Generation 0 is the one at construction, not a load here: a thread
    // that starts after the first job was published must still run it.
    uint32_t seen = 0;
    for (;;) {
      uint32_t g = Await(seen);
      seen = g;
      if (index < n_) (*fn_)(index, n_);
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  // Returns the next generation after `seen`: spins up to kSpinMicros (or
  // until parked), then sleeps on gen_.
  uint32_t Await(uint32_t seen) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::microseconds(ThreadPool::kSpinMicros);
    for (int i = 1;; ++i) {
      uint32_t g = gen_.load(std::memory_order_acquire);
      if (g != seen) return g;
      CpuRelax();
      if (i % 64 == 0 && (park_.load(std::memory_order_relaxed) || Clock::now() > deadline)) break;
    }
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    uint32_t g;
    while ((g = gen_.load(std::memory_order_seq_cst)) == seen) gen_.wait(seen, std::memory_order_seq_cst);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
    return g;
  }

  const int size_;
  std::mutex run_mu_;  // held by the one caller whose job runs
  std::atomic<uint32_t> gen_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> park_{false};
  const std::function<void(int, int)>* fn_ = nullptr;  // written under run_mu_ before gen_ moves
  int n_ = 0;
  bool started_ = false;  // under run_mu_
};

// The process's team. A forked child has none of its parent's threads, so it
// drops the parent's team (leaked: its mutex may be held by a thread that is
// gone) and makes its own on its first loop.
std::atomic<HotTeam*> g_team{nullptr};

void ForgetTeamInChild() { g_team.store(nullptr, std::memory_order_relaxed); }

int AffinityCores() {
  cpu_set_t set;
  int cores = 1;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = CPU_COUNT(&set);
  return std::max(1, cores);
}

// One worker per core this process may use; sized once, when first made (a
// loop's hot path is a load here, no system call).
HotTeam& Team() {
  HotTeam* team = g_team.load(std::memory_order_acquire);
  if (team != nullptr) return *team;
  static const bool registered = (pthread_atfork(nullptr, nullptr, ForgetTeamInChild), true);
  (void)registered;
  auto* fresh = new HotTeam(AffinityCores());
  if (g_team.compare_exchange_strong(team, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;  // another thread made one first; it has started no thread
  return *team;
}

}  // namespace

ThreadPool& ThreadPool::Default() {
  static ThreadPool* pool = new ThreadPool();
  return *pool;
}

ThreadPool::ThreadPool() {
  num_threads_ = AffinityCores();
  omp_set_num_threads(num_threads_);
}

void ThreadPool::SetNumThreads(int n) {
  CHECK_GE(n, 1);
  num_threads_ = n;
  omp_set_num_threads(n);
}

void ThreadPool::ParkWorkers() const {
  if (num_threads_ > 1) Team().Park();
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t min_grain) const {
  if (n <= 0) return;
  min_grain = std::max<int64_t>(1, min_grain);
  const int parts = static_cast<int>(std::min<int64_t>(num_threads_, (n + min_grain - 1) / min_grain));
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  RunOnAll([&](int t, int p) {
    const int64_t begin = n * t / p, end = n * (t + 1) / p;
    if (begin < end) fn(begin, end);
  }, parts);
}

void ThreadPool::RunOnAll(const std::function<void(int, int)>& fn, int threads) const {
  const int k = threads > 0 ? std::min(threads, num_threads_) : num_threads_;
  if (k <= 1 || t_in_loop || omp_in_parallel()) {
    fn(0, 1);
    return;
  }
  HotTeam& team = Team();
  if (k <= team.size() && team.TryRun(k, fn)) return;
  if (kSerialOmp) {
    fn(0, 1);
    return;
  }
#pragma omp parallel num_threads(k)
  { fn(omp_get_thread_num(), omp_get_num_threads()); }
}

}  // namespace crescent
