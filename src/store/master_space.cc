// Master: space management — placement, eviction and demotion, frees, and
// the expiry of nodes, puts and leases (the contract is in master.h).
#include <algorithm>

#include "store/master.h"

namespace crescent::store {

uint64_t Master::Segment::capacity() const { return tier == proto::TIER_DRAM ? alloc.capacity() : ssd_capacity; }
uint64_t Master::Segment::used() const { return tier == proto::TIER_DRAM ? alloc.used() : ssd_used; }

uint64_t Master::SegmentUsed(const std::string& segment) const {
  auto it = segments_.find(segment);
  return it == segments_.end() ? 0 : it->second.used();
}

Master::Segment* Master::FindSegment(const std::string& name) {
  auto it = segments_.find(name);
  return it == segments_.end() ? nullptr : &it->second;
}

const Master::Node* Master::NodeOf(const Segment& s) const {
  auto it = nodes_.find(s.node);
  return it == nodes_.end() ? nullptr : &it->second;
}

bool Master::Allocatable(const Segment& s) const {
  const Node* n = NodeOf(s);
  return s.alive && s.tier == proto::TIER_DRAM && n && n->alive && Now() >= s.grace_until_ns;
}

double Master::Score(const Segment& s, uint64_t bytes) const {
  const double cap = static_cast<double>(s.capacity());
  const double free = cap - static_cast<double>(s.used()) - static_cast<double>(bytes);
  const double age = static_cast<double>(Now() - s.mounted_ns);
  const double ramp = options_.ramp_ms <= 0 ? 1.0 : std::clamp(age / static_cast<double>(Ms(options_.ramp_ms)), 0.05, 1.0);
  return std::max(0.0, free / cap) * ramp;
}

void Master::FillReplica(const ReplicaRec& r, proto::Replica* out) const {
  auto it = segments_.find(r.segment);
  out->set_segment_name(r.segment);
  out->set_tier(r.tier);
  out->set_offset(r.offset);
  out->set_generation(r.generation);
  if (it != segments_.end()) {
    out->set_node_id(it->second.node);
    out->set_segment_epoch(it->second.epoch);
    if (const Node* n = NodeOf(it->second)) out->set_node_address(n->address);
  }
}

void Master::Track(Segment& seg, const Key& key) {
  if (seg.key_pos.contains(key)) return;
  seg.key_pos.emplace(key, seg.keys.size());
  seg.keys.push_back(key);
}

void Master::Untrack(Segment& seg, const Key& key) {
  auto it = seg.key_pos.find(key);
  if (it == seg.key_pos.end()) return;
  const size_t i = it->second;
  seg.key_pos.erase(it);
  if (i + 1 != seg.keys.size()) {
    seg.keys[i] = seg.keys.back();
    seg.key_pos[seg.keys[i]] = i;
  }
  seg.keys.pop_back();
}

bool Master::AllocateIn(Segment& seg, uint64_t bytes, ReplicaRec* out) {
  if (bytes > seg.capacity()) return false;
  std::optional<uint64_t> off = seg.alloc.Allocate(bytes);
  while (!off) {
    if (!EvictOne(seg, /*may_demote=*/false)) return false;
    off = seg.alloc.Allocate(bytes);
  }
  out->segment = seg.name;
  out->offset = *off;
  out->generation = seg.next_generation++;
  out->tier = proto::TIER_DRAM;
  out->state = ReplicaState::kWriting;
  return true;
}

std::vector<Master::ReplicaRec> Master::Place(const std::string& client_node, uint64_t bytes, uint32_t n) {
  std::vector<ReplicaRec> out;
  std::vector<std::string> used_nodes;
  auto taken = [&](const std::string& node) {
    return std::find(used_nodes.begin(), used_nodes.end(), node) != used_nodes.end();
  };
  // Locality: the writer's own DRAM segment first, if it can hold the record.
  if (!client_node.empty()) {
    for (auto& [name, seg] : segments_) {
      if (seg.node != client_node || !Allocatable(seg) || seg.capacity() < bytes) continue;
      ReplicaRec r;
      if (AllocateIn(seg, bytes, &r)) {
        out.push_back(r);
        used_nodes.push_back(seg.node);
        break;
      }
    }
  }
  while (out.size() < n) {
    std::vector<Segment*> cands;
    for (auto& [name, seg] : segments_) {
      if (Allocatable(seg) && !taken(seg.node) && seg.capacity() >= bytes) cands.push_back(&seg);
    }
    if (cands.empty()) break;
    // Power of two choices on ramped free space; the rest by score as fallbacks.
    std::vector<Segment*> order;
    const size_t a = rng_() % cands.size(), b = rng_() % cands.size();
    Segment* first = Score(*cands[a], bytes) >= Score(*cands[b], bytes) ? cands[a] : cands[b];
    order.push_back(first);
    std::sort(cands.begin(), cands.end(), [&](Segment* x, Segment* y) { return Score(*x, bytes) > Score(*y, bytes); });
    for (Segment* c : cands) {
      if (c != first) order.push_back(c);
    }
    bool placed = false;
    for (Segment* seg : order) {
      ReplicaRec r;
      if (AllocateIn(*seg, bytes, &r)) {
        out.push_back(r);
        used_nodes.push_back(seg->node);
        placed = true;
        break;
      }
    }
    if (!placed) break;
  }
  return out;
}

void Master::FreeSpace(const Key& key, const std::string& segment, uint64_t offset, uint64_t size,
                       uint64_t generation, proto::Tier tier) {
  Segment* seg = FindSegment(segment);
  if (!seg) return;  // its node is gone, and the space with it
  auto nit = nodes_.find(seg->node);
  const bool tell = nit != nodes_.end() && nit->second.alive;
  Pending p;
  if (tier == proto::TIER_DRAM) {
    seg->alloc.Free(offset, RecordBytes(size));
    p.free.set_segment_name(segment);
    p.free.set_offset(offset);
    p.free.set_generation(generation);
  } else {
    seg->ssd_used -= std::min(seg->ssd_used, RecordBytes(size));
    p.is_drop = true;
    p.drop.mutable_key()->set_hi(key.hi);
    p.drop.mutable_key()->set_lo(key.lo);
    p.drop.set_location(offset);
  }
  if (tell) nit->second.pending.push_back(std::move(p));
}

void Master::ReleaseReplica(const Key& key, const Object& obj, const ReplicaRec& r) {
  if (Segment* seg = FindSegment(r.segment)) {
    Untrack(*seg, key);
    if (r.state == ReplicaState::kDemoting && !r.copy) {
      seg->demoting_bytes -= std::min(seg->demoting_bytes, RecordBytes(obj.size));
    }
  }
  if (r.state == ReplicaState::kDisconnected) return;  // the node is gone; it drops it on re-report
  // A reader may hold a lease, a writer may still be writing: free after both.
  const int64_t at = std::max(obj.lease_until_ns, obj.complete ? 0 : obj.put_deadline_ns);
  if (at > Now()) {
    deferred_.push_back(Deferred{at, key, r.segment, r.offset, obj.size, r.generation, r.tier});
    return;
  }
  FreeSpace(key, r.segment, r.offset, obj.size, r.generation, r.tier);
}

void Master::DropReplica(const Key& key, size_t index) {
  auto it = objects_.find(key);
  if (it == objects_.end() || index >= it->second.replicas.size()) return;
  Object& o = it->second;
  ReleaseReplica(key, o, o.replicas[index]);
  o.replicas.erase(o.replicas.begin() + static_cast<std::ptrdiff_t>(index));
  if (o.replicas.empty()) {
    EraseObject(key);
  }
}

void Master::EraseObject(const Key& key) {
  auto it = objects_.find(key);
  if (it == objects_.end()) return;
  Object o = std::move(it->second);
  objects_.erase(it);
  for (const ReplicaRec& r : o.replicas) ReleaseReplica(key, o, r);
  if (o.complete && o.has_parent) {
    auto p = objects_.find(o.parent);
    if (p != objects_.end() && p->second.children > 0) p->second.children--;
  }
}

bool Master::EvictOne(Segment& seg, bool may_demote) {
  if (seg.keys.empty()) return false;
  const int64_t now = Now();
  const Key* best = nullptr;
  size_t best_replica = 0;
  auto consider = [&](const Key& k) {
    auto it = objects_.find(k);
    if (it == objects_.end() || !it->second.complete || it->second.lease_until_ns > now) return;
    const Object& o = it->second;
    for (size_t i = 0; i < o.replicas.size(); ++i) {
      if (o.replicas[i].segment != seg.name || o.replicas[i].state != ReplicaState::kComplete) continue;
      if (best) {
        const Object& b = objects_.at(*best);
        // Leaves of prefix chains first, then the least recently used.
        const bool leaf = o.children == 0, best_leaf = b.children == 0;
        if (leaf != best_leaf ? !leaf : o.last_access_ns >= b.last_access_ns) return;
      }
      best = &it->first;
      best_replica = i;
      return;
    }
  };
  const size_t n = seg.keys.size();
  for (int s = 0; s < kSample && s < static_cast<int>(n); ++s) consider(seg.keys[n <= kSample ? s : rng_() % n]);
  if (!best) {
    for (const Key& k : seg.keys) consider(k);  // a sample of leased ones: look at all
  }
  if (!best) return false;
  const Key key = *best;
  Object& o = objects_.at(key);
  if (may_demote && seg.tier == proto::TIER_DRAM) {
    bool on_ssd = false;
    for (const ReplicaRec& r : o.replicas) on_ssd |= r.tier == proto::TIER_SSD;
    Segment* ssd = on_ssd ? nullptr : SsdOf(seg.node, RecordBytes(o.size));
    if (ssd) {
      StartDemotion(seg, key, o, best_replica, /*copy=*/false);
      return true;
    }
  }
  Count(seg.tier == proto::TIER_DRAM ? "evictions" : "ssd_evictions");
  DropReplica(key, best_replica);
  return true;
}

void Master::StartDemotion(Segment& seg, const Key& key, Object& o, size_t replica, bool copy) {
  ReplicaRec& r = o.replicas[replica];
  r.state = ReplicaState::kDemoting;
  r.copy = copy;
  r.until_ns = Now() + Ms(options_.demote_timeout_ms);
  if (!copy) seg.demoting_bytes += RecordBytes(o.size);  // space about to be freed
  proto::DemoteTask t;
  t.mutable_key()->set_hi(key.hi);
  t.mutable_key()->set_lo(key.lo);
  t.set_size(o.size);
  t.set_checksum(o.checksum);
  t.set_segment_name(seg.name);
  t.set_offset(r.offset);
  t.set_generation(r.generation);
  nodes_[seg.node].demote.push_back(std::move(t));
  demoting_.emplace_back(r.until_ns, key);
  Count(copy ? "ssd_copies_started" : "demotions_started");
}

Master::Segment* Master::SsdOf(const std::string& node, uint64_t bytes) {
  for (auto& [name, seg] : segments_) {
    if (seg.node != node || seg.tier != proto::TIER_SSD || !seg.alive || seg.ssd_capacity < bytes) continue;
    while (seg.ssd_used + bytes > seg.ssd_capacity) {
      if (!EvictOne(seg, false)) break;
    }
    if (seg.ssd_used + bytes <= seg.ssd_capacity) return &seg;
  }
  return nullptr;
}

void Master::ForgetNode(const std::string& node_id) {
  for (auto it = segments_.begin(); it != segments_.end();) {
    if (it->second.node != node_id) {
      ++it;
      continue;
    }
    const std::vector<Key> keys = it->second.keys;
    const std::string name = it->first;
    for (const Key& k : keys) {
      auto o = objects_.find(k);
      if (o == objects_.end()) continue;
      auto& reps = o->second.replicas;
      std::erase_if(reps, [&](const ReplicaRec& r) { return r.segment == name; });
      if (reps.empty()) {
        Object gone = std::move(o->second);
        objects_.erase(o);
        if (gone.complete && gone.has_parent) {
          auto p = objects_.find(gone.parent);
          if (p != objects_.end() && p->second.children > 0) p->second.children--;
        }
      }
    }
    std::erase_if(deferred_, [&](const Deferred& d) { return d.segment == name; });
    it = segments_.erase(it);
  }
}

void Master::ExpireNode(Node& node) {
  node.alive = false;
  node.grace_until_ns = Now() + Ms(options_.ssd_grace_ms);
  node.pending.clear();
  node.demote.clear();
  Count("nodes_expired");
  for (const std::string& name : node.segments) {
    Segment* seg = FindSegment(name);
    if (!seg) continue;
    seg->alive = false;
    const std::vector<Key> keys = seg->keys;
    for (const Key& k : keys) {
      auto o = objects_.find(k);
      if (o == objects_.end()) continue;
      for (size_t i = 0; i < o->second.replicas.size(); ++i) {
        ReplicaRec& r = o->second.replicas[i];
        if (r.segment != name) continue;
        if (seg->tier == proto::TIER_SSD) {
          r.state = ReplicaState::kDisconnected;  // back if the node re-reports it
        } else {
          Untrack(*seg, k);
          r.state = ReplicaState::kDisconnected;
          DropReplica(k, i);  // DRAM died with the node
        }
        break;
      }
    }
  }
}

void Master::Tick() {
  const int64_t now = Now();
  for (auto& [id, node] : nodes_) {
    if (node.alive && now - node.last_seen_ns > Ms(options_.node_ttl_ms)) ExpireNode(node);
  }
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (!it->second.alive && now >= it->second.grace_until_ns) {
      const std::string id = it->first;
      ForgetNode(id);
      it = nodes_.erase(it);
    } else {
      ++it;
    }
  }
  while (!put_deadlines_.empty() && put_deadlines_.begin()->first <= now) {
    const Key key = put_deadlines_.begin()->second;
    put_deadlines_.erase(put_deadlines_.begin());
    auto it = objects_.find(key);
    if (it != objects_.end() && !it->second.complete && it->second.put_deadline_ns <= now) {
      Count("puts_expired");
      EraseObject(key);
    }
  }
  std::vector<Deferred> due;
  std::erase_if(deferred_, [&](const Deferred& d) {
    if (d.at_ns > now) return false;
    due.push_back(d);
    return true;
  });
  for (const Deferred& d : due) FreeSpace(d.key, d.segment, d.offset, d.size, d.generation, d.tier);
  // Demotions the node never answered: the DRAM copy is evictable again.
  std::erase_if(demoting_, [&](const std::pair<int64_t, Key>& d) {
    if (d.first > now) return false;
    auto it = objects_.find(d.second);
    if (it == objects_.end()) return true;
    for (ReplicaRec& r : it->second.replicas) {
      if (r.state == ReplicaState::kDemoting && now >= r.until_ns) {
        r.state = ReplicaState::kComplete;
        Segment* s = FindSegment(r.segment);
        if (s && !r.copy) s->demoting_bytes -= std::min(s->demoting_bytes, RecordBytes(it->second.size));
        r.copy = false;
        Count("demotions_failed");
      }
    }
    return true;
  });
  for (auto& [name, seg] : segments_) {
    if (!seg.alive || seg.capacity() == 0) continue;
    const double cap = static_cast<double>(seg.capacity());
    auto level = [&s = seg] { return static_cast<double>(s.used() - std::min(s.used(), s.demoting_bytes)); };
    if (level() <= options_.high_watermark * cap) continue;
    while (level() > options_.low_watermark * cap) {
      if (!EvictOne(seg, /*may_demote=*/true)) {
        Count("evictions_blocked");  // everything left is leased or being written: report, do not spin
        break;
      }
    }
  }
}

}  // namespace crescent::store
