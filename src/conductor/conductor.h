// Conductor: places one request (Algorithm 1 end to end). The prefill policy
// picks the prefill instance and what KVCache to reuse or fetch; the decode
// instance is the one with the lowest predicted TBT that has KV room; admission
// rejects (the server answers HTTP 429) when the predicted TTFT or TBT breaks its
// SLO (with hysteresis: PolicyOptions::admission_hysteresis).
//
// No I/O, time is an argument, the cluster is seen through ClusterView. One
// Conductor is driven from one thread (the policy holds RNG state).
#pragma once

#include <memory>

#include "conductor/cluster_view.h"
#include "conductor/estimators.h"
#include "conductor/prefill_policy.h"

namespace crescent::conductor {

enum class Verdict { kAdmitted, kRejectedTtft, kRejectedTbt };

struct DecodeChoice {
  int decode = -1;  // -1 when the view has no decode instances (coupled mode)
  double predicted_tbt_s = 0;
};

struct Placement {
  Verdict verdict = Verdict::kAdmitted;
  PrefillChoice prefill;
  DecodeChoice decode;
  bool admitted() const { return verdict == Verdict::kAdmitted; }
};

// SelectDecodingInstance: among instances with room for the request's KV
// (input + output tokens), the lowest predicted step time with the request
// added; when none has room, the lowest predicted step time overall (the
// request will wait there). Ties go to the lowest index.
DecodeChoice SelectDecode(const Request& request, const ClusterView& view, const DecodeStepEstimator& est);

class Conductor {
 public:
  Conductor(PolicyKind kind, const PolicyOptions& options, Estimators estimators);

  Placement Place(const Request& request, const ClusterView& view, double now_s);

  // Refits (a live cluster's online estimators); placements after use them.
  void set_estimators(Estimators e) { est_ = std::move(e); }
  // Admission checks only the SLOs whose estimator is fitted (an unfitted
  // one predicts 0 s: it would never reject); the caller says which are.
  void set_admission_fitted(bool ttft, bool tbt) { ttft_fitted_ = ttft, tbt_fitted_ = tbt; }
  // Seconds added to every TTFT prediction before admission compares it
  // with the SLO: what a live cluster measured its predictions to miss
  // (the front's own path, interference between instances); 0 in the simulator.
  void set_ttft_correction(double seconds) { ttft_correction_s_ = seconds; }
  bool rejecting_ttft() const { return rejecting_ttft_; }
  bool rejecting_tbt() const { return rejecting_tbt_; }
  const Estimators& estimators() const { return est_; }
  const PolicyOptions& options() const { return opt_; }

 private:
  PolicyOptions opt_;
  Estimators est_;
  std::unique_ptr<PrefillPolicy> policy_;
  bool ttft_fitted_ = true, tbt_fitted_ = true;
  double ttft_correction_s_ = 0;
  bool rejecting_ttft_ = false, rejecting_tbt_ = false;  // the hysteresis' state
};

}  // namespace crescent::conductor
