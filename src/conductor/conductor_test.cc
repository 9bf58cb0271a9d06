// Policy tests on hand-built cluster states.
#include "conductor/conductor.h"

#include <gtest/gtest.h>

#include <set>
#include <unordered_set>
#include <vector>

namespace crescent::conductor {
namespace {

struct FakePrefill {
  std::unordered_set<BlockKey, BlockKeyHasher> cache;
  bool running = false;
  PrefillWork running_work;
  double running_started_s = 0;
  std::vector<PrefillWork> queued;
};

class FakeClusterView final : public ClusterView {
 public:
  std::vector<FakePrefill> prefill;
  std::vector<DecodeLoad> decode;

  int num_prefill() const override { return static_cast<int>(prefill.size()); }
  int num_decode() const override { return static_cast<int>(decode.size()); }
  int64_t PrefixBlocks(int i, std::span<const BlockKey> keys) const override {
    int64_t n = 0;
    while (n < static_cast<int64_t>(keys.size()) && prefill[i].cache.contains(keys[n])) ++n;
    return n;
  }
  PrefillLoad GetPrefillLoad(int i) const override {
    const FakePrefill& p = prefill[i];
    return PrefillLoad{p.running, p.running_work, p.running_started_s, p.queued};
  }
  DecodeLoad GetDecodeLoad(int d) const override { return decode[d]; }
};

// 1 ms per newly computed token; decode step 10 ms + 1 ms per request in the batch.
Estimators TestEstimators() {
  Estimators e;
  e.prefill = PrefillTimeEstimator({0, 1e-3, -1e-3, 0, 0, 0});
  std::vector<DecodeSample> s = {{1, 0, 0.011}, {2, 0, 0.012}, {1, 1000, 0.011}, {5, 7, 0.015}};
  e.decode = *DecodeStepEstimator::Fit(s);
  e.transfer = TransferTimeEstimator{1000.0, 1e6, 0.0};  // 1 ms per token: slow on purpose
  return e;
}

constexpr int64_t kBlock = 512;

struct Prompt {
  std::vector<BlockKey> keys;
  Request request;
};
Prompt MakePrompt(int blocks, uint64_t first_key, int64_t output = 10) {
  Prompt p;
  for (int i = 0; i < blocks; ++i) p.keys.push_back(TraceBlockKey(first_key + static_cast<uint64_t>(i)));
  p.request = Request{blocks * kBlock, output, p.keys};
  return p;
}

FakeClusterView TwoPrefillsOneHolds(const Prompt& pr, int held_blocks) {
  FakeClusterView v;
  v.prefill.resize(2);
  for (int i = 0; i < held_blocks; ++i) v.prefill[0].cache.insert(pr.keys[i]);
  v.decode = {DecodeLoad{0, 0, 1 << 20}};
  return v;
}

PolicyOptions Options(double threshold = 1.0) {
  PolicyOptions o;
  o.block_tokens = kBlock;
  o.kvcache_balancing_threshold = threshold;
  return o;
}

TEST(LocalCacheAwareTest, PicksLongPrefixUnlessItsQueueMakesTtftWorse) {
  Prompt pr = MakePrompt(20, 100);  // 10240 tokens
  FakeClusterView v = TwoPrefillsOneHolds(pr, 16);
  Conductor c(PolicyKind::kLocalCacheAware, Options(), TestEstimators());
  Placement p = c.Place(pr.request, v, 0);
  ASSERT_TRUE(p.admitted());
  EXPECT_EQ(p.prefill.prefill, 0);
  EXPECT_EQ(p.prefill.prefix_tokens, 16 * kBlock);
  EXPECT_NEAR(p.prefill.predicted_ttft_s, 4 * kBlock * 1e-3, 1e-9);

  // Instance 0's queue: 8.3 s of work. 8.3 + 2.048 > 10.24 on the empty instance 1.
  v.prefill[0].queued = {{8300, 0}};
  p = c.Place(pr.request, v, 0);
  EXPECT_EQ(p.prefill.prefill, 1);
  EXPECT_EQ(p.prefill.prefix_tokens, 0);
  EXPECT_NEAR(p.prefill.predicted_ttft_s, 10.24, 1e-9);

  // 8.1 s of queue is less than the 8.192 s the prefix saves: instance 0 again.
  v.prefill[0].queued = {{8100, 0}};
  EXPECT_EQ(c.Place(pr.request, v, 0).prefill.prefill, 0);
}

TEST(GlobalCacheAwareTest, FetchesTheBestPrefixOntoAnIdleInstance) {
  Prompt pr = MakePrompt(20, 100);
  FakeClusterView v = TwoPrefillsOneHolds(pr, 16);
  v.prefill[0].queued = {{20000, 0}};  // 20 s busy
  Estimators est = TestEstimators();
  est.transfer = TransferTimeEstimator{327680.0, 100e9, 0.0};  // fast NIC
  Conductor c(PolicyKind::kGlobalCacheAware, Options(), est);
  Placement p = c.Place(pr.request, v, 0);
  EXPECT_EQ(p.prefill.prefill, 1);
  EXPECT_EQ(p.prefill.transfer_from, 0);
  EXPECT_EQ(p.prefill.transfer_tokens, 16 * kBlock);
  EXPECT_EQ(p.prefill.prefix_tokens, 16 * kBlock);
  EXPECT_EQ(p.prefill.local_prefix_tokens, 0);
  EXPECT_NEAR(p.prefill.predicted_ttft_s, est.transfer.Seconds(16 * kBlock) + 4 * kBlock * 1e-3, 1e-9);
}

TEST(GlobalCacheAwareTest, ThresholdGatesTheTransfer) {
  Prompt pr = MakePrompt(20, 100);
  FakeClusterView v = TwoPrefillsOneHolds(pr, 16);
  v.prefill[0].queued = {{20000, 0}};
  for (int i = 0; i < 8; ++i) v.prefill[1].cache.insert(pr.keys[i]);  // ratio 16/8 = 2
  Estimators est = TestEstimators();
  est.transfer = TransferTimeEstimator{327680.0, 100e9, 0.0};

  Placement below = Conductor(PolicyKind::kGlobalCacheAware, Options(1.5), est).Place(pr.request, v, 0);
  EXPECT_EQ(below.prefill.prefill, 1);
  EXPECT_EQ(below.prefill.transfer_from, 0);
  EXPECT_EQ(below.prefill.transfer_tokens, 8 * kBlock);

  Placement above = Conductor(PolicyKind::kGlobalCacheAware, Options(2.5), est).Place(pr.request, v, 0);
  EXPECT_EQ(above.prefill.prefill, 1);
  EXPECT_EQ(above.prefill.transfer_from, -1);
  EXPECT_EQ(above.prefill.prefix_tokens, 8 * kBlock);
}

// A store-backed view answers FindBestPrefixMatch from its own index; the
// policy fetches from the holder it names.
TEST(GlobalCacheAwareTest, UsesTheViewsGlobalIndex) {
  class IndexedView final : public ClusterView {
   public:
    int num_prefill() const override { return 3; }
    int num_decode() const override { return 1; }
    int64_t PrefixBlocks(int i, std::span<const BlockKey>) const override { return i == 2 ? 12 : 0; }
    PrefixHolder BestPrefix(std::span<const BlockKey>) const override { return {12, 2}; }
    PrefillLoad GetPrefillLoad(int i) const override {
      PrefillLoad l;
      if (i == 2) l.queued = busy_;
      return l;
    }
    DecodeLoad GetDecodeLoad(int) const override { return {0, 0, 1 << 20}; }
    std::vector<PrefillWork> busy_ = {{30000, 0}};
  } v;
  Prompt pr = MakePrompt(20, 100);
  Estimators est = TestEstimators();
  est.transfer = TransferTimeEstimator{327680.0, 100e9, 0.0};
  Placement p = Conductor(PolicyKind::kGlobalCacheAware, Options(), est).Place(pr.request, v, 0);
  EXPECT_EQ(p.prefill.prefill, 0);
  EXPECT_EQ(p.prefill.transfer_from, 2);
  EXPECT_EQ(p.prefill.prefix_tokens, 12 * kBlock);
}

TEST(GlobalCacheAwareTest, DoesNotFetchWhenRecomputingIsCheaper) {
  Prompt pr = MakePrompt(20, 100);
  FakeClusterView v = TwoPrefillsOneHolds(pr, 16);
  v.prefill[0].queued = {{20000, 0}};
  Estimators est = TestEstimators();
  est.transfer = TransferTimeEstimator{1.0, 100.0, 0.0};  // 10 ms per token: fetching loses
  Placement p = Conductor(PolicyKind::kGlobalCacheAware, Options(), est).Place(pr.request, v, 0);
  EXPECT_EQ(p.prefill.prefill, 1);
  EXPECT_EQ(p.prefill.transfer_from, -1);
  EXPECT_EQ(p.prefill.prefix_tokens, 0);
}

TEST(LeastLoadedTest, PicksShortestQueueIgnoringCache) {
  Prompt pr = MakePrompt(4, 1);
  FakeClusterView v = TwoPrefillsOneHolds(pr, 4);
  v.prefill[0].running = true;
  v.prefill[0].running_work = {1000, 0};
  v.prefill[0].running_started_s = 0;
  Placement p = Conductor(PolicyKind::kLeastLoaded, Options(), TestEstimators()).Place(pr.request, v, 0.5);
  EXPECT_EQ(p.prefill.prefill, 1);
  // Once the running job is predicted done, both are empty: lowest index, with its cache.
  p = Conductor(PolicyKind::kLeastLoaded, Options(), TestEstimators()).Place(pr.request, v, 1.5);
  EXPECT_EQ(p.prefill.prefill, 0);
  EXPECT_EQ(p.prefill.local_prefix_tokens, 4 * kBlock);
}

TEST(RandomTest, DeterministicBySeedAndCoversInstances) {
  Prompt pr = MakePrompt(2, 1);
  FakeClusterView v;
  v.prefill.resize(4);
  Conductor a(PolicyKind::kRandom, Options(), TestEstimators());
  Conductor b(PolicyKind::kRandom, Options(), TestEstimators());
  std::set<int> seen;
  for (int i = 0; i < 100; ++i) {
    const int pa = a.Place(pr.request, v, 0).prefill.prefill;
    EXPECT_EQ(pa, b.Place(pr.request, v, 0).prefill.prefill);
    seen.insert(pa);
  }
  EXPECT_EQ(seen.size(), 4u);
}

TEST(AdmissionTest, RejectsExactlyWhenPredictionExceedsSlo) {
  Prompt pr = MakePrompt(4, 1);  // 2048 tokens: 2.048 s predicted on an empty instance
  FakeClusterView v = TwoPrefillsOneHolds(pr, 0);
  PolicyOptions o = Options();
  o.admission = true;
  o.ttft_slo_s = 2.048;
  EXPECT_TRUE(Conductor(PolicyKind::kGlobalCacheAware, o, TestEstimators()).Place(pr.request, v, 0).admitted());
  o.ttft_slo_s = 2.047;
  Placement p = Conductor(PolicyKind::kGlobalCacheAware, o, TestEstimators()).Place(pr.request, v, 0);
  EXPECT_EQ(p.verdict, Verdict::kRejectedTtft);

  // TBT: the decode instance holds 4 requests: predicted step 10 ms + 5 * 1 ms.
  o.ttft_slo_s = 0;
  v.decode = {DecodeLoad{4, 4000, 1 << 20}};
  o.tbt_slo_s = 0.015 + 1e-12;
  EXPECT_TRUE(Conductor(PolicyKind::kLocalCacheAware, o, TestEstimators()).Place(pr.request, v, 0).admitted());
  o.tbt_slo_s = 0.0149;
  p = Conductor(PolicyKind::kLocalCacheAware, o, TestEstimators()).Place(pr.request, v, 0);
  EXPECT_EQ(p.verdict, Verdict::kRejectedTbt);
  EXPECT_NEAR(p.decode.predicted_tbt_s, 0.015, 1e-9);

  o.admission = false;  // same prediction, admission off: admitted
  EXPECT_TRUE(Conductor(PolicyKind::kLocalCacheAware, o, TestEstimators()).Place(pr.request, v, 0).admitted());
}

TEST(SelectDecodeTest, LowestTbtAmongInstancesWithRoom) {
  Prompt pr = MakePrompt(4, 1, 100);
  FakeClusterView v;
  v.prefill.resize(1);
  v.decode = {DecodeLoad{1, 100, 10}, DecodeLoad{3, 100, 100000}, DecodeLoad{2, 100, 100000}};
  DecodeChoice d = SelectDecode(pr.request, v, TestEstimators().decode);
  EXPECT_EQ(d.decode, 2);  // instance 0 is emptiest but has no room
  v.decode = {DecodeLoad{1, 100, 10}, DecodeLoad{3, 100, 10}};
  EXPECT_EQ(SelectDecode(pr.request, v, TestEstimators().decode).decode, 0);  // none has room
  v.decode.clear();
  EXPECT_EQ(SelectDecode(pr.request, v, TestEstimators().decode).decode, -1);
}

TEST(ParsePolicyKindTest, NamesRoundTrip) {
  for (auto k : {PolicyKind::kRandom, PolicyKind::kLeastLoaded, PolicyKind::kLocalCacheAware,
                 PolicyKind::kGlobalCacheAware}) {
    EXPECT_EQ(*ParsePolicyKind(PolicyKindName(k)), k);
  }
  EXPECT_FALSE(ParsePolicyKind("roundrobin").ok());
}

}  // namespace
}  // namespace crescent::conductor
