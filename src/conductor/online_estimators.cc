#include "conductor/online_estimators.h"

#include <limits>

#include "conductor/least_squares.h"

namespace crescent::conductor {
namespace {

// Least squares with every coefficient >= 0 (each term is a cost: a fixed
// part, per token computed, per token pair, per token loaded): a term whose
// coefficient comes out negative is dropped and the rest refitted. Noisy
// timings on few points otherwise give slopes that extrapolate to nonsense
// (a negative intercept under a steep slope, a prediction of 0 s).
// Requires twice as many samples as terms and distinct rows for them.
Result<std::vector<double>> FitNonNegative(const std::vector<std::vector<double>>& rows, std::span<const double> y) {
  const size_t k = rows.empty() ? 0 : rows[0].size();
  std::vector<bool> use(k, false);
  // A term that is zero in every sample says nothing, and one that is the
  // same in every sample is the intercept's (the first term) twin.
  for (size_t j = 0; j < k; ++j) {
    for (const auto& r : rows) use[j] = use[j] || (r[j] != 0 && (j == 0 || r[j] != rows[0][j]));
  }
  for (size_t round = 0; round < k; ++round) {
    std::vector<size_t> cols;
    for (size_t j = 0; j < k; ++j) {
      if (use[j]) cols.push_back(j);
    }
    if (cols.empty() || rows.size() < 2 * cols.size()) return InvalidArgument("too few samples for the terms");
    std::vector<std::vector<double>> sub;
    sub.reserve(rows.size());
    for (const auto& r : rows) {
      std::vector<double> x;
      for (size_t j : cols) x.push_back(r[j]);
      sub.push_back(std::move(x));
    }
    Result<std::vector<double>> fit = FitLeastSquares(sub, y);
    if (!fit.ok()) {  // the samples do not tell the terms apart: drop the last, simplest model first
      use[cols.back()] = false;
      continue;
    }
    const std::vector<double>& w = *fit;
    size_t worst = cols.size();
    for (size_t i = 0; i < cols.size(); ++i) {
      if (w[i] < 0 && (worst == cols.size() || w[i] < w[worst])) worst = i;
    }
    if (worst == cols.size()) {
      std::vector<double> full(k, 0.0);
      for (size_t i = 0; i < cols.size(); ++i) full[cols[i]] = w[i];
      return full;
    }
    use[cols[worst]] = false;
  }
  return InvalidArgument("no non-negative fit");
}

// Eq. 1 in the tokens computed plus a load term: c0 + c1*(n - p) +
// c2*(n^2 - p^2) + c3*p, written in the estimator's basis {1, n, p, n^2,
// n*p, p^2}. Determined by the input lengths alone while every prompt is
// computed from scratch (c3 then drops out).
Result<PrefillTimeEstimator> FitPrefill(std::span<const PrefillSample> samples) {
  std::vector<std::vector<double>> rows;
  std::vector<double> y;
  for (const PrefillSample& s : samples) {
    const double n = static_cast<double>(s.input_tokens), p = static_cast<double>(s.prefix_tokens);
    rows.push_back({1.0, n - p, n * n - p * p, p});
    y.push_back(s.seconds);
  }
  ASSIGN_OR_RETURN(std::vector<double> c, FitNonNegative(rows, y));
  if (c[1] <= 0 && c[2] <= 0) return InvalidArgument("computing tokens costs nothing in this fit");
  return PrefillTimeEstimator({c[0], c[1], c[3] - c[1], c[2], 0.0, -c[2]});
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
    profile_alone_ = base_prefill_.empty() && base_decode_.empty();
  }
  // A fetch is free until loads are measured here (a profile's network is
  // not this cluster's): the policy fetches, the loads it causes are timed,
  // and the measured bandwidth takes over (a prior that never fetched would
  // never be measured).
  est_.transfer = TransferTimeEstimator{opt_.bytes_per_token, std::numeric_limits<double>::infinity(), 0.0};
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
  if (profile_alone_ && prefill_.size() < opt_.replace_profile_after) return;
  std::vector<PrefillSample> all(base_prefill_);
  all.insert(all.end(), prefill_.begin(), prefill_.end());
  Result<PrefillTimeEstimator> f = FitPrefill(all);
  if (!f.ok()) return;  // not determined yet (too few, or all alike): keep what we have
  est_.prefill = *f;
  fitted_prefill_ = true;
  prefill_new_ = 0;
  ++refits_;
}

void OnlineEstimators::RefitDecode() {
  if (profile_alone_ && decode_.size() < opt_.replace_profile_after) return;
  std::vector<DecodeSample> all(base_decode_);
  all.insert(all.end(), decode_.begin(), decode_.end());
  std::vector<std::vector<double>> rows;
  std::vector<double> y;
  for (const DecodeSample& d : all) {
    rows.push_back({1.0, static_cast<double>(d.batch_size), static_cast<double>(d.context_tokens)});
    y.push_back(d.seconds);
  }
  Result<std::vector<double>> w = FitNonNegative(rows, y);
  if (!w.ok() || ((*w)[1] <= 0 && (*w)[2] <= 0 && (*w)[0] <= 0)) return;
  Result<DecodeStepEstimator> f = DecodeStepEstimator((*w)[0], (*w)[1], (*w)[2]);
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
