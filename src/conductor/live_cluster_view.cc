#include "conductor/live_cluster_view.h"

#include "base/check.h"

namespace crescent::conductor {

int LiveClusterView::AddInstance(bool prefill, std::string name) {
  const int slot = next_slot_++;
  Slot& s = slots_[slot];
  s.prefill = prefill;
  s.name = std::move(name);
  return slot;
}

void LiveClusterView::RemoveInstance(int slot) { slots_.erase(slot); }

void LiveClusterView::SetResponsive(int slot, bool responsive) {
  auto it = slots_.find(slot);
  if (it != slots_.end()) it->second.responsive = responsive;
}

std::pair<uint64_t, uint64_t> LiveClusterView::Cursor(int slot) const {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return {0, 0};
  return {it->second.epoch, it->second.seq};
}

void LiveClusterView::Apply(int slot, const InstanceReport& r, double now_s) {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  Slot& s = it->second;
  if (r.resync || r.epoch != s.epoch) {
    // A restarted instance (another epoch) is another cache: nothing of the
    // old one is kept. A resync of the same epoch replaces the set too.
    s.held.clear();
    s.held.insert(r.held.begin(), r.held.end());
    s.epoch = r.epoch;
    s.seq = r.last_seq;
    ++resyncs_;
  } else if (!r.events.empty() && r.events.front().seq != 0 && r.events.front().seq != s.seq + 1) {
    s.epoch = 0;  // a gap: ask for a resync next time
  } else {
    for (const InstanceReport::Event& e : r.events) {
      if (e.stored) {
        s.held.insert(e.key);
      } else {
        s.held.erase(e.key);
      }
    }
    events_applied_ += static_cast<int64_t>(r.events.size());
    s.seq = r.last_seq;
  }
  s.reported_s = now_s;
  s.jobs.clear();
  for (const InstanceReport::Job& j : r.jobs) {
    if (!s.ended.contains(j.placement_id)) s.jobs.push_back(j);
  }
  s.ended.clear();
  s.decode = r.decode;
  for (auto p = s.placed.begin(); p != s.placed.end();) {  // the report counts the started ones now
    p = p->second.started ? s.placed.erase(p) : std::next(p);
  }
}

void LiveClusterView::PlacePrefill(int slot, uint64_t placement_id, PrefillWork work, double now_s) {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  Slot::Placed p;
  p.work = work;
  p.placed_s = now_s;
  it->second.placed[placement_id] = p;
}

void LiveClusterView::EndPrefill(int slot, uint64_t placement_id) {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  it->second.placed.erase(placement_id);
  it->second.ended.insert(placement_id);
  std::erase_if(it->second.jobs, [&](const InstanceReport::Job& j) { return j.placement_id == placement_id; });
}

void LiveClusterView::PlaceDecode(int slot, uint64_t placement_id, int64_t context_tokens, int64_t need_tokens) {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  Slot::Placed p;
  p.context = context_tokens;
  p.need = need_tokens;
  it->second.placed[placement_id] = p;
}

void LiveClusterView::DecodeReserved(int slot, uint64_t placement_id) {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  auto p = it->second.placed.find(placement_id);
  if (p != it->second.placed.end()) p->second.need = 0;
}

void LiveClusterView::DecodeStarted(int slot, uint64_t placement_id) {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  auto p = it->second.placed.find(placement_id);
  if (p != it->second.placed.end()) p->second.started = true;
}

void LiveClusterView::EndDecode(int slot, uint64_t placement_id) {
  auto it = slots_.find(slot);
  if (it != slots_.end()) it->second.placed.erase(placement_id);
}

void LiveClusterView::Freeze(double now_s) {
  for (bool prefill : {true, false}) {
    std::vector<int>& cand = prefill ? cand_prefill_ : cand_decode_;
    cand.clear();
    std::vector<int> answering;
    for (auto& [slot, s] : slots_) {
      if (s.prefill != prefill || !s.responsive || s.reported_s < 0) continue;
      answering.push_back(slot);
      if (now_s - s.reported_s <= opt_.stale_s) cand.push_back(slot);
    }
    if (cand.empty()) cand = answering;  // all saturated: the least bad still serve
  }
  for (int slot : cand_prefill_) {
    Slot& s = slots_.at(slot);
    s.queued.clear();
    s.load = PrefillLoad{};
    std::unordered_set<uint64_t> reported;
    for (size_t k = 0; k < s.jobs.size(); ++k) {
      const InstanceReport::Job& j = s.jobs[k];
      reported.insert(j.placement_id);
      if (k == 0 && j.running) {
        s.load.running = true;
        s.load.running_work = j.work;
        s.load.running_started_s = s.reported_s - j.running_s;
      } else {
        s.queued.push_back(j.work);
      }
    }
    for (const auto& [id, p] : s.placed) {  // std::map: placement (id) order
      if (!reported.contains(id)) s.queued.push_back(p.work);
    }
    s.load.queued = s.queued;
  }
}

int64_t LiveClusterView::PrefixBlocks(int prefill, std::span<const BlockKey> keys) const {
  const Slot& s = slots_.at(cand_prefill_[prefill]);
  int64_t n = 0;
  while (n < static_cast<int64_t>(keys.size()) && s.held.contains(keys[n])) ++n;
  return n;
}

PrefixHolder LiveClusterView::BestPrefix(std::span<const BlockKey> keys) const {
  PrefixHolder best = opt_.fetch_from_instances ? ClusterView::BestPrefix(keys) : PrefixHolder{};
  if (store_blocks_ > best.blocks) best = {store_blocks_, kSharedStore};
  return best;
}

PrefillLoad LiveClusterView::GetPrefillLoad(int prefill) const { return slots_.at(cand_prefill_[prefill]).load; }

DecodeLoad LiveClusterView::GetDecodeLoad(int decode) const {
  const Slot& s = slots_.at(cand_decode_[decode]);
  DecodeLoad l = s.decode;
  for (const auto& [id, p] : s.placed) {
    l.batch_size += 1;
    l.context_tokens += p.context;
    l.free_kv_tokens -= p.need;
  }
  return l;
}

int LiveClusterView::Holders(const BlockKey& key) const {
  int n = 0;
  for (const auto& [slot, s] : slots_) n += s.prefill && s.held.contains(key) ? 1 : 0;
  return n;
}

size_t LiveClusterView::held_keys(int slot) const {
  auto it = slots_.find(slot);
  return it == slots_.end() ? 0 : it->second.held.size();
}

}  // namespace crescent::conductor
