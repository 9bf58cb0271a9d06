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
//   crescent_kv_offload_*                       the store connector (loads, saves, failures)
//   crescent_prefix_cache_tier_hits_tokens{tier} prompt tokens served by tier:
//                                               engine (its own pool), dram, ssd, remote
//   crescent_kv_offload_load_seconds            histogram of prefix loads
//   crescent_kv_store_{used,capacity}_bytes{tier} the store's pool by tier
//   crescent_pd_*                               a prefill or decode instance: reservations made
//                                               and ended by outcome, refused commits, checksum
//                                               failures, quarantined pages; prefills that
//                                               pushed KV, bytes, leases lost (fenced writers)
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <array>
#include <functional>

#include "base/metrics.h"
#include "engine/engine.h"
#include "base/thread_annotations.h"

namespace crescent::server {

// What the KV offload path reports to /metrics (the server fills it in).
struct OffloadStats {
  int64_t lookups = 0, lookup_failures = 0;
  int64_t chunks_loaded = 0, bytes_loaded = 0, load_failures = 0;
  int64_t chunks_saved = 0, bytes_saved = 0, save_failures = 0;
  int64_t checksum_failures = 0;
  int64_t tokens_dram = 0, tokens_ssd = 0, tokens_remote = 0;
  bool have_usage = false;  // the store answered
  int64_t dram_used = 0, dram_capacity = 0, ssd_used = 0, ssd_capacity = 0;
};

// What a prefill/decode instance reports to /metrics (the server fills it in).
struct PdStats {
  int64_t reserved = 0, committed = 0, cancelled = 0, expired = 0;
  int64_t refused_commits = 0, checksum_failures = 0, quarantined_pages = 0, freed_after_quarantine = 0;
  int64_t prefills = 0, bytes_written = 0, leases_lost = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();

  // Where Render() reads the offload figures from (none: not shown).
  void SetOffloadSource(std::function<OffloadStats()> source);
  Histogram* kv_load_seconds() { return kv_load_seconds_; }
  // Where Render() reads the P/D figures from; the source is called under a
  // lock, so once SetPdSource(nullptr) returns it is no longer called.
  void SetPdSource(std::function<PdStats()> source);

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
  Gauge *prefix_queries_, *prefix_hits_;
  Counter* preemptions_;
  Gauge *kv_loading_, *kv_loaded_tokens_;
  Counter *kv_loads_, *kv_load_failures_, *kv_saves_, *kv_save_failures_;
  Histogram* kv_load_seconds_;
  void RenderOffload(const engine::EngineStats* stats);
  void RenderPd();
  // Names ending in _total are counters (they only grow); the rest gauges.
  void SetFigure(const char* name, const char* help, int64_t v, const MetricLabels& labels = {});
  Mutex source_mu_;
  std::function<OffloadStats()> offload_source_ GUARDED_BY(source_mu_);
  std::function<PdStats()> pd_source_ GUARDED_BY(source_mu_);
};

}  // namespace crescent::server
