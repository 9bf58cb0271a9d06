#include "conductor/conductor.h"

#include <limits>

namespace crescent::conductor {

DecodeChoice SelectDecode(const Request& request, const ClusterView& view, const DecodeStepEstimator& est) {
  DecodeChoice best_fit, best_any;
  best_fit.predicted_tbt_s = best_any.predicted_tbt_s = std::numeric_limits<double>::infinity();
  const int64_t need = request.input_tokens + request.output_tokens;
  for (int d = 0; d < view.num_decode(); ++d) {
    const DecodeLoad load = view.GetDecodeLoad(d);
    const double tbt = est.StepSeconds(load.batch_size + 1, load.context_tokens + request.input_tokens);
    if (tbt < best_any.predicted_tbt_s) best_any = {d, tbt};
    if (load.free_kv_tokens >= need && tbt < best_fit.predicted_tbt_s) best_fit = {d, tbt};
  }
  if (best_fit.decode >= 0) return best_fit;
  if (best_any.decode >= 0) return best_any;
  return DecodeChoice{};
}

Conductor::Conductor(PolicyKind kind, const PolicyOptions& options, Estimators estimators)
    : opt_(options), est_(std::move(estimators)), policy_(MakePrefillPolicy(kind, options)) {}

Placement Conductor::Place(const Request& request, const ClusterView& view, double now_s) {
  Placement p;
  p.prefill = policy_->Choose(request, view, est_, now_s);
  // A request of at most one token is answered by its prefill instance alone:
  // no decode instance, and no TBT to judge.
  if (request.output_tokens > 1) p.decode = SelectDecode(request, view, est_.decode);
  if (!opt_.admission) return p;
  // Over the SLO, or (while rejecting) over its lower mark.
  auto breaks = [&](double predicted, double slo, bool& rejecting) {
    if (slo <= 0) return false;
    const double limit = rejecting ? slo * (1.0 - opt_.admission_hysteresis) : slo;
    rejecting = predicted > limit;
    return rejecting;
  };
  if (ttft_fitted_ && breaks(p.prefill.predicted_ttft_s + ttft_correction_s_, opt_.ttft_slo_s, rejecting_ttft_)) {
    p.verdict = Verdict::kRejectedTtft;
  } else if (tbt_fitted_ && p.decode.decode >= 0 && breaks(p.decode.predicted_tbt_s, opt_.tbt_slo_s, rejecting_tbt_)) {
    p.verdict = Verdict::kRejectedTbt;
  }
  return p;
}

}  // namespace crescent::conductor
