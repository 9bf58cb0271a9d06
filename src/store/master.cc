// Master: the request handlers. Space management (placement, eviction,
// frees, expiry) is in master_space.cc.
#include "store/master.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>

namespace crescent::store {
namespace {

Key FromProto(const proto::Key& k) { return Key{k.lo(), k.hi()}; }
void SetStatus(proto::ItemStatus* out, const Status& s) {
  out->set_code(static_cast<int32_t>(s.code()));
  out->set_message(s.message());
}

}  // namespace

Master::Master(MasterOptions options, const Clock* clock)
    : options_(std::move(options)), clock_(clock), fingerprint_(options_.fingerprint), rng_(options_.seed) {
  std::random_device rd;
  next_put_id_ = ((static_cast<uint64_t>(rd()) << 32 | rd()) >> 1) + 1;
  ended_order_.assign(4096, 0);
}

Status Master::Check(const proto::RequestHeader& h) {
  if (h.term() > term_) {
    return Unavailable(fmt::format("this master's term {} is over (a leader of term {} exists)", term_, h.term()));
  }
  if (h.term() != 0 && h.term() < term_) {  // retryable: the caller learns the term from the reply
    return Unavailable(fmt::format("term {} is over; the leader's term is {}", h.term(), term_));
  }
  const Hash128 fp{h.fingerprint_lo(), h.fingerprint_hi()};
  if (fp != Hash128{}) {
    if (fingerprint_ == Hash128{}) fingerprint_ = fp;
    if (fp != fingerprint_) {
      return FailedPrecondition("this store holds the KV of model fingerprint " + fingerprint_.ToHex() +
                                "; the client's model is " + fp.ToHex());
    }
  }
  return Status::Ok();
}

Status Master::PutStart(const proto::PutStartRequest& req, proto::PutStartReply* reply) {
  RETURN_IF_ERROR(Check(req.header()));
  Stamp(reply->mutable_header());
  const int64_t now = Now();
  for (const proto::PutStartItem& item : req.items()) {
    proto::PutStartResult* res = reply->add_results();
    const Key key = FromProto(item.key());
    if (item.size() == 0) {
      SetStatus(res->mutable_status(), InvalidArgument("zero-size object"));
      continue;
    }
    if (item.size() > options_.max_object_bytes) {
      SetStatus(res->mutable_status(), InvalidArgument(fmt::format("object of {} bytes is larger than the store's "
                                                                   "limit of {} bytes",
                                                                   item.size(), options_.max_object_bytes)));
      continue;
    }
    auto it = objects_.find(key);
    if (it != objects_.end()) {
      Object& o = it->second;
      if (o.complete) {
        bool readable = false;
        for (const ReplicaRec& r : o.replicas) readable |= Readable(r);
        if (readable) {
          res->set_exists(true);
          SetStatus(res->mutable_status(), Status::Ok());
          Count("put_exists");
          continue;
        }
        EraseObject(key);  // only disconnected copies left: write it anew
      } else {
        SetStatus(res->mutable_status(), FailedPrecondition("a put of this key is in progress"));
        continue;
      }
    }
    uint32_t n = item.replicas() == 0 ? options_.default_replicas : item.replicas();
    n = std::clamp<uint32_t>(n, 1, options_.max_replicas);
    const uint64_t bytes = RecordBytes(item.size());
    std::vector<ReplicaRec> placed = Place(req.header().client_node(), bytes, n);
    if (placed.empty()) {
      uint64_t largest = 0;
      for (const auto& [name, seg] : segments_) {
        const Node* n = NodeOf(seg);
        if (seg.alive && seg.tier == proto::TIER_DRAM && n && n->alive) largest = std::max(largest, seg.capacity());
      }
      SetStatus(res->mutable_status(),
                ResourceExhausted(largest < bytes ? fmt::format("an object of {} bytes does not fit any segment "
                                                                "(largest: {} bytes)",
                                                                item.size(), largest)
                                                  : fmt::format("no segment has room for {} bytes (all in use or "
                                                                "leased, or in their write grace after a failover)",
                                                                item.size())));
      Count("put_no_room");
      continue;
    }
    if (placed.size() < n) Count("put_fewer_replicas");
    Object o;
    o.size = item.size();
    o.replicas = std::move(placed);
    o.last_access_ns = now;
    o.has_parent = item.has_parent();
    if (o.has_parent) o.parent = FromProto(item.parent());
    o.put_id = next_put_id_++;
    o.put_deadline_ns = now + Ms(options_.put_timeout_ms);
    for (const ReplicaRec& r : o.replicas) {
      Track(*FindSegment(r.segment), key);
      FillReplica(r, res->add_replicas());
    }
    res->set_put_id(o.put_id);
    SetStatus(res->mutable_status(), Status::Ok());
    put_deadlines_.emplace(o.put_deadline_ns, key);
    objects_.emplace(key, std::move(o));
  }
  return Status::Ok();
}

Status Master::PutEnd(const proto::PutEndRequest& req, proto::PutEndReply* reply) {
  RETURN_IF_ERROR(Check(req.header()));
  Stamp(reply->mutable_header());
  for (const proto::PutEndItem& item : req.items()) {
    proto::ItemStatus* res = reply->add_results();
    const Key key = FromProto(item.key());
    auto it = objects_.find(key);
    if (it == objects_.end() || it->second.complete || it->second.put_id != item.put_id()) {
      auto done = ended_.find(item.put_id());
      if (done != ended_.end()) {  // a retry of a PutEnd that was applied: answer as then
        SetStatus(res, done->second == 0 ? Status::Ok() : Status(static_cast<StatusCode>(done->second), "put ended"));
        continue;
      }
      SetStatus(res, NotFound(fmt::format("no put {} of this key is in progress (it timed out, was revoked, or the "
                                          "master changed)",
                                          item.put_id())));
      continue;
    }
    Object& o = it->second;
    if (!item.ok()) {
      // The writer gave up; its transfers have ended, so the space is free now.
      o.put_deadline_ns = 0;
      RememberEnd(item.put_id());
      EraseObject(key);
      Count("puts_revoked");
      SetStatus(res, Status::Ok());
      continue;
    }
    o.complete = true;
    RememberEnd(o.put_id);
    o.checksum = item.checksum();
    o.last_access_ns = Now();
    for (ReplicaRec& r : o.replicas) r.state = ReplicaState::kComplete;
    if (o.has_parent) {
      auto p = objects_.find(o.parent);
      if (p != objects_.end()) p->second.children++;
    }
    Count("puts");
    Count("put_bytes", static_cast<double>(o.size));
    if (options_.ssd_write_through) {
      for (size_t i = 0; i < o.replicas.size(); ++i) {
        Segment* seg = FindSegment(o.replicas[i].segment);
        if (seg && seg->tier == proto::TIER_DRAM && SsdOf(seg->node, RecordBytes(o.size))) {
          StartDemotion(*seg, key, o, i, /*copy=*/true);
          break;  // one SSD copy is enough
        }
      }
    }
    SetStatus(res, Status::Ok());
  }
  return Status::Ok();
}

void Master::RememberEnd(uint64_t put_id) {
  const uint64_t old = ended_order_[ended_next_];
  if (old != 0) ended_.erase(old);
  ended_order_[ended_next_] = put_id;
  ended_next_ = (ended_next_ + 1) % ended_order_.size();
  ended_[put_id] = 0;
}

Status Master::Get(const proto::GetRequest& req, proto::GetReply* reply) {
  RETURN_IF_ERROR(Check(req.header()));
  Stamp(reply->mutable_header());
  const int64_t now = Now();
  const std::string& me = req.header().client_node();
  for (const proto::Key& k : req.keys()) {
    proto::GetResult* res = reply->add_results();
    Count("gets");
    auto it = objects_.find(FromProto(k));
    if (it == objects_.end() || !it->second.complete) {
      SetStatus(res->mutable_status(), NotFound("no such object"));
      Count("get_misses");
      continue;
    }
    Object& o = it->second;
    // Nearest first: the caller's own node, then DRAM, then SSD.
    std::vector<const ReplicaRec*> order;
    for (const ReplicaRec& r : o.replicas) {
      if (Readable(r)) order.push_back(&r);
    }
    if (order.empty()) {
      SetStatus(res->mutable_status(), NotFound("no reachable copy of the object"));
      Count("get_misses");
      continue;
    }
    auto rank = [&](const ReplicaRec* r) {
      const Segment* s = FindSegment(r->segment);
      const bool local = s && !me.empty() && s->node == me;
      return (local ? 0 : 2) + (r->tier == proto::TIER_DRAM ? 0 : 1);
    };
    std::stable_sort(order.begin(), order.end(), [&](auto* a, auto* b) { return rank(a) < rank(b); });
    for (const ReplicaRec* r : order) FillReplica(*r, res->add_replicas());
    o.last_access_ns = now;
    o.lease_until_ns = std::max(o.lease_until_ns, now + Ms(options_.lease_ms));
    res->set_size(o.size);
    res->set_checksum(o.checksum);
    res->set_lease_ms(static_cast<uint64_t>(options_.lease_ms));
    SetStatus(res->mutable_status(), Status::Ok());
    Count("get_hits");
  }
  return Status::Ok();
}

Status Master::Exists(const proto::ExistsRequest& req, proto::ExistsReply* reply) {
  RETURN_IF_ERROR(Check(req.header()));
  Stamp(reply->mutable_header());
  for (const proto::Key& k : req.keys()) {
    auto it = objects_.find(FromProto(k));
    bool yes = false;
    if (it != objects_.end() && it->second.complete) {
      for (const ReplicaRec& r : it->second.replicas) yes |= Readable(r);
    }
    reply->add_exists(yes);
  }
  return Status::Ok();
}

Status Master::Remove(const proto::RemoveRequest& req, proto::RemoveReply* reply) {
  RETURN_IF_ERROR(Check(req.header()));
  Stamp(reply->mutable_header());
  for (const proto::Key& k : req.keys()) {
    const Key key = FromProto(k);
    if (!objects_.contains(key)) {
      SetStatus(reply->add_results(), NotFound("no such object"));
      continue;
    }
    EraseObject(key);  // hidden now; leased or written space is freed later
    Count("removes");
    SetStatus(reply->add_results(), Status::Ok());
  }
  return Status::Ok();
}

Status Master::ReportBadReplica(const proto::ReportBadReplicaRequest& req, proto::ReportBadReplicaReply* reply) {
  RETURN_IF_ERROR(Check(req.header()));
  Stamp(reply->mutable_header());
  auto it = objects_.find(FromProto(req.key()));
  if (it == objects_.end()) return Status::Ok();  // gone already
  for (size_t i = 0; i < it->second.replicas.size(); ++i) {
    const ReplicaRec& r = it->second.replicas[i];
    if (r.segment == req.replica().segment_name() && r.offset == req.replica().offset() &&
        r.generation == req.replica().generation()) {
      Count("bad_replicas");
      DropReplica(it->first, i);
      break;
    }
  }
  return Status::Ok();
}

Status Master::Mount(const proto::MountRequest& req, proto::MountReply* reply) {
  RETURN_IF_ERROR(Check(req.header()));
  if (req.node_id().empty()) return InvalidArgument("mount: empty node id");
  for (const proto::SegmentSpec& s : req.segments()) {
    if (s.name().empty()) return InvalidArgument("mount: a segment without a name");
    if (s.capacity() < 2 * kBlock) return InvalidArgument("mount: segment '" + s.name() + "' is too small");
    auto it = segments_.find(s.name());
    if (it != segments_.end() && it->second.node != req.node_id()) {
      return InvalidArgument("mount: segment '" + s.name() + "' belongs to node '" + it->second.node + "'");
    }
  }
  Stamp(reply->mutable_header());
  ForgetNode(req.node_id());  // its report is the truth from here on
  const int64_t now = Now();
  Node& node = nodes_[req.node_id()];
  node = Node{};
  node.id = req.node_id();
  node.address = req.node_address();
  node.epoch = req.node_epoch();
  node.last_seen_ns = now;
  for (const proto::SegmentSpec& spec : req.segments()) {
    Segment& seg = segments_[spec.name()];
    seg = Segment{};
    seg.name = spec.name();
    seg.node = node.id;
    seg.tier = spec.tier();
    seg.epoch = req.node_epoch();
    seg.mounted_ns = now;
    if (req.remount()) seg.grace_until_ns = now + Ms(options_.write_grace_ms);
    seg.descriptor = spec.transfer_descriptor();
    if (spec.tier() == proto::TIER_DRAM) {
      seg.alloc = RangeAllocator(spec.capacity(), kBlock);
    } else {
      seg.ssd_capacity = spec.capacity();
    }
    node.segments.push_back(spec.name());
  }
  for (const proto::ReportedObject& r : req.objects()) {
    Segment* seg = FindSegment(r.segment_name());
    const Key key = FromProto(r.key());
    bool ok = seg && seg->node == node.id && r.size() > 0 && r.size() <= options_.max_object_bytes;
    if (ok && seg->tier == proto::TIER_DRAM) ok = seg->alloc.Reserve(r.offset(), RecordBytes(r.size()));
    if (!ok) {
      Count("bad_reports");
      continue;
    }
    if (seg->tier == proto::TIER_SSD) seg->ssd_used += RecordBytes(r.size());
    auto it = objects_.find(key);
    if (it != objects_.end() && (!it->second.complete || it->second.size != r.size() ||
                                 it->second.checksum != r.checksum())) {
      Count("bad_reports");  // another object owns the key: the node must clear this record
      FreeSpace(key, seg->name, r.offset(), r.size(), r.generation(), seg->tier);
      continue;
    }
    if (it != objects_.end()) {
      bool twice = false;
      for (const ReplicaRec& have : it->second.replicas) twice |= have.segment == seg->name;
      if (twice) {  // a copy of it here already (a record whose free never reached the node)
        Count("duplicate_reports");
        FreeSpace(key, seg->name, r.offset(), r.size(), r.generation(), seg->tier);
        continue;
      }
    }
    if (it == objects_.end()) {
      Object o;
      o.size = r.size();
      o.checksum = r.checksum();
      o.complete = true;
      o.last_access_ns = now;
      it = objects_.emplace(key, std::move(o)).first;
    }
    ReplicaRec rep;
    rep.segment = seg->name;
    rep.offset = r.offset();
    rep.generation = r.generation();
    rep.tier = seg->tier;
    rep.state = ReplicaState::kComplete;
    it->second.replicas.push_back(rep);
    seg->next_generation = std::max(seg->next_generation, r.generation() + 1);
    Track(*seg, key);
    Count("objects_reported");
  }
  reply->set_heartbeat_ms(static_cast<uint64_t>(options_.heartbeat_ms));
  reply->set_node_ttl_ms(static_cast<uint64_t>(options_.node_ttl_ms));
  Count("mounts");
  return Status::Ok();
}

Status Master::Heartbeat(const proto::HeartbeatRequest& req, proto::HeartbeatReply* reply) {
  const proto::RequestHeader& h = req.header();
  if (h.term() != 0 && h.term() < term_) {  // a node from before a failover: re-report everything
    Stamp(reply->mutable_header());
    reply->set_remount(true);
    return Status::Ok();
  }
  RETURN_IF_ERROR(Check(h));
  Stamp(reply->mutable_header());
  auto nit = nodes_.find(req.node_id());
  if (nit == nodes_.end() || !nit->second.alive || nit->second.epoch != req.node_epoch()) {
    reply->set_remount(true);
    return Status::Ok();
  }
  Node& node = nit->second;
  node.last_seen_ns = Now();
  std::erase_if(node.pending, [&](const Pending& p) { return p.sent_seq != 0 && p.sent_seq <= req.acked_seq(); });
  for (const proto::DemoteResult& d : req.demoted()) {
    const Key key = FromProto(d.key());
    auto it = objects_.find(key);
    size_t dram = SIZE_MAX;
    if (it != objects_.end()) {
      for (size_t i = 0; i < it->second.replicas.size(); ++i) {
        const ReplicaRec& r = it->second.replicas[i];
        const Segment* s = FindSegment(r.segment);
        if (s && s->node == node.id && r.state == ReplicaState::kDemoting && r.generation == d.dram_generation()) {
          dram = i;
        }
      }
    }
    Segment* ssd = FindSegment(d.ssd_segment());
    if (dram == SIZE_MAX) {
      // The object went meanwhile: the SSD copy is an orphan. Unless this
      // is a result the master applied already (its reply was lost and the
      // node sent it again): then that copy is the object's SSD replica.
      bool applied = false;
      if (it != objects_.end()) {
        for (const ReplicaRec& r : it->second.replicas) {
          applied |= r.segment == d.ssd_segment() && r.offset == d.ssd_location();
        }
      }
      if (d.ok() && ssd && ssd->node == node.id && !applied) {
        Pending p;
        p.is_drop = true;
        *p.drop.mutable_key() = d.key();
        p.drop.set_location(d.ssd_location());
        node.pending.push_back(p);
      }
      continue;
    }
    Object& o = it->second;
    const bool copy = o.replicas[dram].copy;
    o.replicas[dram].copy = false;
    Segment* dseg = FindSegment(o.replicas[dram].segment);
    if (dseg && !copy) dseg->demoting_bytes -= std::min(dseg->demoting_bytes, RecordBytes(o.size));
    if (!d.ok() || !ssd || ssd->node != node.id || ssd->tier != proto::TIER_SSD) {
      o.replicas[dram].state = ReplicaState::kComplete;
      Count("demotions_failed");
      continue;
    }
    ReplicaRec rep;
    rep.segment = ssd->name;
    rep.offset = d.ssd_location();
    rep.generation = d.ssd_location();
    rep.tier = proto::TIER_SSD;
    rep.state = ReplicaState::kComplete;
    o.replicas.push_back(rep);
    ssd->ssd_used += RecordBytes(o.size);
    Track(*ssd, key);
    o.replicas[dram].state = ReplicaState::kComplete;
    if (copy) {
      Count("ssd_copies");
      continue;
    }
    DropReplica(key, dram);
    Count("demotions");
  }
  reply->set_seq(++node.seq);
  for (Pending& p : node.pending) {
    p.sent_seq = node.seq;
    if (p.is_drop) {
      *reply->add_ssd_drops() = p.drop;
    } else {
      *reply->add_frees() = p.free;
    }
  }
  for (proto::DemoteTask& t : node.demote) *reply->add_demote() = std::move(t);
  node.demote.clear();
  return Status::Ok();
}

Status Master::Unmount(const proto::UnmountRequest& req, proto::UnmountReply* reply) {
  RETURN_IF_ERROR(Check(req.header()));
  Stamp(reply->mutable_header());
  ForgetNode(req.node_id());
  nodes_.erase(req.node_id());
  return Status::Ok();
}

Status Master::GetSegmentDescriptor(const proto::GetSegmentDescriptorRequest& req,
                                    proto::GetSegmentDescriptorReply* reply) {
  RETURN_IF_ERROR(Check(req.header()));
  Stamp(reply->mutable_header());
  const Segment* seg = FindSegment(req.name());
  if (!seg || !seg->alive || seg->descriptor.empty()) return NotFound("segment '" + req.name() + "' is not mounted");
  reply->set_transfer_descriptor(seg->descriptor);
  return Status::Ok();
}

Status Master::Stat(const proto::StatRequest& req, proto::StatReply* reply) {
  RETURN_IF_ERROR(Check(req.header()));
  Stamp(reply->mutable_header());
  for (const auto& [name, seg] : segments_) {
    proto::SegmentStat* s = reply->add_segments();
    s->set_name(name);
    s->set_node_id(seg.node);
    s->set_tier(seg.tier);
    s->set_capacity(seg.capacity());
    s->set_used(seg.used());
    s->set_objects(seg.keys.size());
    s->set_alive(seg.alive && NodeOf(seg) && NodeOf(seg)->alive);
  }
  reply->set_objects(objects_.size());
  uint64_t alive = 0;
  for (const auto& [id, n] : nodes_) alive += n.alive;
  reply->set_nodes(alive);
  for (const auto& [k, v] : counters_) (*reply->mutable_counters())[k] = v;
  return Status::Ok();
}

}  // namespace crescent::store
