#include "sim/cost_model.h"

#include <gtest/gtest.h>

namespace crescent::sim {
namespace {

TEST(CostModelTest, PaperDefaults) {
  CostProfile p;
  EXPECT_DOUBLE_EQ(p.kv_bytes_per_token(), 320.0 * 1024);  // 320 KB / token
  // Eq. 1 for n = 8192, no prefix: 80 * (4*n^2*d + 22*n*d^2).
  const double n = 8192, d = 8192;
  EXPECT_DOUBLE_EQ(p.PrefillFlops(8192, 0), 80 * (4 * n * n * d + 22 * n * d * d));
  // A prefix discounts exactly flops(p) and costs its load over PCIe.
  EXPECT_NEAR(p.PrefillFlops(8192, 4096), p.PrefillFlops(8192, 0) - p.PrefillFlops(4096, 0), 1.0);
  EXPECT_NEAR(p.PrefillSeconds(8192, 4096) - p.PrefillComputeSeconds(8192, 4096), 4096 * 327680.0 / 128e9, 1e-12);
  EXPECT_GT(p.PrefillFlops(100, 100), 0);  // the last token is always computed
  // 800 Gbps NIC.
  EXPECT_NEAR(p.TransferSeconds(1000) - p.transfer_latency_s, 1000 * 327680.0 / 100e9, 1e-12);
  EXPECT_GT(p.DecodeStepSeconds(64, 64 * 10000), p.DecodeStepSeconds(1, 10000));
  EXPECT_GT(p.hbm_kv_tokens(), 1'000'000);
}

TEST(CostModelTest, ProfileOverridesAndRejectsTypos) {
  Result<CostProfile> p = ParseCostProfile(R"({"prefill_mfu": 0.4, "nic_bits_per_s": 200e9})", "prof.json");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_DOUBLE_EQ(p->prefill_mfu, 0.4);
  EXPECT_DOUBLE_EQ(p->nic_bits_per_s, 200e9);
  EXPECT_DOUBLE_EQ(p->layers, 80);
  Result<CostProfile> typo = ParseCostProfile(R"({"prefil_mfu": 0.4})", "prof.json");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("prefil_mfu"), std::string::npos);
  EXPECT_FALSE(ParseCostProfile(R"({"layers": -1})", "p").ok());
  EXPECT_FALSE(ParseCostProfile(R"({"layers": "80"})", "p").ok());
  EXPECT_FALSE(ParseCostProfile("[", "p").ok());
  EXPECT_EQ(ParseCostProfile(R"({"coupled_cache_tokens": 0})", "p")->coupled_cache_token_capacity(), 0);
  EXPECT_EQ(CostProfile().coupled_cache_token_capacity(), CostProfile().hbm_kv_tokens() / 2);
  EXPECT_FALSE(ParseCostProfile(R"({"coupled_cache_tokens": -2})", "p").ok());
}

TEST(CostModelTest, FittedEstimatorsMatchTheCostModel) {
  CostProfile p;
  Result<conductor::Estimators> e = FitEstimators(p, true);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  for (auto [n, q] : {std::pair<int64_t, int64_t>{12035, 0}, {12035, 5000}, {90000, 80000}, {700, 512}}) {
    const double want = p.PrefillSeconds(n, q);
    EXPECT_NEAR(e->prefill.Seconds(n, q), want, 1e-6 * want) << n << " " << q;
  }
  EXPECT_NEAR(e->decode.StepSeconds(40, 400000), p.DecodeStepSeconds(40, 400000), 1e-9);
  EXPECT_NEAR(e->transfer.Seconds(5000), p.TransferSeconds(5000), 1e-12);
}

}  // namespace
}  // namespace crescent::sim

namespace crescent::sim {
namespace {

TEST(CostModelTest, AMeasuredProfileReplacesTheFormulas) {
  Result<CostProfile> p = ParseCostProfile(
      R"({"prefill_fixed_s": 0.01, "prefill_token_s": 1e-4, "prefill_pair_s": 1e-8,
          "decode_fixed_s": 0.005, "decode_seq_s": 0.001, "decode_context_s": 1e-7,
          "kv_capacity_tokens": 5000, "chunk_tokens": 1024, "_measured": {"prefill": [1, 2]}})",
      "measured.json");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_NEAR(p->PrefillComputeSeconds(1000, 0), 0.01 + 0.1 + 0.01, 1e-12);
  EXPECT_NEAR(p->PrefillComputeSeconds(1000, 500), 0.01 + 0.05 + 1e-8 * 750000, 1e-12);
  EXPECT_NEAR(p->DecodeStepSeconds(4, 1000), 0.005 + 0.004 + 1e-4, 1e-12);
  EXPECT_EQ(p->hbm_kv_tokens(), 5000);
  // Only the intercept measured (a flat step): still the measured form.
  Result<CostProfile> flat = ParseCostProfile(R"({"decode_fixed_s": 0.002})", "flat.json");
  ASSERT_TRUE(flat.ok());
  EXPECT_DOUBLE_EQ(flat->DecodeStepSeconds(64, 100000), 0.002);
  EXPECT_FALSE(ParseCostProfile(R"({"decode_seq_s": -1})", "neg.json").ok());
}

}  // namespace
}  // namespace crescent::sim
