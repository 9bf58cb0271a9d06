// LiveClusterView: the ClusterView of a real cluster, built from what its
// instances report (docs/cluster.md). The front feeds it; the same policies
// as the simulator's read it.
//
// Per instance (a slot, from AddInstance to RemoveInstance):
//   cache     the keys its prefix cache holds, followed through its KV events
//             (epoch, sequence number): a batch that continues the last seen
//             seq is applied; a resync replaces the set; a new epoch (the
//             process restarted) drops what was known of the old one
//   load      a prefill instance's queue (FIFO, the first running, its age)
//             and a decode instance's live requests, KV tokens and free KV,
//             as of its last report
//   placed    what the front placed since: a prefill placement counts in
//             the queue at once (before any report lists it) until the
//             front ends it; a decode placement counts until the first
//             report after the front saw it start (the report then counts it)
// The view is eventually consistent: a prefix it believes cached may be gone
// (the instance recomputes). An instance whose last report is older than
// `stale_s` is saturated: it is not a candidate while another is (when all
// are stale, the stale ones still serve). One that the front marked
// unresponsive, or that never reported, is no candidate at all (the front
// cancels the calls on it; with none left a request gets 503). Freeze(now) fixes the candidates the
// ClusterView methods index (0..num_prefill()-1 over candidate prefill
// instances); call it before each Place.
// No I/O; time is an argument. Thread-compatible: the front holds one lock
// around Apply/Freeze/Place.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "conductor/cluster_view.h"

namespace crescent::conductor {

// One instance's report, decoded (the front turns its proto into this).
struct InstanceReport {
  uint64_t epoch = 0;
  uint64_t last_seq = 0;
  bool resync = false;
  struct Event {
    uint64_t seq = 0;  // the instance's sequence number (0: not told)
    bool stored = true;
    BlockKey key;
  };
  std::vector<Event> events;      // after the seq asked for, oldest first
  std::vector<BlockKey> held;     // on a resync
  struct Job {
    uint64_t placement_id = 0;
    PrefillWork work;
    bool running = false;
    double running_s = 0;         // how long it has run
  };
  std::vector<Job> jobs;          // prefill: FIFO
  DecodeLoad decode;              // decode: live requests, their KV tokens, free KV
};

struct LiveViewOptions {
  int64_t block_tokens = 256;  // the block keys' granularity
  double stale_s = 2.0;
  // Where a prefix an instance does not hold can be fetched from. In
  // crescent an instance loads KV from the shared store only (its chunks,
  // the master's index: set_store_blocks), never from another instance's
  // cache, so BestPrefix is the store's. The simulator's cluster fetches
  // from the instances' caches: true replays that world.
  bool fetch_from_instances = false;
};

class LiveClusterView final : public ClusterView {
 public:
  explicit LiveClusterView(LiveViewOptions options) : opt_(options) {}

  // Slots are never reused.
  int AddInstance(bool prefill, std::string name);
  void RemoveInstance(int slot);
  void SetResponsive(int slot, bool responsive);
  // (epoch, seq) to ask the instance's events after.
  std::pair<uint64_t, uint64_t> Cursor(int slot) const;
  void Apply(int slot, const InstanceReport& report, double now_s);

  void PlacePrefill(int slot, uint64_t placement_id, PrefillWork work, double now_s);
  void EndPrefill(int slot, uint64_t placement_id);
  void PlaceDecode(int slot, uint64_t placement_id, int64_t context_tokens, int64_t need_tokens);
  // Its KV is reserved there: the instance's reports count that room as taken now.
  void DecodeReserved(int slot, uint64_t placement_id);
  void DecodeStarted(int slot, uint64_t placement_id);  // counted by the instance's next report
  void EndDecode(int slot, uint64_t placement_id);      // failed before it started

  void Freeze(double now_s);
  int prefill_slot(int index) const { return cand_prefill_[index]; }
  int decode_slot(int index) const { return cand_decode_[index]; }
  // The longest prefix the shared store holds for the request being placed
  // (the master's key index), in blocks; BestPrefix names kSharedStore for
  // it (beside the instances' caches with fetch_from_instances, when longer).
  void set_store_blocks(int64_t blocks) { store_blocks_ = blocks; }

  // ClusterView, over the candidates of the last Freeze.
  int num_prefill() const override { return static_cast<int>(cand_prefill_.size()); }
  int num_decode() const override { return static_cast<int>(cand_decode_.size()); }
  int64_t PrefixBlocks(int prefill, std::span<const BlockKey> keys) const override;
  PrefixHolder BestPrefix(std::span<const BlockKey> keys) const override;
  PrefillLoad GetPrefillLoad(int prefill) const override;
  DecodeLoad GetDecodeLoad(int decode) const override;

  // For /metrics and tests.
  size_t held_keys(int slot) const;
  // How many prefill instances (responsive or not) hold `key` in their cache.
  int Holders(const BlockKey& key) const;
  int64_t resyncs() const { return resyncs_; }
  int64_t events_applied() const { return events_applied_; }
  bool known(int slot) const { return slots_.contains(slot); }

 private:
  struct Slot {
    bool prefill = true;
    std::string name;
    bool responsive = true;
    uint64_t epoch = 0, seq = 0;
    double reported_s = -1;  // never reported
    std::unordered_set<BlockKey, BlockKeyHasher> held;
    std::vector<InstanceReport::Job> jobs;  // as reported
    DecodeLoad decode;
    struct Placed {
      PrefillWork work;
      double placed_s = 0;
      int64_t context = 0, need = 0;
      bool started = false;
    };
    std::map<uint64_t, Placed> placed;  // by placement id
    std::unordered_set<uint64_t> ended;  // prefill placements ended since the last report
    // Built by Freeze for GetPrefillLoad's span.
    std::vector<PrefillWork> queued;
    PrefillLoad load;
  };
  LiveViewOptions opt_;
  std::map<int, Slot> slots_;
  int next_slot_ = 0;
  std::vector<int> cand_prefill_, cand_decode_;
  int64_t store_blocks_ = 0;
  int64_t resyncs_ = 0, events_applied_ = 0;
};

}  // namespace crescent::conductor
