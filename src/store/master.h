// Master: the KV store's metadata (never its bytes): objects and their
// replicas, the nodes and their segments, allocation, leases, eviction and
// demotion to SSD. Pure policy: no I/O and no threads; time comes from an
// injected Clock, so tests drive it with a ManualClock. The gRPC service
// (master_server.h) and the in-process store (LocalMaster, master_api.h)
// wrap one Master behind a mutex. Requests and replies are the proto messages of
// proto/store.proto, so both paths run this same code.
//
// Object life: PutStart allocates `replicas` records on distinct nodes
// (WRITING, invisible) -> the writer writes the bytes and the header -> PutEnd
// (with the checksum, computed while the bytes were copied) makes it
// COMPLETE (visible), or a revoke / the put timeout frees it.
// Objects are immutable and content-addressed: a PutStart of a complete key
// answers `exists` and writes nothing.
//
// Placement: the first replica goes to the writer's own node when it has room,
// the others by power-of-two choices on free space, each candidate's score
// scaled by a ramp (0.05 -> 1 over ramp_ms after its segment mounted) so a node
// that just joined or restarted empty does not attract every put.
//
// Leases and generations: Get leases the object for lease_ms; a leased object
// is neither evicted nor freed (a Remove hides it at once and frees its space
// when the lease ends). Every allocation gets a new generation; the record
// header carries it and readers compare it with the one Get returned.
//
// Eviction, per segment: above high_watermark, down to low_watermark,
// approximate LRU (a sample of kSample objects) preferring leaves of prefix
// chains (objects no cached object names as parent); never a leased or a
// WRITING object. With an SSD segment on the same node, victims are demoted
// (the node copies the record; the DRAM replica stays readable until the
// node reports the copy) instead of dropped. A put that finds no room evicts
// synchronously in its target segment (drops, never waits), else fails.
//
// Membership: nodes Mount their segments and heartbeat. A node silent for
// node_ttl_ms loses its DRAM replicas from the index; its SSD replicas go
// DISCONNECTED for ssd_grace_ms and come back if it remounts and re-reports
// them. Heartbeat replies carry frees (records the node must clear) and
// frees and SSD drops, resent until the node acknowledges them, and demotion
// tasks, sent once (a lost one times out after demote_timeout_ms).
//
// HA: the master serves under a term (the leader key's etcd revision).
// Replies carry it; a request stamped with an older term is refused with
// Unavailable (the caller learns the term and retries), and so is one
// stamped with a newer term, which means this master was deposed. A new leader starts empty and rebuilds from re-reports (Mount
// with the node's objects); until a node re-reported, nothing is allocated in
// its segments, and after a re-report (Mount with `remount`) its DRAM free
// space stays unallocated for write_grace_ms, the longest a write of a put
// placed by the old leader can still land, so no space is handed out twice.
// PutEnd is idempotent for a retry (an ended put id answers as it did), and
// put ids start at a random value per master, so a PutEnd from before a
// failover never ends another writer's put.
//
// Thread-safety: none (one caller at a time).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/hash.h"
#include "base/status.h"
#include "proto/store.pb.h"
#include "store/range_allocator.h"
#include "store/record.h"

namespace crescent::store {

struct MasterOptions {
  uint32_t default_replicas = 1;
  uint32_t max_replicas = 3;
  double high_watermark = 0.90;
  double low_watermark = 0.80;
  int64_t lease_ms = 5'000;
  int64_t put_timeout_ms = 30'000;  // > the writers' transfer timeout, so late writes have ended
  int64_t heartbeat_ms = 1'000;
  int64_t node_ttl_ms = 10'000;
  int64_t ssd_grace_ms = 120'000;
  int64_t ramp_ms = 30'000;
  int64_t demote_timeout_ms = 15'000;
  // >= the writers' transfer timeout (their late writes have ended by then).
  int64_t write_grace_ms = 10'000;
  // Every object put on a node with an SSD tier is also copied there at once
  // (the DRAM copy stays): what a node holds survives its restart.
  bool ssd_write_through = false;
  uint64_t max_object_bytes = uint64_t{1} << 30;
  // The model whose KV this store holds; zero: bound to the first client
  // that states one. Untyped clients (zero fingerprint) are always served.
  Hash128 fingerprint;
  uint64_t seed = 1;
};

class Master {
 public:
  static constexpr int kSample = 16;

  Master(MasterOptions options, const Clock* clock);

  // Starts serving as leader under `term` (>= 1). Clears nothing: a new
  // Master is empty; the service makes a new one per term.
  void SetTerm(uint64_t term) { term_ = term; }
  uint64_t term() const { return term_; }
  const MasterOptions& options() const { return options_; }

  Status PutStart(const proto::PutStartRequest& req, proto::PutStartReply* reply);
  Status PutEnd(const proto::PutEndRequest& req, proto::PutEndReply* reply);
  Status Get(const proto::GetRequest& req, proto::GetReply* reply);
  Status Exists(const proto::ExistsRequest& req, proto::ExistsReply* reply);
  Status Remove(const proto::RemoveRequest& req, proto::RemoveReply* reply);
  Status ReportBadReplica(const proto::ReportBadReplicaRequest& req, proto::ReportBadReplicaReply* reply);
  Status Mount(const proto::MountRequest& req, proto::MountReply* reply);
  Status Heartbeat(const proto::HeartbeatRequest& req, proto::HeartbeatReply* reply);
  Status Unmount(const proto::UnmountRequest& req, proto::UnmountReply* reply);
  Status GetSegmentDescriptor(const proto::GetSegmentDescriptorRequest& req, proto::GetSegmentDescriptorReply* reply);
  Status Stat(const proto::StatRequest& req, proto::StatReply* reply);

  // Expires nodes, puts, demotions and leases' deferred frees; evicts above
  // the watermarks. Call every ~100 ms.
  void Tick();

  // For tests and /metrics.
  size_t objects() const { return objects_.size(); }
  const std::map<std::string, double>& counters() const { return counters_; }
  uint64_t SegmentUsed(const std::string& segment) const;

 private:
  enum class ReplicaState { kWriting, kComplete, kDemoting, kDisconnected };
  struct ReplicaRec {
    std::string segment;
    uint64_t offset = 0;
    uint64_t generation = 0;
    proto::Tier tier = proto::TIER_DRAM;
    ReplicaState state = ReplicaState::kWriting;
    int64_t until_ns = 0;  // kDemoting: give up after; kDisconnected: drop after
    bool copy = false;     // kDemoting for write-through: the DRAM copy stays
  };
  struct Object {
    uint64_t size = 0;
    uint64_t checksum = 0;
    bool complete = false;
    std::vector<ReplicaRec> replicas;
    int64_t last_access_ns = 0;
    int64_t lease_until_ns = 0;
    bool has_parent = false;
    Key parent;
    int32_t children = 0;  // cached objects naming this one as parent
    uint64_t put_id = 0;
    int64_t put_deadline_ns = 0;
  };
  struct Segment {
    std::string name;
    std::string node;
    proto::Tier tier = proto::TIER_DRAM;
    uint64_t epoch = 0;
    RangeAllocator alloc;     // DRAM; SSD space is the node's, counted in ssd_used
    uint64_t ssd_capacity = 0;
    uint64_t ssd_used = 0;
    uint64_t demoting_bytes = 0;  // DRAM records being copied to SSD (freed when done)
    int64_t mounted_ns = 0;
    int64_t grace_until_ns = 0;  // remounted: no allocation before (old leader's writes may land)
    uint64_t next_generation = 1;
    bool alive = true;
    std::string descriptor;  // the transfer engine's, as the node sent it
    std::vector<Key> keys;    // objects with a replica here (for sampling)
    std::unordered_map<Key, size_t, Hash128Hasher> key_pos;
    uint64_t capacity() const;
    uint64_t used() const;
  };
  struct Pending {  // a heartbeat task, resent until acknowledged
    uint64_t sent_seq = 0;  // the last reply it went out in
    proto::FreedRange free;
    bool is_drop = false;
    proto::SsdDrop drop;
  };
  struct Node {
    std::string id;
    std::string address;
    uint64_t epoch = 0;
    int64_t last_seen_ns = 0;
    bool alive = true;
    std::vector<std::string> segments;
    uint64_t seq = 0;
    std::vector<Pending> pending;          // frees and SSD drops not yet acknowledged
    std::vector<proto::DemoteTask> demote;  // to send in the next reply
    int64_t grace_until_ns = 0;             // dead: its SSD replicas are dropped after this
  };
  struct Deferred {
    int64_t at_ns = 0;
    Key key;
    std::string segment;
    uint64_t offset = 0, size = 0, generation = 0;
    proto::Tier tier = proto::TIER_DRAM;
  };

  Status Check(const proto::RequestHeader& h);
  void RememberEnd(uint64_t put_id);
  void Stamp(proto::ReplyHeader* h) const { h->set_term(term_); }
  void Count(const std::string& name, double by = 1) { counters_[name] += by; }
  int64_t Now() const { return clock_->NowNanos(); }
  int64_t Ms(int64_t ms) const { return ms * 1'000'000; }

  Segment* FindSegment(const std::string& name);
  const Node* NodeOf(const Segment& s) const;
  bool Allocatable(const Segment& s) const;
  double Score(const Segment& s, uint64_t bytes) const;
  // A record of `bytes` in `seg`, evicting there if it does not fit.
  bool AllocateIn(Segment& seg, uint64_t bytes, ReplicaRec* out);
  // Placement of `n` new replicas of `bytes`, none on `exclude_nodes`.
  std::vector<ReplicaRec> Place(const std::string& client_node, uint64_t bytes, uint32_t n);
  void FillReplica(const ReplicaRec& r, proto::Replica* out) const;

  void Track(Segment& seg, const Key& key);
  void Untrack(Segment& seg, const Key& key);
  // Frees a replica's space now (or when its lease ends) and tells the node.
  void ReleaseReplica(const Key& key, const Object& obj, const ReplicaRec& r);
  void FreeSpace(const Key& key, const std::string& segment, uint64_t offset, uint64_t size, uint64_t generation,
                 proto::Tier tier);
  void DropReplica(const Key& key, size_t index);  // erases the object when none is left
  void EraseObject(const Key& key);
  // Evicts (or, with may_demote, starts demoting) one object of `seg`;
  // false when nothing there may go.
  bool EvictOne(Segment& seg, bool may_demote);
  // Asks seg's node to copy the replica to `ssd`; with `copy` the DRAM one stays.
  void StartDemotion(Segment& seg, const Key& key, Object& o, size_t replica, bool copy);
  // An SSD segment of `node` with room for `bytes` (dropping old SSD objects).
  Segment* SsdOf(const std::string& node, uint64_t bytes);
  void ExpireNode(Node& node);
  void ForgetNode(const std::string& node_id);  // drops every replica and segment of it
  bool Readable(const ReplicaRec& r) const {
    return r.state == ReplicaState::kComplete || r.state == ReplicaState::kDemoting;
  }

  MasterOptions options_;
  const Clock* clock_;
  uint64_t term_ = 1;
  Hash128 fingerprint_;
  std::mt19937_64 rng_;
  uint64_t next_put_id_ = 1;  // random start per master (see HA above)
  // Results of recently ended puts, for retried PutEnds; bounded (FIFO).
  std::unordered_map<uint64_t, int32_t> ended_;
  std::vector<uint64_t> ended_order_;
  size_t ended_next_ = 0;
  std::unordered_map<Key, Object, Hash128Hasher> objects_;
  std::map<std::string, Segment> segments_;
  std::map<std::string, Node> nodes_;
  std::vector<Deferred> deferred_;
  std::multimap<int64_t, Key> put_deadlines_;  // WRITING objects by deadline
  std::vector<std::pair<int64_t, Key>> demoting_;  // (give-up time, key) of demotions started
  std::map<std::string, double> counters_;
};

}  // namespace crescent::store
