#include "conductor/online_estimators.h"

#include <set>

#include "conductor/least_squares.h"

namespace crescent::conductor {
namespace {

// Eq. 1 in the tokens computed: c0 + c1*(n - p) + c2*(n^2 - p^2), written in
// the estimator's basis {1, n, p, n^2, n*p, p^2}. Determined by the input
// lengths alone, so it fits while every prompt is computed from scratch.
Result<PrefillTimeEstimator> FitComputed(std::span<const PrefillSample> samples) {
  std::vector<std::vector<double>> rows;
  std::vector<double> y;
  for (const PrefillSample& s : samples) {
    const double n = static_cast<double>(s.input_tokens), p = static_cast<double>(s.prefix_tokens);
    rows.push_back({1.0, n - p, n * n - p * p});
    y.push_back(s.seconds);
  }
  Result<std::vector<double>> w = FitLeastSquares(rows, y);
  if (!w.ok()) return w.status();
  const std::vector<double>& c = *w;
  return PrefillTimeEstimator({c[0], c[1], -c[1], c[2], 0.0, -c[2]});
}

}  // namespace

OnlineEstimators::OnlineEstimators(OnlineEstimatorOptions options, std::optional<Estimators> profile,
                                   std::vector<PrefillSample> profile_prefill, std::vector<DecodeSample> profile_decode)
    : opt_(options), base_prefill_(std::move(profile_prefill)), base_decode_(std::move(profile_decode)) {
  // Until a fit: unit costs, so placement still compares the work queued
  // (tokens to compute, requests and context in a batch) instead of seeing
  // every instance as free. Admission ignores them (fitted_* is false).
  est_.prefill = PrefillTimeEstimator({0.0, kUnfittedSecondsPerToken, -kUnfittedSecondsPerToken, 0.0, 0.0, 0.0});
  est_.decode = DecodeStepEstimator(0.0, 1e-3, 1e-7);
  if (profile) {
    est_ = *profile;
    fitted_prefill_ = fitted_decode_ = true;
  }
  est_.transfer.bytes_per_token = opt_.bytes_per_token;
}

void OnlineEstimators::AddPrefill(const PrefillSample& s) {
  if (s.input_tokens <= 0 || s.prefix_tokens < 0 || s.prefix_tokens > s.input_tokens || s.seconds < 0) return;
  ++prefill_seen_;
  prefill_.push_back(s);
  if (prefill_.size() > opt_.window) prefill_.pop_front();
  if (++prefill_new_ >= opt_.refit_every || !fitted_prefill_) RefitPrefill();
}

void OnlineEstimators::AddDecode(const DecodeSample& s) {
  if (s.batch_size <= 0 || s.seconds < 0) return;
  ++decode_seen_;
  decode_.push_back(s);
  if (decode_.size() > opt_.window) decode_.pop_front();
  if (++decode_new_ >= opt_.refit_every || !fitted_decode_) RefitDecode();
}

void OnlineEstimators::RefitPrefill() {
  std::vector<PrefillSample> all(base_prefill_);
  all.insert(all.end(), prefill_.begin(), prefill_.end());
  // The full polynomial only once the prefixes vary enough to determine its
  // prefix terms; until then Eq. 1's computed-token form.
  std::set<int64_t> prefixes;
  for (const PrefillSample& s : all) prefixes.insert(s.prefix_tokens);
  Result<PrefillTimeEstimator> f = InvalidArgument("not tried");
  if (prefixes.size() >= 3 && all.size() >= 2 * PrefillTimeEstimator::kTerms) f = PrefillTimeEstimator::Fit(all);
  if (!f.ok()) f = FitComputed(all);
  if (!f.ok()) return;  // not determined yet (too few, or all alike): keep what we have
  est_.prefill = *f;
  fitted_prefill_ = true;
  prefill_new_ = 0;
  ++refits_;
}

void OnlineEstimators::RefitDecode() {
  std::vector<DecodeSample> all(base_decode_);
  all.insert(all.end(), decode_.begin(), decode_.end());
  Result<DecodeStepEstimator> f = DecodeStepEstimator::Fit(all);
  if (!f.ok()) {  // one batch size so far: the context term alone
    std::vector<std::vector<double>> rows;
    std::vector<double> y;
    for (const DecodeSample& s : all) {
      rows.push_back({1.0, static_cast<double>(s.context_tokens)});
      y.push_back(s.seconds);
    }
    Result<std::vector<double>> w = FitLeastSquares(rows, y);
    if (!w.ok()) return;
    f = DecodeStepEstimator((*w)[0], 0.0, (*w)[1]);
  }
  est_.decode = *f;
  fitted_decode_ = true;
  decode_new_ = 0;
  ++refits_;
}

void OnlineEstimators::SetStoreLoads(int64_t bytes, double seconds) {
  if (bytes <= 0 || seconds <= 0) return;
  est_.transfer.bandwidth_bytes_per_s = static_cast<double>(bytes) / seconds;
  measured_transfer_ = true;
}

}  // namespace crescent::conductor
