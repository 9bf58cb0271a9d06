// Conductor: places one request (Algorithm 1 end to end). The prefill policy
// picks the prefill instance and what KVCache to reuse or fetch; the decode
// instance is the one with the lowest predicted TBT that has KV room; admission
// rejects (the server answers HTTP 429) when the predicted TTFT or TBT breaks its
// SLO.
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

  const Estimators& estimators() const { return est_; }
  const PolicyOptions& options() const { return opt_; }

 private:
  PolicyOptions opt_;
  Estimators est_;
  std::unique_ptr<PrefillPolicy> policy_;
};

}  // namespace crescent::conductor
