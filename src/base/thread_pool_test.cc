#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

namespace crescent {
namespace {

// Sums t over every index RunOnAll hands out, and checks each appears once.
void ExpectEachIndexOnce(int threads) {
  std::vector<std::atomic<int>> seen(64);
  std::atomic<int> width{-1};
  ThreadPool::Default().RunOnAll([&](int t, int nt) {
    ASSERT_LT(t, 64);
    seen[t]++;
    width = nt;
  }, threads);
  const int nt = width.load();
  ASSERT_GE(nt, 1);
  for (int t = 0; t < 64; ++t) EXPECT_EQ(seen[t].load(), t < nt ? 1 : 0) << t;
}

TEST(ThreadPoolTest, CoversRangeExactlyOnce) {
  for (int64_t n : {1, 2, 3, 17, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    ThreadPool::Default().ParallelFor(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << n << " " << i;
  }
}

TEST(ThreadPoolTest, RunOnAllGivesEachThreadAnIndex) {
  std::atomic<int> sum{0};
  int threads = 0;
  ThreadPool::Default().RunOnAll([&](int t, int nt) {
    sum += t;
    if (t == 0) threads = nt;
  });
  EXPECT_EQ(sum.load(), threads * (threads - 1) / 2);
  ExpectEachIndexOnce(0);
}

// A decode step is a hundred loops back to back: none may lose a worker's
// part or see the previous loop's function.
TEST(ThreadPoolTest, ManyLoopsBackToBack) {
  std::vector<int64_t> out(1000);
  for (int round = 0; round < 20000; ++round) {
    ThreadPool::Default().ParallelFor(static_cast<int64_t>(out.size()), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) out[i] = round + i;
    });
    if (round % 997 == 0) {
      for (int64_t i = 0; i < static_cast<int64_t>(out.size()); ++i) ASSERT_EQ(out[i], round + i);
    }
  }
  for (int64_t i = 0; i < static_cast<int64_t>(out.size()); ++i) EXPECT_EQ(out[i], 19999 + i);
}

// Workers that spun out and slept (or were parked) wake for the next loop.
TEST(ThreadPoolTest, LoopAfterWorkersSleptOrParked) {
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(ThreadPool::kSpinMicros * 4));
    ExpectEachIndexOnce(0);
    ThreadPool::Default().ParkWorkers();
    ExpectEachIndexOnce(0);
    ThreadPool::Default().ParkWorkers();
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// Two callers at once: one gets the hot team, the other an OpenMP team; both
// loops cover their ranges exactly once.
TEST(ThreadPoolTest, TwoCallersAtOnce) {
  auto work = [](int64_t salt) {
    std::vector<int64_t> out(4096);
    for (int round = 0; round < 2000; ++round) {
      ThreadPool::Default().ParallelFor(static_cast<int64_t>(out.size()), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[i] += salt;
      });
    }
    for (int64_t v : out) {
      if (v != 2000 * salt) return false;
    }
    return true;
  };
  bool a = false, b = false;
  std::thread other([&] { b = work(7); });
  a = work(3);
  other.join();
  EXPECT_TRUE(a);
  EXPECT_TRUE(b);
}

// A loop inside a loop body runs serially on that thread, whole.
TEST(ThreadPoolTest, NestedLoopRunsSerially) {
  std::vector<std::atomic<int>> hits(64 * 8);
  ThreadPool::Default().ParallelFor(8, [&](int64_t b, int64_t e) {
    for (int64_t outer = b; outer < e; ++outer) {
      const auto self = std::this_thread::get_id();
      ThreadPool::Default().ParallelFor(64, [&](int64_t ib, int64_t ie) {
        EXPECT_EQ(std::this_thread::get_id(), self);
        EXPECT_EQ(ib, 0);
        EXPECT_EQ(ie, 64);
        for (int64_t i = ib; i < ie; ++i) hits[outer * 64 + i]++;
      });
    }
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ThreadPoolTest, FewerThreadsThanCores) {
  ThreadPool& pool = ThreadPool::Default();
  const int cores = pool.num_threads();
  pool.SetNumThreads(1);
  ExpectEachIndexOnce(0);
  std::atomic<int> calls{0};
  pool.RunOnAll([&](int t, int nt) {
    EXPECT_EQ(t, 0);
    EXPECT_EQ(nt, 1);
    calls++;
  });
  EXPECT_EQ(calls.load(), 1);
  pool.SetNumThreads(cores);
  ExpectEachIndexOnce(0);
  ExpectEachIndexOnce(1);
}

// Exceptions are for bugs, but one thrown in the caller's part of a loop must
// not leave the workers running on a dead frame: the loop after it is whole.
TEST(ThreadPoolTest, AThrowInTheCallersPartLeavesThePoolWhole) {
  for (int i = 0; i < 100; ++i) {
    EXPECT_THROW(ThreadPool::Default().RunOnAll([](int t, int) {
      if (t == 0) throw std::runtime_error("bug");
    }), std::runtime_error);
    ExpectEachIndexOnce(0);
  }
}

int64_t SumOfIndices(int64_t n) {
  std::atomic<int64_t> sum{0};
  ThreadPool::Default().ParallelFor(n, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) sum += k;
  });
  return sum.load();
}

// The first loop of a process is published before its workers have started;
// they must still run it (a worker that read the generation when it started
// slept through it, and the caller waited forever). A fresh process each
// time: the threadsafe death-test style re-executes this binary.
TEST(ThreadPoolTest, FirstLoopOfAProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EXIT(std::exit(SumOfIndices(1000) == 999 * 1000 / 2 ? 0 : 1), testing::ExitedWithCode(0), "");
  }
}

// A forked child has none of its parent's threads: its loops must still run,
// on a team of its own. (ThreadSanitizer refuses to start a thread after a
// multi-threaded fork, so there this cannot run.)
TEST(ThreadPoolTest, ForkedChildRunsLoops) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "TSan cannot start threads in a forked child";
#endif
  ExpectEachIndexOnce(0);  // the parent's team exists and is warm
  for (int i = 0; i < 20; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      _exit(SumOfIndices(1000) == 999 * 1000 / 2 ? 0 : 1);
    }
    int status = 0;
    // A child that hangs for 10 s is killed and fails the test.
    for (int waited = 0; waited < 1000; ++waited) {
      if (waitpid(pid, &status, WNOHANG) == pid) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (waited == 999) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        FAIL() << "forked child's loop hung";
      }
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
}

}  // namespace
}  // namespace crescent
