// ServerMetrics: the serving metrics /metrics exposes, on a MetricsRegistry.
//
//   crescent_http_requests_total{status}        responses sent, by HTTP status
//   crescent_prompt_tokens_total                prompt tokens of finished requests
//   crescent_generation_tokens_total            tokens generated
//   crescent_time_to_first_token_seconds        histogram (submit -> first token)
//   crescent_time_between_tokens_seconds        histogram (per streamed token)
//   crescent_e2e_request_latency_seconds        histogram (HTTP request -> last token)
//   crescent_requests_running / _waiting        engine gauges
//   crescent_kv_pages_total / _used / _cached, crescent_kv_cache_usage_ratio
//   crescent_prefix_cache_hit_rate, crescent_prefix_cache_{queries,hits}_tokens
//   crescent_preemptions_total
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <array>

#include "base/metrics.h"
#include "engine/engine.h"

namespace crescent::server {

class ServerMetrics {
 public:
  ServerMetrics();

  void OnStatus(int status);
  void OnFinished(int64_t prompt_tokens, int64_t generation_tokens, double e2e_s);
  void OnFirstToken(double ttft_s) { ttft_->Observe(ttft_s); }
  void OnTokenGap(double gap_s) { tbt_->Observe(gap_s); }
  // Refreshes the engine gauges, then renders everything.
  std::string Render(const engine::EngineStats* stats);

 private:
  MetricsRegistry reg_;
  std::array<Counter*, 600> by_status_{};  // pre-registered for common statuses
  Counter* prompt_tokens_;
  Counter* generation_tokens_;
  Histogram* ttft_;
  Histogram* tbt_;
  Histogram* e2e_;
  Gauge *running_, *waiting_, *pages_total_, *pages_used_, *pages_cached_, *kv_usage_, *hit_rate_;
  Gauge *prefix_queries_, *prefix_hits_, *preemptions_;
  Gauge *kv_loading_, *kv_loads_, *kv_load_failures_, *kv_loaded_tokens_, *kv_saves_, *kv_save_failures_;
};

}  // namespace crescent::server
