// The Conductor's estimators (Mooncake §4.1): prefill execution time, prefill
// queue time, KVCache transfer time, and decode step time (predicted TBT).
//
// Prefill time is a quadratic polynomial in (input length n, reused prefix p),
// fitted by least squares to measured samples: the simulator fits it on its
// cost model, the real cluster on profiling runs. Eq. 1's FLOPs
// l*(a*(n^2-p^2)*d + b*(n-p)*d^2) plus a prefix-load term linear in p lie in
// its span {1, n, p, n^2, n*p, p^2}. Decode step time is linear in
// (batch size, total context tokens). Estimators are immutable values; all
// methods are const and thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "conductor/cluster_view.h"

namespace crescent::conductor {

struct PrefillSample {
  int64_t input_tokens = 0;
  int64_t prefix_tokens = 0;
  double seconds = 0;
};

class PrefillTimeEstimator {
 public:
  static constexpr int kTerms = 6;
  // REQUIRES nothing; fails with InvalidArgument when the samples cannot
  // determine the polynomial (fewer than kTerms, or all on one line).
  static Result<PrefillTimeEstimator> Fit(std::span<const PrefillSample> samples);
  PrefillTimeEstimator() = default;  // estimates 0 s: a placeholder until fitted
  explicit PrefillTimeEstimator(std::vector<double> coefficients);

  // Predicted seconds to prefill `input_tokens` reusing `prefix_tokens`; >= 0.
  double Seconds(int64_t input_tokens, int64_t prefix_tokens) const;
  double Seconds(const PrefillWork& w) const { return Seconds(w.input_tokens, w.prefix_tokens); }
  const std::vector<double>& coefficients() const { return w_; }

 private:
  std::vector<double> w_ = std::vector<double>(kTerms, 0.0);
};

struct DecodeSample {
  int64_t batch_size = 0;
  int64_t context_tokens = 0;
  double seconds = 0;
};

// One decode step (one token for every request in the batch).
class DecodeStepEstimator {
 public:
  static Result<DecodeStepEstimator> Fit(std::span<const DecodeSample> samples);
  DecodeStepEstimator() = default;
  DecodeStepEstimator(double c0, double per_request, double per_context_token)
      : c0_(c0), c_batch_(per_request), c_ctx_(per_context_token) {}
  double StepSeconds(int64_t batch_size, int64_t context_tokens) const;

 private:
  double c0_ = 0, c_batch_ = 0, c_ctx_ = 0;
};

// Moving KVCache between instances: latency + tokens * bytes_per_token / bandwidth.
struct TransferTimeEstimator {
  double bytes_per_token = 0;
  double bandwidth_bytes_per_s = 1;
  double latency_s = 0;
  double Seconds(int64_t tokens) const;
};

// Queue time (Algorithm 1, EstimatePrefillQueueTime): what is left of the running
// job by its estimate, plus the estimates of every queued job.
double EstimateQueueSeconds(const PrefillLoad& load, const PrefillTimeEstimator& prefill, double now_s);

struct Estimators {
  PrefillTimeEstimator prefill;
  DecodeStepEstimator decode;
  TransferTimeEstimator transfer;
};

}  // namespace crescent::conductor
