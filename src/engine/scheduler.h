// Scheduler: picks, each step, which sequences compute how many tokens, under a
// token budget and a cap on running sequences; first come, first served. Pure
// policy: no I/O, no model, no threads; the Engine applies its output.
//
// Each step:
//  1. Running sequences, oldest first: each asks for min(tokens left, budget)
//     tokens (1 in decode, a chunk in prefill). When pages run out the newest
//     running sequence is preempted (pages released, computed = 0, put back at the
//     head of the waiting queue; it recomputes later, outputs unchanged).
//  0. Completions of the KvConnector's loads and saves (kv_connector.h) are
//     collected: a loaded sequence goes back to the head of the waiting queue
//     with its prefix in its pages (keyed into the prefix cache); a failed load
//     goes back to recompute (its local hit kept); a saved chunk's pages are
//     unpinned; failures are counted.
//  1. (as above)
//  2. Waiting sequences, in order, while budget and seats remain: the prefix cache
//     supplies the longest cached prefix of whole pages. When the connector
//     holds more whole chunks, pages are reserved for them, the load starts and
//     the sequence leaves the queue to wait in the loading state (it uses no
//     budget and no seat; the step goes on with the others; a sequence loads
//     from outside once per admission). Otherwise pages are reserved for its
//     first chunk and it joins the running set. A waiting sequence that does
//     not fit stops admission (no overtaking).
//  After the step, Commit advances num_computed, keys the pages that filled and
//  starts a save of every chunk that was completed, pinning its pages.
//  A sequence removed while it loads gives its pages to the load, which frees
//  them when it ends; WaitForKv (the engine's shutdown) waits for every load
//  and save.
//
// A sequence always computes at least its last token (a fully cached prompt still
// recomputes one token), so every step that reaches the end of its tokens yields
// logits to sample from.
// Thread-compatible: the engine's step thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "base/hash.h"
#include "engine/kv_cache.h"
#include "engine/kv_connector.h"
#include "engine/sequence.h"

namespace crescent::engine {

struct SchedulerConfig {
  int64_t max_num_seqs = 64;
  int64_t max_num_batched_tokens = 512;  // as EngineOptions
  bool enable_prefix_caching = true;
};

struct KvConnectorStats {
  int64_t loads = 0, load_failures = 0, loaded_tokens = 0;  // loaded_tokens: prompt tokens from outside
  int64_t saves = 0, save_failures = 0;
};

struct ScheduledSeq {
  Sequence* seq = nullptr;
  int64_t start = 0;       // = seq->num_computed before the step
  int64_t num_tokens = 0;  // tokens computed this step
  bool sample = false;     // the step reaches the end of seq->tokens
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> scheduled;
  std::vector<Sequence*> preempted;  // this step, for stats and tests
  int64_t num_tokens() const;
};

class Scheduler {
 public:
  // `connector` may be null. `fingerprint` salts the page keys (model identity).
  Scheduler(const SchedulerConfig& config, KvPagePool* pool, const Hash128& fingerprint,
            KvConnector* connector = nullptr);

  void Add(Sequence* seq);     // joins the back of the waiting queue
  void Remove(Sequence* seq);  // from wherever it is; releases its pages
  SchedulerOutput Schedule();
  void Commit(const SchedulerOutput& out);

  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t prefix_query_tokens() const { return prefix_query_tokens_; }
  int64_t prefix_hit_tokens() const { return prefix_hit_tokens_; }
  int64_t num_preemptions() const { return num_preemptions_; }
  int64_t num_loading() const { return static_cast<int64_t>(loads_.size()); }
  int64_t num_saving() const { return static_cast<int64_t>(saves_.size()); }
  bool has_pending_kv() const { return !loads_.empty() || !saves_.empty(); }
  const KvConnectorStats& kv_stats() const { return kv_stats_; }
  // Blocks (polling the connector) until no load or save is in flight.
  void WaitForKv();

 private:
  // Fills seq->page_keys for every full page of its known tokens.
  void ExtendKeys(Sequence* seq) const;
  // Takes cached pages for the longest known prefix; returns tokens covered.
  int64_t TakeCachedPrefix(Sequence* seq);
  void Preempt(Sequence* seq);
  // Collects the connector's completions (step 0 above).
  void CollectKv();
  // Starts loading seq's external prefix beyond `cached` tokens; true when the
  // sequence now waits for it.
  bool StartExternalLoad(Sequence* seq, int64_t cached);

  struct PendingLoad {
    Sequence* seq = nullptr;     // null once removed: the load owns `orphan`
    int64_t tokens = 0;          // covered once it ends
    size_t local_pages = 0;      // pages of the local hit (kept on failure)
    std::vector<int32_t> orphan;
  };

  SchedulerConfig config_;
  KvPagePool* pool_;
  Hash128 fingerprint_;
  KvConnector* connector_;
  std::vector<Sequence*> running_;  // admission order
  std::deque<Sequence*> waiting_;
  int64_t prefix_query_tokens_ = 0, prefix_hit_tokens_ = 0, num_preemptions_ = 0;
  std::unordered_map<uint64_t, PendingLoad> loads_;               // by sequence id
  std::unordered_map<uint64_t, std::vector<int32_t>> saves_;      // pinned pages, by save id
  uint64_t next_save_id_ = 1;
  KvConnectorStats kv_stats_;
};

}  // namespace crescent::engine
