#include "conductor/live_cluster_view.h"

#include <gtest/gtest.h>

#include "conductor/conductor.h"
#include "conductor/online_estimators.h"

namespace crescent::conductor {
namespace {

BlockKey K(uint64_t i) { return {i, 9}; }

InstanceReport Resync(uint64_t epoch, uint64_t seq, std::vector<BlockKey> held) {
  InstanceReport r;
  r.epoch = epoch;
  r.last_seq = seq;
  r.resync = true;
  r.held = std::move(held);
  return r;
}

TEST(LiveClusterViewTest, EventsAfterTheCursorApplyAndANewEpochDropsTheOldCache) {
  LiveClusterView v({256, 2.0});
  const int p = v.AddInstance(true, "p");
  v.AddInstance(false, "d");
  v.Apply(p, Resync(5, 2, {K(1), K(2)}), 0);
  InstanceReport e;
  e.epoch = 5;
  e.last_seq = 4;
  e.events = {{3, true, K(3)}, {4, false, K(2)}};
  v.Apply(p, e, 0.1);
  EXPECT_EQ(v.Cursor(p), std::make_pair(uint64_t{5}, uint64_t{4}));
  v.Freeze(0.1);
  const std::vector<BlockKey> keys{K(1), K(2), K(3)};
  EXPECT_EQ(v.PrefixBlocks(0, keys), 1);  // K(2) was removed: the prefix stops there
  // A batch that does not continue the cursor is not applied; the next ask is a resync.
  InstanceReport gap;
  gap.epoch = 5;
  gap.last_seq = 9;
  gap.events = {{9, true, K(2)}};
  v.Apply(p, gap, 0.2);
  EXPECT_EQ(v.Cursor(p).first, 0u);
  // The process restarted: another epoch, an empty cache.
  v.Apply(p, Resync(6, 0, {}), 0.3);
  v.Freeze(0.3);
  EXPECT_EQ(v.PrefixBlocks(0, keys), 0);
  EXPECT_EQ(v.held_keys(p), 0u);
}

TEST(LiveClusterViewTest, PlacementsCountAtOnceAndStaleInstancesAreSaturated) {
  LiveClusterView v({256, 2.0});
  const int a = v.AddInstance(true, "a"), b = v.AddInstance(true, "b");
  const int d = v.AddInstance(false, "d");
  for (int s : {a, b}) v.Apply(s, Resync(1, 0, {}), 0);
  InstanceReport dr;
  dr.epoch = 1;
  dr.decode = {2, 300, 1000};
  v.Apply(d, dr, 0);
  v.PlacePrefill(a, 11, {1000, 0}, 0.01);  // before any report lists it
  v.PlaceDecode(d, 11, 1000, 1100);
  v.Freeze(0.02);
  ASSERT_EQ(v.num_prefill(), 2);
  EXPECT_EQ(v.GetPrefillLoad(0).queued.size(), 1u);
  EXPECT_EQ(v.GetPrefillLoad(1).queued.size(), 0u);
  EXPECT_EQ(v.GetDecodeLoad(0).batch_size, 3);
  EXPECT_EQ(v.GetDecodeLoad(0).free_kv_tokens, -100);
  // The instance's report lists it running: counted once, as running.
  InstanceReport r;
  r.epoch = 1;
  r.jobs = {{11, {1000, 0}, true, 0.5}};
  v.Apply(a, r, 1.0);
  v.Freeze(1.0);
  EXPECT_TRUE(v.GetPrefillLoad(0).running);
  EXPECT_DOUBLE_EQ(v.GetPrefillLoad(0).running_started_s, 0.5);
  EXPECT_TRUE(v.GetPrefillLoad(0).queued.empty());
  v.EndPrefill(a, 11);  // ended: gone before the next report
  v.Freeze(1.0);
  EXPECT_FALSE(v.GetPrefillLoad(0).running);
  // A decode placement counts until the first report after it started.
  v.DecodeStarted(d, 11);
  v.Freeze(1.0);
  EXPECT_EQ(v.GetDecodeLoad(0).batch_size, 3);
  dr.decode = {3, 1300, -100};
  v.Apply(d, dr, 1.1);
  v.Freeze(1.1);
  EXPECT_EQ(v.GetDecodeLoad(0).batch_size, 3);
  // b has not reported for longer than stale_s: not a candidate while a is.
  v.Apply(a, r, 3.0);
  v.Apply(d, dr, 3.0);
  v.Freeze(3.0);
  ASSERT_EQ(v.num_prefill(), 1);
  EXPECT_EQ(v.prefill_slot(0), a);
  v.SetResponsive(a, false);  // and a stopped answering: b, stale, is the least bad
  v.Freeze(3.0);
  ASSERT_EQ(v.num_prefill(), 1);
  EXPECT_EQ(v.prefill_slot(0), b);
}

TEST(LiveClusterViewTest, TheStoresPrefixIsTheGlobalBestWhenLonger) {
  LiveClusterView v({256, 2.0});
  const int p = v.AddInstance(true, "p");
  v.Apply(p, Resync(1, 1, {K(1)}), 0);
  v.Freeze(0);
  const std::vector<BlockKey> keys{K(1), K(2), K(3)};
  v.set_store_blocks(3);
  EXPECT_EQ(v.BestPrefix(keys).blocks, 3);
  EXPECT_EQ(v.BestPrefix(keys).prefill, kSharedStore);
  v.set_store_blocks(0);  // the instance's cache is not a place to fetch from: only the store is
  EXPECT_EQ(v.BestPrefix(keys).blocks, 0);
  LiveClusterView sim_like({256, 2.0, /*fetch_from_instances=*/true});
  const int q = sim_like.AddInstance(true, "q");
  sim_like.Apply(q, Resync(1, 1, {K(1)}), 0);
  sim_like.Freeze(0);
  EXPECT_EQ(sim_like.BestPrefix(keys).prefill, 0);
}

TEST(OnlineEstimatorsTest, UnfittedUntilTheTimingsDetermineAFitThenRefitted) {
  OnlineEstimatorOptions o;
  o.refit_every = 4;
  OnlineEstimators e(o, std::nullopt);
  EXPECT_FALSE(e.fitted_prefill());
  // Before a fit: unit costs, so more work still predicts more time.
  EXPECT_GT(e.current().prefill.Seconds(2000, 0), e.current().prefill.Seconds(1000, 0));
  e.AddPrefill({1000, 0, 0.2});
  e.AddPrefill({1000, 0, 0.2});
  EXPECT_FALSE(e.fitted_prefill());  // one length: not determined
  // t = 1e-4 * n + 1e-7 * n^2 (no prefix reuse seen yet: Eq. 1's computed-token form).
  for (int64_t n : {500, 2000, 4000, 8000, 6000, 3000}) {
    e.AddPrefill({n, 0, 1e-4 * static_cast<double>(n) + 1e-7 * static_cast<double>(n * n)});
  }
  ASSERT_TRUE(e.fitted_prefill());
  EXPECT_GE(e.refits(), 1);
  EXPECT_NEAR(e.current().prefill.Seconds(3000, 0), 1e-4 * 3000 + 1e-7 * 9e6, 0.05);
  // A reused prefix costs less than computing it.
  EXPECT_LT(e.current().prefill.Seconds(3000, 2000), e.current().prefill.Seconds(3000, 0));
  e.AddDecode({1, 100, 0.01});
  e.AddDecode({1, 200, 0.011});
  e.AddDecode({1, 300, 0.012});
  EXPECT_FALSE(e.fitted_decode());
  e.AddDecode({1, 400, 0.013});
  ASSERT_TRUE(e.fitted_decode());  // one batch size: the intercept and the context term
  EXPECT_NEAR(e.current().decode.StepSeconds(1, 1000), 0.019, 1e-6);
  // Noise that would fit a negative slope keeps the terms non-negative.
  OnlineEstimators noisy(o, std::nullopt);
  for (int i = 0; i < 8; ++i) noisy.AddDecode({1 + i % 3, 3000 - 100 * i, 0.002 + 0.0001 * i});
  ASSERT_TRUE(noisy.fitted_decode());
  EXPECT_GE(noisy.current().decode.StepSeconds(4, 30000), noisy.current().decode.StepSeconds(1, 100));
  e.SetStoreLoads(1 << 30, 0.5);
  EXPECT_TRUE(e.measured_transfer());
  EXPECT_DOUBLE_EQ(e.current().transfer.bandwidth_bytes_per_s, 2.0 * (1 << 30));
}

TEST(OnlineEstimatorsTest, AProfileWithoutSamplesOutlastsAFewNoisyTimings) {
  OnlineEstimatorOptions o;
  o.refit_every = 4;
  o.replace_profile_after = 16;
  Estimators prof;
  prof.prefill = PrefillTimeEstimator({0.0, 1e-4, 0.0, 0.0, 0.0, 0.0});
  prof.decode = DecodeStepEstimator(0.01, 0.0, 0.0);
  OnlineEstimators e(o, prof);
  ASSERT_TRUE(e.fitted_prefill());
  // Eight timings ten times slower than the profile: not yet enough to replace it.
  for (int64_t n : {500, 1000, 2000, 4000, 500, 1000, 2000, 4000}) e.AddPrefill({n, 0, 1e-3 * static_cast<double>(n)});
  EXPECT_EQ(e.refits(), 0);
  EXPECT_NEAR(e.current().prefill.Seconds(1000, 0), 0.1, 1e-9);
  for (int64_t n : {500, 1000, 2000, 4000, 500, 1000, 2000, 4000}) e.AddPrefill({n, 0, 1e-3 * static_cast<double>(n)});
  EXPECT_GE(e.refits(), 1);  // sixteen: the live fit takes over
  EXPECT_NEAR(e.current().prefill.Seconds(1000, 0), 1.0, 0.05);
}

// A fixed view: one idle prefill instance, one decode instance.
class OneOfEach final : public ClusterView {
 public:
  int num_prefill() const override { return 1; }
  int num_decode() const override { return 1; }
  int64_t PrefixBlocks(int, std::span<const BlockKey>) const override { return 0; }
  PrefillLoad GetPrefillLoad(int) const override { return {}; }
  DecodeLoad GetDecodeLoad(int) const override { return {0, 0, 1 << 20}; }
};

TEST(AdmissionTest, RefusalHasHysteresisAndIsOffWhileUnfitted) {
  PolicyOptions o;
  o.admission = true;
  o.ttft_slo_s = 1.0;
  o.admission_hysteresis = 0.2;
  Estimators est;
  est.prefill = PrefillTimeEstimator({0, 1e-3, -1e-3, 0, 0, 0});  // 1 ms per token computed
  Conductor c(PolicyKind::kGlobalCacheAware, o, est);
  OneOfEach v;
  auto verdict = [&](int64_t tokens) { return c.Place({tokens, 4, {}}, v, 0).verdict; };
  EXPECT_EQ(verdict(900), Verdict::kAdmitted);
  EXPECT_EQ(verdict(1100), Verdict::kRejectedTtft);
  EXPECT_EQ(verdict(900), Verdict::kRejectedTtft);  // above the low mark (0.8 s): still refused
  EXPECT_EQ(verdict(700), Verdict::kAdmitted);      // below it: admitting again
  EXPECT_EQ(verdict(900), Verdict::kAdmitted);
  c.set_admission_fitted(false, false);  // an estimator not fitted never refuses
  EXPECT_EQ(verdict(5000), Verdict::kAdmitted);
}

TEST(AdmissionTest, ARequestOfOneTokenIsNotJudgedOnTbt) {
  PolicyOptions o;
  o.admission = true;
  o.tbt_slo_s = 1e-6;  // every decode breaks it
  Estimators est;
  est.prefill = PrefillTimeEstimator({0, 1e-3, -1e-3, 0, 0, 0});
  est.decode = DecodeStepEstimator(0.01, 0.0, 0.0);
  Conductor c(PolicyKind::kGlobalCacheAware, o, est);
  OneOfEach v;
  EXPECT_EQ(c.Place({100, 4, {}}, v, 0).verdict, Verdict::kRejectedTbt);
  const Placement one = c.Place({100, 1, {}}, v, 0);  // answered by the prefill instance alone
  EXPECT_EQ(one.verdict, Verdict::kAdmitted);
  EXPECT_EQ(one.decode.decode, -1);
}

}  // namespace
}  // namespace crescent::conductor
