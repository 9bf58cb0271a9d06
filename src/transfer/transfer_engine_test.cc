// In-process tests of the transfer engine: two engines in one process sharing
// an InProcessMetadataStore, over shared memory (and TCP on loopback).
#include "transfer/transfer_engine.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "base/hash.h"
#include "transfer/in_process_metadata_store.h"

namespace crescent::transfer {
namespace {

constexpr uint64_t kMiB = 1 << 20;

EngineOptions Options(const std::string& transports) {
  EngineOptions o;
  o.transports = transports;
  o.net_devices = "lo";
  o.timeout_ms = 5000;
  // 64 KiB slices on every transport (TCP's default is 4 MiB), so the MiB-sized
  // entries here go through slicing and several workers on TCP too.
  o.slice_bytes = 64 << 10;
  return o;
}

void FillRandom(std::vector<char>& v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  size_t i = 0;
  for (; i + 8 <= v.size(); i += 8) {
    uint64_t x = rng();
    std::memcpy(&v[i], &x, 8);
  }
  for (; i < v.size(); ++i) v[i] = static_cast<char>(rng());
}

class EnginePair : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    store_ = std::make_shared<InProcessMetadataStore>();
    auto a = TransferEngine::Create(Options(GetParam()), store_);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    auto b = TransferEngine::Create(Options(GetParam()), store_);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    a_ = std::move(a).value();
    b_ = std::move(b).value();
    local_.resize(kRegion);
    remote_.resize(kRegion);
    ASSERT_TRUE(a_->RegisterLocalMemory("a/local", local_.data(), local_.size()).ok());
    ASSERT_TRUE(b_->RegisterLocalMemory("b/remote", remote_.data(), remote_.size()).ok());
    auto seg = a_->OpenSegment("b/remote");
    ASSERT_TRUE(seg.ok()) << seg.status().ToString();
    seg_ = *seg;
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
  }

  static constexpr uint64_t kRegion = 72 * kMiB;
  std::shared_ptr<InProcessMetadataStore> store_;
  std::unique_ptr<TransferEngine> a_, b_;
  std::vector<char> local_, remote_;
  SegmentId seg_ = 0;
};

TEST(EngineOptionsTest, SliceSizeDefaultsByTransport) {
  EngineOptions o;
  o.transports = "self,sm";
  EXPECT_EQ(o.EffectiveSliceBytes(), 64u << 10);
  o.transports = "tcp";
  EXPECT_EQ(o.EffectiveSliceBytes(), 4u << 20);
  o.transports = "";  // UCX picks, TCP possibly among them
  EXPECT_EQ(o.EffectiveSliceBytes(), 4u << 20);
  o.slice_bytes = 12345;
  EXPECT_EQ(o.EffectiveSliceBytes(), 12345u);
}

TEST_P(EnginePair, WriteThenReadSizesFromOneByteTo64MiBUnaligned) {
  FillRandom(local_, 1);
  FillRandom(remote_, 2);
  const std::vector<uint64_t> sizes = {1, 7, 100, 4095, 65536, 65537, 1000003, 4 * kMiB + 3, 64 * kMiB};
  for (uint64_t size : sizes) {
    SCOPED_TRACE("size " + std::to_string(size));
    uint64_t loff = 13 + size % 1000, roff = 4099 + size % 777;
    TransferBatch w = a_->NewBatch(1);
    ASSERT_TRUE(a_->Submit(w, std::vector<TransferRequest>{{OpKind::kWrite, &local_[loff], seg_, roff, size}}).ok());
    ASSERT_TRUE(w.Wait().ok()) << w.Wait().ToString();
    EXPECT_EQ(HashBytes128(&local_[loff], size), HashBytes128(&remote_[roff], size));
    // Read a different range back into a different local place.
    uint64_t loff2 = kRegion - size - 5, roff2 = 3;
    TransferBatch r = a_->NewBatch(1);
    ASSERT_TRUE(a_->Submit(r, std::vector<TransferRequest>{{OpKind::kRead, &local_[loff2], seg_, roff2, size}}).ok());
    ASSERT_TRUE(r.Wait().ok()) << r.Wait().ToString();
    EXPECT_EQ(HashBytes128(&local_[loff2], size), HashBytes128(&remote_[roff2], size));
    EXPECT_EQ(r.status(0).state, EntryState::kDone);
    EXPECT_GE(r.latency_ns(0), 0);
  }
}

TEST_P(EnginePair, ManyEntriesPerBatchAndConcurrentBatches) {
  FillRandom(local_, 3);
  FillRandom(remote_, 4);
  // 4 threads, each with its own quarter of both regions, 3 rounds of a batch
  // of 100 entries mixing reads and writes of random sizes.
  const uint64_t quarter = kRegion / 4;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      for (int round = 0; round < 3; ++round) {
        // Writes go to the first half of the thread's quarter, reads come from
        // the second half; entries never overlap.
        std::vector<TransferRequest> reqs;
        std::vector<std::pair<uint64_t, uint64_t>> checks;  // (local off, remote off)
        const uint64_t half = quarter / 2;
        uint64_t cur[2] = {t * quarter, t * quarter + half};
        for (int i = 0; i < 100; ++i) {
          uint64_t size = 1 + rng() % (i % 10 == 0 ? 2 * kMiB : 20000);
          int w = i % 2;  // 0: write, 1: read
          if (cur[w] + size > t * quarter + (w + 1) * half) break;
          reqs.push_back({w == 0 ? OpKind::kWrite : OpKind::kRead, &local_[cur[w]], seg_, cur[w], size});
          checks.emplace_back(cur[w], cur[w]);
          cur[w] += size + 1 + rng() % 7;
        }
        TransferBatch b = a_->NewBatch(reqs.size());
        if (!a_->Submit(b, reqs).ok() || !b.Wait().ok()) {
          failures++;
          continue;
        }
        for (size_t i = 0; i < reqs.size(); ++i) {
          if (HashBytes64(&local_[checks[i].first], reqs[i].length) !=
              HashBytes64(&remote_[checks[i].second], reqs[i].length)) {
            failures++;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_P(EnginePair, BadInputIsRefusedBeforeAnythingMoves) {
  TransferBatch b = a_->NewBatch(4);
  auto submit = [&](TransferRequest r) { return a_->Submit(b, std::vector<TransferRequest>{r}); };
  Status s = submit({OpKind::kRead, local_.data(), 999, 0, 10});
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  s = submit({OpKind::kRead, local_.data(), seg_, kRegion - 5, 10});
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << s.ToString();
  s = submit({OpKind::kRead, local_.data(), seg_, kRegion + 1, 1});
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << s.ToString();
  s = submit({OpKind::kRead, local_.data(), seg_, ~uint64_t{0} - 3, 10});
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << s.ToString();
  s = submit({OpKind::kWrite, local_.data(), seg_, 0, 0});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("zero length"), std::string::npos);
  std::vector<char> unregistered(100);
  s = submit({OpKind::kWrite, unregistered.data(), seg_, 0, 100});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("registered"), std::string::npos);
  s = submit({OpKind::kWrite, &local_[kRegion - 10], seg_, 0, 11});  // runs past local end
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_EQ(a_->OpenSegment("no/such/segment").status().code(), StatusCode::kNotFound);
  // One bad entry among good ones: nothing is submitted.
  std::vector<TransferRequest> mixed = {{OpKind::kWrite, local_.data(), seg_, 0, 10},
                                        {OpKind::kWrite, local_.data(), seg_, kRegion, 10}};
  s = a_->Submit(b, mixed);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("entry 1"), std::string::npos) << s.message();
  EXPECT_EQ(b.size(), 0u);
  // Over capacity.
  std::vector<TransferRequest> five(5, {OpKind::kWrite, local_.data(), seg_, 0, 10});
  EXPECT_EQ(a_->Submit(b, five).code(), StatusCode::kResourceExhausted);
}

TEST_P(EnginePair, UnregisteredSegmentDisappears) {
  ASSERT_TRUE(b_->UnregisterLocalMemory("b/remote").ok());
  EXPECT_EQ(a_->OpenSegment("b/other").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(b_->UnregisterLocalMemory("b/remote").code(), StatusCode::kNotFound);
  ASSERT_TRUE(b_->RegisterLocalMemory("b/remote", remote_.data(), remote_.size()).ok());
}

TEST_P(EnginePair, AllocatedSegmentsWork) {
  auto mem = b_->AllocateLocalMemory("b/alloc", 3 * kMiB);
  ASSERT_TRUE(mem.ok()) << mem.status().ToString();
  auto seg = a_->OpenSegment("b/alloc");
  ASSERT_TRUE(seg.ok());
  FillRandom(local_, 9);
  TransferBatch w = a_->NewBatch(1);
  ASSERT_TRUE(a_->Submit(w, std::vector<TransferRequest>{{OpKind::kWrite, &local_[5], *seg, 1, 3 * kMiB - 1}}).ok());
  ASSERT_TRUE(w.Wait().ok()) << w.Wait().ToString();
  EXPECT_EQ(HashBytes128(&local_[5], 3 * kMiB - 1), HashBytes128(static_cast<char*>(*mem) + 1, 3 * kMiB - 1));
  EXPECT_TRUE(b_->RegisterLocalMemory("b/overlap", static_cast<char*>(*mem) + 10, 10).code() ==
              StatusCode::kInvalidArgument);
}

// A small entry queued behind a large one on the same workers is not held
// until the large one ends: workers post large entries in bursts, with a cap
// on operations in flight, and single-slice entries have endpoints of their
// own. Checked on shared memory only: over UCX 1.13's TCP the small entry still
// waits roughly half the large one inside UCX's receive progress (measured
// 30-45 ms of ~60 ms), which this engine cannot reorder, so this fixture is
// instantiated for shared memory alone.
class ShmEnginePair : public EnginePair {};
TEST_P(ShmEnginePair, SmallEntryIsNotStuckBehindALargeOne) {
  // One worker on each side: the small entry queues on the very worker that
  // is busy with the large one (and the test thread keeps the other core).
  EngineOptions o = Options(GetParam());
  o.num_workers = 1;
  auto c = TransferEngine::Create(o, store_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE((*c)->RegisterLocalMemory("c/local", local_.data(), local_.size()).ok());
  SegmentId seg = *(*c)->OpenSegment("b/remote");
  {  // endpoints made once, as in steady state
    TransferBatch warm = (*c)->NewBatch(2);
    ASSERT_TRUE((*c)->Submit(warm, std::vector<TransferRequest>{{OpKind::kRead, &local_[0], seg, 0, 4096},
                                                                {OpKind::kRead, &local_[0], seg, 0, 1 << 20}})
                    .ok());
    ASSERT_TRUE(warm.Wait().ok());
  }
  // Best of three: on a loaded 2-core host the submitting thread itself is
  // sometimes descheduled for milliseconds between its two submissions.
  int64_t best_small = INT64_MAX, big_latency = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    TransferBatch big = (*c)->NewBatch(1), small = (*c)->NewBatch(1);
    ASSERT_TRUE(
        (*c)->Submit(big, std::vector<TransferRequest>{{OpKind::kWrite, &local_[0], seg, 0, 64 * kMiB}}).ok());
    ASSERT_TRUE((*c)->Submit(small, std::vector<TransferRequest>{
                                        {OpKind::kWrite, &local_[65 * kMiB], seg, 65 * kMiB, 4096}})
                    .ok());
    ASSERT_TRUE(small.Wait().ok());
    ASSERT_TRUE(big.Wait().ok());
    if (small.latency_ns(0) < best_small) {
      best_small = small.latency_ns(0);
      big_latency = big.latency_ns(0);
    }
  }
  // Without bursts the small entry would wait for the rest of the large one.
  EXPECT_LT(best_small * 4, big_latency) << "small " << best_small << " ns, big " << big_latency << " ns";
}

// With room for one endpoint per worker, alternating between two peers closes
// the idle endpoint and makes a new one each time; every transfer still lands.
TEST_P(EnginePair, EndpointPoolIsCappedAndRebuilt) {
  EngineOptions o = Options(GetParam());
  o.num_workers = 1;
  o.max_endpoints_per_worker = 1;
  auto c = TransferEngine::Create(o, store_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::vector<char> mine(1 << 20), third(1 << 20);
  ASSERT_TRUE((*c)->RegisterLocalMemory("c/local", mine.data(), mine.size()).ok());
  auto d = TransferEngine::Create(Options(GetParam()), store_);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE((*d)->RegisterLocalMemory("d/remote", third.data(), third.size()).ok());
  SegmentId to_b = *(*c)->OpenSegment("b/remote"), to_d = *(*c)->OpenSegment("d/remote");
  FillRandom(mine, 12);
  for (int round = 0; round < 4; ++round) {
    for (SegmentId seg : {to_b, to_d}) {
      TransferBatch w = (*c)->NewBatch(1);
      ASSERT_TRUE((*c)->Submit(w, std::vector<TransferRequest>{{OpKind::kWrite, &mine[round], seg, 100, 5000}}).ok());
      Status s = w.Wait();
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }
  EXPECT_EQ(HashBytes64(&mine[3], 5000), HashBytes64(&remote_[100], 5000));
  EXPECT_EQ(HashBytes64(&mine[3], 5000), HashBytes64(&third[100], 5000));
  EXPECT_EQ((*c)->endpoints_created(), 8);
}

INSTANTIATE_TEST_SUITE_P(Transports, ShmEnginePair, ::testing::Values("self,sm"),
                         [](const auto&) { return std::string("Shm"); });
INSTANTIATE_TEST_SUITE_P(Transports, EnginePair, ::testing::Values("self,sm", "tcp"),
                         [](const auto& info) { return info.param == "tcp" ? std::string("Tcp") : std::string("Shm"); });

}  // namespace
}  // namespace crescent::transfer
