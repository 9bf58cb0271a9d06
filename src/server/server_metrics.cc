#include "server/server_metrics.h"
#include "base/thread_annotations.h"

#include <string>

namespace crescent::server {

namespace {
constexpr const char* kRequests = "crescent_http_requests_total";
constexpr const char* kRequestsHelp = "HTTP responses sent, by status";
}  // namespace

ServerMetrics::ServerMetrics() {
  for (int s : {200, 400, 401, 404, 405, 408, 413, 429, 431, 500, 503}) {
    by_status_[s] = reg_.AddCounter(kRequests, kRequestsHelp, {{"status", std::to_string(s)}});
  }
  prompt_tokens_ = reg_.AddCounter("crescent_prompt_tokens_total", "Prompt tokens of finished requests");
  generation_tokens_ = reg_.AddCounter("crescent_generation_tokens_total", "Generated tokens of finished requests");
  ttft_ = reg_.AddHistogram("crescent_time_to_first_token_seconds", "Time from submit to the first token", {},
                            ExponentialBuckets(0.001, 2, 16));
  tbt_ = reg_.AddHistogram("crescent_time_between_tokens_seconds", "Time between streamed tokens", {},
                           ExponentialBuckets(0.0005, 2, 14));
  e2e_ = reg_.AddHistogram("crescent_e2e_request_latency_seconds", "Time from HTTP request to its last token", {},
                           ExponentialBuckets(0.005, 2, 16));
  running_ = reg_.AddGauge("crescent_requests_running", "Sequences in the running batch");
  waiting_ = reg_.AddGauge("crescent_requests_waiting", "Requests waiting to be scheduled");
  pages_total_ = reg_.AddGauge("crescent_kv_pages_total", "KV cache pages");
  pages_used_ = reg_.AddGauge("crescent_kv_pages_used", "KV cache pages held by live sequences");
  pages_cached_ = reg_.AddGauge("crescent_kv_pages_cached", "Free KV pages holding a reusable prefix");
  kv_usage_ = reg_.AddGauge("crescent_kv_cache_usage_ratio", "Fraction of KV pages held by live sequences");
  hit_rate_ = reg_.AddGauge("crescent_prefix_cache_hit_rate", "Prompt tokens found in the prefix cache / looked up");
  prefix_queries_ = reg_.AddGauge("crescent_prefix_cache_queries_tokens", "Prompt tokens looked up in the prefix cache");
  prefix_hits_ = reg_.AddGauge("crescent_prefix_cache_hits_tokens", "Prompt tokens found in the prefix cache");
  preemptions_ = reg_.AddCounter("crescent_preemptions_total", "Sequences preempted (recomputed) so far");
  kv_loading_ = reg_.AddGauge("crescent_kv_offload_loading_requests", "Requests waiting for their prefix from the store");
  kv_loads_ = reg_.AddCounter("crescent_kv_offload_loads_total", "Prefix loads from the KV store started");
  kv_load_failures_ = reg_.AddCounter("crescent_kv_offload_load_failures_total", "Prefix loads that failed (recomputed)");
  kv_loaded_tokens_ = reg_.AddGauge("crescent_kv_offload_hits_tokens", "Prompt tokens loaded from the KV store");
  kv_saves_ = reg_.AddCounter("crescent_kv_offload_saves_total", "KV chunks offered to the store");
  kv_save_failures_ = reg_.AddCounter("crescent_kv_offload_save_failures_total", "KV chunk saves that failed (dropped)");
  kv_load_seconds_ = reg_.AddHistogram("crescent_kv_offload_load_seconds", "Time to load a prefix from the KV store", {},
                                       ExponentialBuckets(0.001, 2, 14));
}

void ServerMetrics::SetOffloadSource(std::function<OffloadStats()> source) {
  MutexLock lock(source_mu_);
  offload_source_ = std::move(source);
}

void ServerMetrics::SetPdSource(std::function<PdStats()> source) {
  MutexLock lock(source_mu_);
  pd_source_ = std::move(source);
}

void ServerMetrics::SetFigure(const char* name, const char* help, int64_t v, const MetricLabels& labels) {
  if (std::string_view(name).ends_with("_total")) {
    reg_.AddCounter(name, help, labels)->Mirror(static_cast<double>(v));
  } else {
    reg_.AddGauge(name, help, labels)->Set(static_cast<double>(v));
  }
}

void ServerMetrics::RenderPd() {
  PdStats p;
  {
    MutexLock lock(source_mu_);  // held while it reads: SetPdSource(nullptr) waits for it
    if (!pd_source_) return;
    p = pd_source_();
  }
  constexpr const char* kRes = "crescent_pd_reservations_ended_total";
  constexpr const char* kResHelp = "KV reservations of this decode instance, by how they ended";
  SetFigure("crescent_pd_reservations_total", "KV reservations this decode instance made", p.reserved);
  SetFigure(kRes, kResHelp, p.committed, {{"outcome", "committed"}});
  SetFigure(kRes, kResHelp, p.cancelled, {{"outcome", "cancelled"}});
  SetFigure(kRes, kResHelp, p.expired, {{"outcome", "expired"}});
  SetFigure("crescent_pd_refused_commits_total", "Commits refused (unknown id, old generation, lease ended)",
            p.refused_commits);
  SetFigure("crescent_pd_checksum_failures_total", "Commits whose pages did not match their checksums",
            p.checksum_failures);
  SetFigure("crescent_pd_quarantined_pages", "Pages of ended reservations waiting out the transfer timeout",
            p.quarantined_pages);
  SetFigure("crescent_pd_freed_after_quarantine_pages_total", "Pages freed once their quarantine passed",
            p.freed_after_quarantine);
  SetFigure("crescent_pd_prefills_total", "Prefills that pushed their KV to a decode instance", p.prefills);
  SetFigure("crescent_pd_kv_written_bytes_total", "KV bytes pushed to decode instances", p.bytes_written);
  SetFigure("crescent_pd_leases_lost_total", "Prefills fenced: the decode instance refused to extend their lease",
            p.leases_lost);
}

void ServerMetrics::RenderOffload(const engine::EngineStats* s) {
  std::function<OffloadStats()> source;
  {
    MutexLock lock(source_mu_);
    source = offload_source_;
  }
  if (!source) return;
  const OffloadStats o = source();
  auto set = [&](const char* name, const char* help, int64_t v, const MetricLabels& labels = {}) {
    SetFigure(name, help, v, labels);
  };
  set("crescent_kv_offload_lookups_total", "Prefix lookups in the KV store", o.lookups);
  set("crescent_kv_offload_lookup_failures_total", "Prefix lookups the store did not answer", o.lookup_failures);
  set("crescent_kv_offload_chunks_loaded_total", "KV chunks loaded from the store", o.chunks_loaded);
  set("crescent_kv_offload_loaded_bytes_total", "KV bytes loaded from the store", o.bytes_loaded);
  set("crescent_kv_offload_chunk_load_failures_total", "KV chunks the store could not give (missing, corrupt, away)",
      o.load_failures);
  set("crescent_kv_offload_chunks_saved_total", "KV chunks the store accepted", o.chunks_saved);
  set("crescent_kv_offload_saved_bytes_total", "KV bytes saved to the store", o.bytes_saved);
  set("crescent_kv_offload_checksum_failures_total", "Copies of KV chunks whose checksum did not match (recomputed)",
      o.checksum_failures);
  constexpr const char* kTier = "crescent_prefix_cache_tier_hits_tokens";
  constexpr const char* kTierHelp = "Prompt tokens served without recompute, by where they were found";
  // The engine's hits include what a load brought into its pool: only its own count here.
  if (s) set(kTier, kTierHelp, std::max<int64_t>(0, s->prefix_hit_tokens - s->kv_loaded_tokens), {{"tier", "engine"}});
  set(kTier, kTierHelp, o.tokens_dram, {{"tier", "dram"}});
  set(kTier, kTierHelp, o.tokens_ssd, {{"tier", "ssd"}});
  set(kTier, kTierHelp, o.tokens_remote, {{"tier", "remote"}});
  if (o.have_usage) {
    set("crescent_kv_store_used_bytes", "Bytes the KV store holds, by tier", o.dram_used, {{"tier", "dram"}});
    set("crescent_kv_store_used_bytes", "Bytes the KV store holds, by tier", o.ssd_used, {{"tier", "ssd"}});
    set("crescent_kv_store_capacity_bytes", "Bytes the KV store can hold, by tier", o.dram_capacity, {{"tier", "dram"}});
    set("crescent_kv_store_capacity_bytes", "Bytes the KV store can hold, by tier", o.ssd_capacity, {{"tier", "ssd"}});
  }
}

void ServerMetrics::OnStatus(int status) {
  if (status >= 0 && status < static_cast<int>(by_status_.size()) && by_status_[status]) {
    by_status_[status]->Increment();
  } else {
    reg_.AddCounter(kRequests, kRequestsHelp, {{"status", std::to_string(status)}})->Increment();
  }
}

void ServerMetrics::OnFinished(int64_t prompt_tokens, int64_t generation_tokens, double e2e_s) {
  prompt_tokens_->Increment(static_cast<double>(prompt_tokens));
  generation_tokens_->Increment(static_cast<double>(generation_tokens));
  e2e_->Observe(e2e_s);
}

std::string ServerMetrics::Render(const engine::EngineStats* s) {
  if (s) {
    running_->Set(static_cast<double>(s->running));
    waiting_->Set(static_cast<double>(s->waiting));
    pages_total_->Set(static_cast<double>(s->kv_pages_total));
    pages_used_->Set(static_cast<double>(s->kv_pages_used));
    pages_cached_->Set(static_cast<double>(s->kv_pages_cached));
    kv_usage_->Set(s->kv_pages_total > 0 ? static_cast<double>(s->kv_pages_used) / static_cast<double>(s->kv_pages_total)
                                         : 0.0);
    hit_rate_->Set(s->prefix_query_tokens > 0
                       ? static_cast<double>(s->prefix_hit_tokens) / static_cast<double>(s->prefix_query_tokens)
                       : 0.0);
    prefix_queries_->Set(static_cast<double>(s->prefix_query_tokens));
    prefix_hits_->Set(static_cast<double>(s->prefix_hit_tokens));
    preemptions_->Mirror(static_cast<double>(s->preemptions));
    kv_loading_->Set(static_cast<double>(s->loading));
    kv_loads_->Mirror(static_cast<double>(s->kv_loads));
    kv_load_failures_->Mirror(static_cast<double>(s->kv_load_failures));
    kv_loaded_tokens_->Set(static_cast<double>(s->kv_loaded_tokens));
    kv_saves_->Mirror(static_cast<double>(s->kv_saves));
    kv_save_failures_->Mirror(static_cast<double>(s->kv_save_failures));
  }
  RenderOffload(s);
  RenderPd();
  return reg_.Render();
}

}  // namespace crescent::server
