#include "conductor/estimators.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "conductor/least_squares.h"

namespace crescent::conductor {
namespace {

// Eq. 1 with LLaMA3-70B's constants at 2.5 PFLOP/s, plus a prefix-load term.
double Eq1Seconds(double n, double p) {
  const double l = 80, d = 8192, a = 4, b = 22, g = 8 * 312e12;
  return l * (a * (n * n - p * p) * d + b * (n - p) * d * d) / g + p * 327680.0 / 128e9 + 0.01;
}

TEST(LeastSquaresTest, RecoversExactLine) {
  std::vector<std::vector<double>> rows;
  std::vector<double> y;
  for (int x = 0; x < 10; ++x) {
    rows.push_back({1.0, double(x), double(x) * 1e6});
    y.push_back(3 + 2 * x + 5e-7 * x * 1e6);
  }
  // Columns 2 and 3 are collinear: singular.
  EXPECT_FALSE(FitLeastSquares(rows, y).ok());
  for (auto& r : rows) r[2] = r[1] * r[1] * 1e6;
  for (int x = 0; x < 10; ++x) y[x] = 3 + 2 * x + 4e-6 * x * x * 1e6;
  Result<std::vector<double>> w = FitLeastSquares(rows, y);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_NEAR((*w)[0], 3, 1e-6);
  EXPECT_NEAR((*w)[1], 2, 1e-6);
  EXPECT_NEAR((*w)[2], 4e-6, 1e-12);
}

TEST(LeastSquaresTest, TooFewSamplesIsAnError) {
  std::vector<std::vector<double>> rows = {{1.0, 2.0}};
  std::vector<double> y = {1.0};
  Result<std::vector<double>> w = FitLeastSquares(rows, y);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
}

TEST(PrefillTimeEstimatorTest, FitsEq1OnUnseenPoints) {
  std::vector<PrefillSample> samples;
  for (int64_t n : {256, 1024, 4096, 16384, 65536, 131072})
    for (int64_t p : {int64_t{0}, n / 4, n / 2, n - 1}) samples.push_back({n, p, Eq1Seconds(n, p)});
  Result<PrefillTimeEstimator> est = PrefillTimeEstimator::Fit(samples);
  ASSERT_TRUE(est.ok()) << est.status().ToString();
  for (auto [n, p] : {std::pair{12035.0, 0.0}, {12035.0, 4500.0}, {100000.0, 99000.0}, {700.0, 512.0}}) {
    const double want = Eq1Seconds(n, p);
    EXPECT_NEAR(est->Seconds(int64_t(n), int64_t(p)), want, 1e-6 * want + 1e-9) << n << " " << p;
  }
}

TEST(PrefillTimeEstimatorTest, RejectsBadSamples) {
  std::vector<PrefillSample> samples = {{100, 200, 1.0}};
  EXPECT_FALSE(PrefillTimeEstimator::Fit(samples).ok());
}

TEST(DecodeStepEstimatorTest, FitsLinearModel) {
  std::vector<DecodeSample> s;
  for (int64_t b : {1, 8, 64})
    for (int64_t c : {1000, 100000, 1000000}) s.push_back({b, c * b, 0.009 + 1e-5 * b + 2e-8 * c * b});
  Result<DecodeStepEstimator> est = DecodeStepEstimator::Fit(s);
  ASSERT_TRUE(est.ok());
  EXPECT_NEAR(est->StepSeconds(32, 400000), 0.009 + 32e-5 + 8e-3, 1e-9);
}

TEST(TransferTimeEstimatorTest, BytesOverBandwidth) {
  TransferTimeEstimator t{327680.0, 100e9, 0.001};
  EXPECT_EQ(t.Seconds(0), 0.0);
  EXPECT_NEAR(t.Seconds(10000), 0.001 + 10000 * 327680.0 / 100e9, 1e-12);
}

TEST(QueueTimeTest, SumsQueuedPlusRemainderOfRunning) {
  PrefillTimeEstimator est({0, 1e-3, -1e-3, 0, 0, 0});  // 1 ms per new token
  std::vector<PrefillWork> queued = {{1000, 0}, {2000, 1500}};
  PrefillLoad load;
  load.running = true;
  load.running_work = {4000, 0};  // 4 s, started at t=10
  load.running_started_s = 10;
  load.queued = queued;
  EXPECT_NEAR(EstimateQueueSeconds(load, est, 11.0), 3.0 + 1.0 + 0.5, 1e-9);
  EXPECT_NEAR(EstimateQueueSeconds(load, est, 20.0), 1.5, 1e-9);  // overdue running job counts 0
}

}  // namespace
}  // namespace crescent::conductor
