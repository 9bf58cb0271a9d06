#include "conductor/estimators.h"

#include <algorithm>

#include "conductor/least_squares.h"

namespace crescent::conductor {
namespace {

std::vector<double> PrefillFeatures(double n, double p) { return {1.0, n, p, n * n, n * p, p * p}; }

}  // namespace

Result<PrefillTimeEstimator> PrefillTimeEstimator::Fit(std::span<const PrefillSample> samples) {
  std::vector<std::vector<double>> rows;
  std::vector<double> y;
  rows.reserve(samples.size());
  for (const PrefillSample& s : samples) {
    if (s.input_tokens <= 0 || s.prefix_tokens < 0 || s.prefix_tokens > s.input_tokens) {
      return InvalidArgument("prefill sample: need 0 <= prefix <= input and input > 0");
    }
    rows.push_back(PrefillFeatures(static_cast<double>(s.input_tokens), static_cast<double>(s.prefix_tokens)));
    y.push_back(s.seconds);
  }
  Result<std::vector<double>> w = FitLeastSquares(rows, y);
  if (!w.ok()) return w.status().WithContext("fitting the prefill time estimator");
  return PrefillTimeEstimator(std::move(w).value());
}

PrefillTimeEstimator::PrefillTimeEstimator(std::vector<double> coefficients) : w_(std::move(coefficients)) {
  CHECK_EQ(w_.size(), static_cast<size_t>(kTerms));
}

double PrefillTimeEstimator::Seconds(int64_t input_tokens, int64_t prefix_tokens) const {
  const std::vector<double> f = PrefillFeatures(static_cast<double>(input_tokens), static_cast<double>(prefix_tokens));
  double t = 0;
  for (int i = 0; i < kTerms; ++i) t += w_[i] * f[i];
  return std::max(t, 0.0);
}

Result<DecodeStepEstimator> DecodeStepEstimator::Fit(std::span<const DecodeSample> samples) {
  std::vector<std::vector<double>> rows;
  std::vector<double> y;
  for (const DecodeSample& s : samples) {
    rows.push_back({1.0, static_cast<double>(s.batch_size), static_cast<double>(s.context_tokens)});
    y.push_back(s.seconds);
  }
  Result<std::vector<double>> w = FitLeastSquares(rows, y);
  if (!w.ok()) return w.status().WithContext("fitting the decode step estimator");
  DecodeStepEstimator e;
  e.c0_ = (*w)[0];
  e.c_batch_ = (*w)[1];
  e.c_ctx_ = (*w)[2];
  return e;
}

double DecodeStepEstimator::StepSeconds(int64_t batch_size, int64_t context_tokens) const {
  return std::max(0.0, c0_ + c_batch_ * static_cast<double>(batch_size) +
                           c_ctx_ * static_cast<double>(context_tokens));
}

double TransferTimeEstimator::Seconds(int64_t tokens) const {
  if (tokens <= 0) return 0;
  return latency_s + static_cast<double>(tokens) * bytes_per_token / bandwidth_bytes_per_s;
}

double EstimateQueueSeconds(const PrefillLoad& load, const PrefillTimeEstimator& prefill, double now_s) {
  double t = 0;
  if (load.running) t += std::max(0.0, load.running_started_s + prefill.Seconds(load.running_work) - now_s);
  for (const PrefillWork& w : load.queued) t += prefill.Seconds(w);
  return t;
}

}  // namespace crescent::conductor
