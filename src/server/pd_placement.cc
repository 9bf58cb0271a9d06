#include "server/pd_placement.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "base/logging.h"
#include "engine/kv_cache.h"
#include "base/thread_annotations.h"

namespace crescent::server {
namespace {

double NowS() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

Hash128 KeyOf(const std::string& b) {
  Hash128 h;
  if (b.size() == sizeof(h)) std::memcpy(&h, b.data(), sizeof(h));
  return h;
}

conductor::LiveViewOptions ViewOptions(const PdPlacementOptions& o) {
  conductor::LiveViewOptions v;
  v.stale_s = o.stale_s;
  return v;
}

conductor::OnlineEstimatorOptions EstimatorOptions(const PdPlacementOptions& o) {
  conductor::OnlineEstimatorOptions e;
  e.bytes_per_token = o.kv_bytes_per_token;
  return e;
}

}  // namespace

PdPlacement::PdPlacement(PdPlacementOptions options)
    : options_(std::move(options)),
      view_(ViewOptions(options_)),
      estimators_(EstimatorOptions(options_), options_.profile),
      conductor_(options_.policy, options_.policy_options, estimators_.current()) {
  MutexLock l(mu_);
  UpdateAdmission();
}

void PdPlacement::SetGeometry(const Hash128& fingerprint, int64_t page_tokens, int64_t chunk_tokens) {
  MutexLock l(mu_);
  fingerprint_ = fingerprint;
  page_tokens_ = std::max<int64_t>(page_tokens, 1);
  chunk_tokens_ = chunk_tokens;
  // The view's block: view_block_tokens rounded to whole pages (the events'
  // keys), dividing a store chunk so the store's prefix is whole blocks.
  block_tokens_ = std::max<int64_t>(1, options_.view_block_tokens / page_tokens_) * page_tokens_;
  while (chunk_tokens_ > 0 && block_tokens_ > page_tokens_ && chunk_tokens_ % block_tokens_ != 0) {
    block_tokens_ -= page_tokens_;
  }
  conductor::PolicyOptions po = options_.policy_options;
  po.block_tokens = block_tokens_;
  conductor_ = conductor::Conductor(options_.policy, po, estimators_.current());
  UpdateAdmission();
}

int PdPlacement::AddInstance(bool prefill, const std::string& name) {
  MutexLock l(mu_);
  const int slot = view_.AddInstance(prefill, name);
  names_[slot] = name;
  return slot;
}

void PdPlacement::RemoveInstance(int slot) {
  MutexLock l(mu_);
  view_.RemoveInstance(slot);
  samples_after_.erase(slot);
  decode_step_.erase(slot);
  epoch_.erase(slot);
  store_loads_.erase(slot);
  names_.erase(slot);  // a restarted instance is a new slot: no metric series per restart
  placed_on_.erase(slot);
}

void PdPlacement::SetResponsive(int slot, bool responsive) {
  MutexLock l(mu_);
  view_.SetResponsive(slot, responsive);
}

proto::ReportRequest PdPlacement::ReportRequestFor(int slot) const {
  MutexLock l(mu_);
  proto::ReportRequest r;
  const auto [epoch, seq] = view_.Cursor(slot);
  r.set_epoch(epoch);
  r.set_after_seq(seq);
  auto it = samples_after_.find(slot);
  r.set_samples_after(it == samples_after_.end() ? 0 : it->second);
  return r;
}

void PdPlacement::OnReport(int slot, const proto::ReportReply& rep) {
  conductor::InstanceReport r;
  r.epoch = rep.epoch();
  r.last_seq = rep.last_seq();
  r.resync = rep.resync();
  r.events.reserve(rep.events_size());
  for (const proto::KvEventProto& e : rep.events()) r.events.push_back({e.seq(), e.stored(), KeyOf(e.key())});
  r.held.reserve(rep.held_size());
  for (const std::string& k : rep.held()) r.held.push_back(KeyOf(k));
  for (const proto::PrefillJob& j : rep.jobs()) {
    r.jobs.push_back({j.placement_id(), {j.input_tokens(), j.prefix_tokens()}, j.running(),
                      static_cast<double>(j.running_us()) * 1e-6});
  }
  r.decode = {rep.batch_size(), rep.context_tokens(), rep.free_kv_tokens()};
  const double now = NowS();
  MutexLock l(mu_);
  if (!view_.known(slot)) return;  // left meanwhile
  view_.Apply(slot, r, now);
  if (uint64_t& e = epoch_[slot]; e != r.epoch) {  // a restarted process counts its timings from 1 again
    e = r.epoch;
    samples_after_[slot] = 0;
    decode_step_[slot] = 0;
  }
  bool refit = false;
  uint64_t& after = samples_after_[slot];
  for (const proto::PrefillTiming& t : rep.prefill_timings()) {
    if (t.index() <= after) continue;
    after = t.index();
    estimators_.AddPrefill({t.input_tokens(), t.prefix_tokens(), t.seconds()});
    refit = true;
  }
  int64_t& step = decode_step_[slot];
  if (rep.decode_step() > step && rep.decode_batch() > 0) {
    step = rep.decode_step();
    estimators_.AddDecode({rep.decode_batch(), rep.decode_context_tokens(), rep.decode_seconds()});
    refit = true;
  }
  if (rep.store_bytes_loaded() > 0) {
    store_loads_[slot] = {rep.store_bytes_loaded(), rep.store_load_seconds()};
    int64_t bytes = 0;
    double seconds = 0;
    for (const auto& [s, v] : store_loads_) bytes += v.first, seconds += v.second;
    estimators_.SetStoreLoads(bytes, seconds);
    refit = true;
  }
  if (refit) {
    conductor_.set_estimators(estimators_.current());
    UpdateAdmission();
  }
}

void PdPlacement::UpdateAdmission() {
  const conductor::PolicyOptions& po = options_.policy_options;
  const bool ttft = po.admission && po.ttft_slo_s > 0 && estimators_.fitted_prefill();
  const bool tbt = po.admission && po.tbt_slo_s > 0 && estimators_.fitted_decode();
  conductor_.set_admission_fitted(ttft, tbt);
  const bool wanted = po.admission && (po.ttft_slo_s > 0 || po.tbt_slo_s > 0);
  if (!wanted) return;
  if (!logged_admission_ && !ttft && !tbt && stats_.prefill_samples == 0) {
    LOG_WARNING("conductor: admission is off until its estimators are fitted (no profile given: it learns from the "
                "instances' first prefill timings and decode steps)");
    logged_admission_ = true;
  }
  if (ttft != stats_.ttft_admission || tbt != stats_.tbt_admission) {
    LOG_INFO("conductor: admission on TTFT {}, on TBT {} ({} prefill timings, {} decode steps fitted)",
             ttft ? "on" : "off", tbt ? "on" : "off", estimators_.prefill_samples(), estimators_.decode_samples());
  }
  stats_.ttft_admission = ttft;
  stats_.tbt_admission = tbt;
  stats_.prefill_samples = estimators_.prefill_samples();
}

std::vector<conductor::BlockKey> PdPlacement::BlockKeys(std::span<const Hash128> pages, int64_t per_block) {
  std::vector<conductor::BlockKey> keys;
  for (int64_t b = 1; b * per_block <= static_cast<int64_t>(pages.size()); ++b) keys.push_back(pages[b * per_block - 1]);
  return keys;
}

// The store master's key index: how many leading blocks the pool holds. A
// master that does not answer is skipped for a while (the request is placed
// on the instances' caches alone).
int64_t PdPlacement::StoreBlocks(std::span<const conductor::BlockKey> keys) {
  if (!options_.store || keys.empty()) return 0;
  const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  if (now < store_skip_until_ns_.load()) return 0;
  proto::ExistsRequest req;
  Hash128 fp;
  {
    MutexLock l(mu_);
    fp = fingerprint_;
    ++stats_.store_queries;
  }
  req.mutable_header()->set_fingerprint_hi(fp.hi);
  req.mutable_header()->set_fingerprint_lo(fp.lo);
  for (const conductor::BlockKey& k : keys) {
    proto::Key* pk = req.add_keys();
    pk->set_hi(k.hi);
    pk->set_lo(k.lo);
  }
  proto::ExistsReply rep;
  if (Status s = options_.store->Exists(req, &rep); !s.ok()) {
    LOG_WARNING("conductor: the store master does not answer ({}); placing on the instances' caches for 5 s",
                s.ToString());
    store_skip_until_ns_ = now + std::chrono::nanoseconds(std::chrono::seconds(5)).count();
    MutexLock l(mu_);
    ++stats_.store_failures;
    return 0;
  }
  int64_t n = 0;
  while (n < rep.exists_size() && rep.exists(n)) ++n;
  return n;
}

Result<PlacementTicket> PdPlacement::Place(std::span<const int32_t> prompt, int64_t max_tokens) {
  Hash128 fingerprint;
  int64_t page_tokens, block_tokens, chunk_tokens;
  {
    MutexLock l(mu_);
    fingerprint = fingerprint_, page_tokens = page_tokens_, block_tokens = block_tokens_, chunk_tokens = chunk_tokens_;
  }
  // The prompt's page keys once, outside the lock; the view's blocks and the store's chunks are among them.
  std::vector<Hash128> pages;
  engine::ExtendPageKeys(prompt, page_tokens, fingerprint, pages);
  const std::vector<conductor::BlockKey> keys = BlockKeys(pages, block_tokens / page_tokens);
  std::vector<conductor::BlockKey> chunks;
  int64_t blocks_per_chunk = 1;
  if (chunk_tokens > 0) {
    chunks = BlockKeys(pages, std::max<int64_t>(1, chunk_tokens / page_tokens));
    blocks_per_chunk = std::max<int64_t>(1, chunk_tokens / block_tokens);
  }
  // The store indexes chunks: its prefix in the view's blocks. An RPC: outside the lock.
  const int64_t store_blocks = StoreBlocks(chunks) * blocks_per_chunk;
  const double now = NowS();
  MutexLock l(mu_);
  UpdateCorrection(now);  // misses older than the window fade even while every request is refused
  view_.Freeze(now);
  const bool decodes = max_tokens > 1;  // one token: the prefill instance alone answers it
  if (view_.num_prefill() == 0 || (decodes && view_.num_decode() == 0)) {
    ++stats_.no_instance;
    return Unavailable(view_.num_prefill() == 0 ? "no prefill instance answers" : "no decode instance answers");
  }
  view_.set_store_blocks(store_blocks);
  const int64_t input = static_cast<int64_t>(prompt.size());
  conductor::Request req{input, max_tokens, keys};
  const conductor::Placement p = conductor_.Place(req, view_, now);
  if (!p.admitted()) {
    const bool ttft = p.verdict == conductor::Verdict::kRejectedTtft;
    const double predicted_ttft = p.prefill.predicted_ttft_s + stats_.ttft_correction_s;
    const double over = ttft ? predicted_ttft - options_.policy_options.ttft_slo_s
                             : p.decode.predicted_tbt_s - options_.policy_options.tbt_slo_s;
    retry_after_s_ = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(std::max(over, 0.0))), 1, 60);
    ++(ttft ? stats_.rejected_ttft : stats_.rejected_tbt);
    return ResourceExhausted(
        ttft ? fmt::format("the predicted time to first token, {:.2f} s, breaks the SLO of {:.2f} s; retry later",
                           predicted_ttft, options_.policy_options.ttft_slo_s)
             : fmt::format("the predicted time between tokens, {:.3f} s, breaks the SLO of {:.3f} s; retry later",
                           p.decode.predicted_tbt_s, options_.policy_options.tbt_slo_s));
  }
  PlacementTicket t;
  t.id = next_id_++;
  t.prefill_slot = view_.prefill_slot(p.prefill.prefill);
  t.decode_slot = !decodes || view_.num_decode() == 0 ? -1
                  : p.decode.decode >= 0           ? view_.decode_slot(p.decode.decode)
                                                   : view_.decode_slot(0);
  t.prefix_tokens = p.prefill.prefix_tokens;
  t.fetch = p.prefill.transfer_from != -1;
  // The store may serve what the policy counted as reused (its own cache
  // included: a page the view believed cached but was evicted comes back
  // from the store); a policy that decided not to fetch loads nothing more.
  t.max_external_tokens = p.prefill.prefix_tokens;
  t.predicted_ttft_s = p.prefill.predicted_ttft_s;
  t.predicted_tbt_s = p.decode.predicted_tbt_s;
  view_.PlacePrefill(t.prefill_slot, t.id, {input, t.prefix_tokens}, now);
  if (t.decode_slot >= 0) view_.PlaceDecode(t.decode_slot, t.id, input, input + max_tokens);
  ++stats_.placed;
  if (t.fetch) ++stats_.fetches;
  if (!keys.empty()) {  // the prefix's heat: requests with a 60 s half-life
    Heat& h = heat_[keys[0]];
    h.requests = h.requests * std::exp2(-(now - h.at_s) / 60.0) + 1;
    h.at_s = now;
    h.in_store = store_blocks > 0;
    if (heat_.size() > 4096) {  // forget the coldest half
      std::vector<double> v;
      for (const auto& [k, x] : heat_) v.push_back(x.requests * std::exp2(-(now - x.at_s) / 60.0));
      std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
      const double cut = v[v.size() / 2];
      std::erase_if(heat_, [&](const auto& e) { return e.second.requests * std::exp2(-(now - e.second.at_s) / 60.0) <= cut; });
    }
  }
  LOG_DEBUG("conductor: placement {} ({} tokens, {} blocks, store {}): prefill {} (local prefix {}, reuse {}{}), "
            "predicted TTFT {:.3f} s; decode {} (TBT {:.4f} s); {} prefill candidates",
            t.id, input, keys.size(), store_blocks, names_[t.prefill_slot], p.prefill.local_prefix_tokens,
            p.prefill.prefix_tokens, t.fetch ? ", fetched" : "", t.predicted_ttft_s,
            t.decode_slot >= 0 ? names_[t.decode_slot] : std::string("none"),
            t.predicted_tbt_s, view_.num_prefill());
  ++placed_on_[t.prefill_slot];
  return t;
}

void PdPlacement::PrefillEnded(const PlacementTicket& t) {
  MutexLock l(mu_);
  view_.EndPrefill(t.prefill_slot, t.id);
}

void PdPlacement::FirstToken(const PlacementTicket& t, double ttft_s) {
  const double now = NowS();
  MutexLock l(mu_);
  ttft_misses_.push_back({now, ttft_s - t.predicted_ttft_s});
  UpdateCorrection(now);
}

void PdPlacement::UpdateCorrection(double now) {
  while (ttft_misses_.size() > 64 || (!ttft_misses_.empty() && now - ttft_misses_.front().first > 30)) {
    ttft_misses_.pop_front();
  }
  double correction = 0;
  if (ttft_misses_.size() >= 16) {  // one slow start is not a trend
    std::vector<double> m;
    for (const auto& [at, miss] : ttft_misses_) m.push_back(miss);
    const size_t k = m.size() * 9 / 10;
    std::nth_element(m.begin(), m.begin() + static_cast<std::ptrdiff_t>(k), m.end());
    // At most half the SLO: refused requests measure nothing, so a
    // correction that alone broke the SLO would refuse everything for good.
    correction = std::clamp(m[k], 0.0, 0.5 * options_.policy_options.ttft_slo_s);
  }
  stats_.ttft_correction_s = correction;
  conductor_.set_ttft_correction(correction);
}

void PdPlacement::DecodeReserved(const PlacementTicket& t) {
  MutexLock l(mu_);
  view_.DecodeReserved(t.decode_slot, t.id);
}

void PdPlacement::DecodeStarted(const PlacementTicket& t) {
  MutexLock l(mu_);
  view_.DecodeStarted(t.decode_slot, t.id);
}

void PdPlacement::DecodeFailed(const PlacementTicket& t) {
  MutexLock l(mu_);
  view_.EndDecode(t.decode_slot, t.id);
}

PlacementStats PdPlacement::Stats() const {
  MutexLock l(mu_);
  PlacementStats s = stats_;
  s.prefill_fitted = estimators_.fitted_prefill();
  s.decode_fitted = estimators_.fitted_decode();
  s.transfer_measured = estimators_.measured_transfer();
  s.prefill_samples = estimators_.prefill_samples();
  s.decode_samples = estimators_.decode_samples();
  s.refits = estimators_.refits();
  s.view_resyncs = view_.resyncs();
  s.view_events = view_.events_applied();
  const double now = NowS();
  std::vector<std::pair<double, const conductor::BlockKey*>> by_heat;
  for (const auto& [k, h] : heat_) by_heat.emplace_back(h.requests * std::exp2(-(now - h.at_s) / 60.0), &k);
  const size_t top = std::min<size_t>(8, by_heat.size());
  std::partial_sort(by_heat.begin(), by_heat.begin() + static_cast<std::ptrdiff_t>(top), by_heat.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = 0; i < top; ++i) {
    const conductor::BlockKey& k = *by_heat[i].second;
    s.hot.push_back({k.ToHex().substr(0, 16), by_heat[i].first, view_.Holders(k), heat_.at(k).in_store});
  }
  for (const auto& [slot, n] : placed_on_) {
    auto it = names_.find(slot);
    s.placed_on.emplace_back(it == names_.end() ? std::to_string(slot) : it->second, n);
  }
  return s;
}

std::string ConductorMetricsText(const PdPlacement& placement) {
  const PlacementStats s = placement.Stats();
  std::string o;
  auto line = [&](const std::string& name, const std::string& labels, double v) {
    o += fmt::format("crescent_conductor_{}{} {}\n", name, labels.empty() ? "" : "{" + labels + "}", v);
  };
  o += fmt::format("# TYPE crescent_conductor_placements_total counter\n");
  for (const auto& [inst, n] : s.placed_on) line("placements_total", fmt::format("instance=\"{}\"", inst), n);
  line("rejected_total", "slo=\"ttft\"", s.rejected_ttft);
  line("rejected_total", "slo=\"tbt\"", s.rejected_tbt);
  line("no_instance_total", "", s.no_instance);
  line("fetches_total", "", s.fetches);
  line("store_queries_total", "", s.store_queries);
  line("store_failures_total", "", s.store_failures);
  line("admission_enabled", "slo=\"ttft\"", s.ttft_admission ? 1 : 0);
  line("admission_enabled", "slo=\"tbt\"", s.tbt_admission ? 1 : 0);
  line("estimator_fitted", "estimator=\"prefill\"", s.prefill_fitted ? 1 : 0);
  line("estimator_fitted", "estimator=\"decode\"", s.decode_fitted ? 1 : 0);
  line("estimator_fitted", "estimator=\"transfer\"", s.transfer_measured ? 1 : 0);
  line("estimator_samples", "estimator=\"prefill\"", static_cast<double>(s.prefill_samples));
  line("estimator_samples", "estimator=\"decode\"", static_cast<double>(s.decode_samples));
  line("refits_total", "", static_cast<double>(s.refits));
  line("view_resyncs_total", "", static_cast<double>(s.view_resyncs));
  line("view_events_total", "", static_cast<double>(s.view_events));
  line("ttft_correction_seconds", "", s.ttft_correction_s);
  for (const PlacementStats::HotPrefix& h : s.hot) {
    const std::string label = fmt::format("prefix=\"{}\"", h.key);
    line("hot_prefix_requests", label, h.requests);
    line("hot_prefix_replicas", label, h.replicas);
    line("hot_prefix_in_store", label, h.in_store ? 1 : 0);
  }
  return o;
}

}  // namespace crescent::server
