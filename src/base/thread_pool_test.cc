#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace crescent {
namespace {

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
}

}  // namespace
}  // namespace crescent
