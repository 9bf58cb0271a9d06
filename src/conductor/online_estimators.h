// OnlineEstimators: the Conductor's estimators fitted, online, from what the
// instances measure (their prefill timings, their decode steps, their store
// loads), starting from a profile's fit when there is one.
//
//   prefill   Eq. 1 in the tokens computed plus a load term,
//             c0 + c1 (n-p) + c2 (n^2-p^2) + c3 p, every coefficient >= 0
//             (a term fitted negative is dropped: a few noisy timings must
//             not extrapolate to nonsense), refitted every `refit_every` new
//             timings once at least twice as many as its terms determine
//             it; the last `window` samples (a profile's fit is used until
//             the first live fit replaces it)
//   decode    c0 + c_batch b + c_ctx context, the same way, from
//             decode-only steps
//   transfer  bytes per token from the model, bandwidth = the store's
//             loaded bytes / load seconds so far; until then a fetch
//             predicts no cost (a profile's network is not this cluster's),
//             so the policy fetches and its loads get measured
// fitted_prefill() / fitted_decode(): whether admission can trust them.
// Before the first fit (and without a profile) the estimators are unit costs
// (kUnfittedSecondsPerToken per token computed; per request and per context
// token in a decode batch): placement compares the work queued with them,
// admission does not use them. No I/O; values in,
// estimators out. Thread-compatible (one owner; the front locks).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "conductor/estimators.h"

namespace crescent::conductor {

struct OnlineEstimatorOptions {
  size_t window = 256;
  size_t refit_every = 8;
  // A profile given without its samples is replaced only by a fit to at
  // least this many live timings (a first refit on 8 noisy points would
  // throw the profile away).
  size_t replace_profile_after = 32;
  double bytes_per_token = 0;  // KV bytes of one token, all layers
};

class OnlineEstimators {
 public:
  static constexpr double kUnfittedSecondsPerToken = 1e-4;
  // `profile`: a fit from `crescent bench engine --profile-out` (its samples
  // seed the fit), or nullopt.
  OnlineEstimators(OnlineEstimatorOptions options, std::optional<Estimators> profile,
                   std::vector<PrefillSample> profile_prefill = {}, std::vector<DecodeSample> profile_decode = {});

  void AddPrefill(const PrefillSample& s);
  void AddDecode(const DecodeSample& s);
  // Totals so far of one instance's store loads (bytes, seconds); call with
  // each report (the totals of all instances are summed by the caller).
  void SetStoreLoads(int64_t bytes, double seconds);

  const Estimators& current() const { return est_; }
  bool fitted_prefill() const { return fitted_prefill_; }
  bool fitted_decode() const { return fitted_decode_; }
  bool measured_transfer() const { return measured_transfer_; }
  int64_t prefill_samples() const { return prefill_seen_; }
  int64_t decode_samples() const { return decode_seen_; }
  int64_t refits() const { return refits_; }

 private:
  void RefitPrefill();
  void RefitDecode();
  OnlineEstimatorOptions opt_;
  Estimators est_;
  std::vector<PrefillSample> base_prefill_;
  std::vector<DecodeSample> base_decode_;
  std::deque<PrefillSample> prefill_;
  std::deque<DecodeSample> decode_;
  size_t prefill_new_ = 0, decode_new_ = 0;
  bool fitted_prefill_ = false, fitted_decode_ = false, measured_transfer_ = false;
  bool profile_alone_ = false;  // a profile without samples: see replace_profile_after
  int64_t prefill_seen_ = 0, decode_seen_ = 0, refits_ = 0;
};

}  // namespace crescent::conductor
