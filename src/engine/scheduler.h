// Scheduler: picks, each step, which sequences compute how many tokens, under a
// token budget and a cap on running sequences; first come, first served. Pure
// policy: no I/O, no model, no threads; the Engine applies its output.
//
// Each step:
//  1. Running sequences, oldest first: each asks for min(tokens left, budget)
//     tokens (1 in decode, a chunk in prefill). When pages run out the newest
//     running sequence is preempted (pages released, computed = 0, put back at the
//     head of the waiting queue; it recomputes later, outputs unchanged).
//  2. Waiting sequences, in order, while budget and seats remain: the prefix cache
//     (and an optional KvConnector) supply the longest cached prefix of whole
//     pages, pages are reserved for the first chunk, and it joins the running set.
//     A waiting sequence that does not fit stops admission (no overtaking).
//  After the step, Commit advances num_computed and keys the pages that filled.
//
// A sequence always computes at least its last token (a fully cached prompt still
// recomputes one token), so every step that reaches the end of its tokens yields
// logits to sample from.
// Thread-compatible: the engine's step thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "base/hash.h"
#include "engine/kv_cache.h"
#include "engine/kv_connector.h"
#include "engine/sequence.h"

namespace crescent::engine {

struct SchedulerConfig {
  int64_t max_num_seqs = 64;
  int64_t max_num_batched_tokens = 1024;
  bool enable_prefix_caching = true;
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

 private:
  // Fills seq->page_keys for every full page of its known tokens.
  void ExtendKeys(Sequence* seq) const;
  // Takes cached pages for the longest known prefix; returns tokens covered.
  int64_t TakeCachedPrefix(Sequence* seq);
  void Preempt(Sequence* seq);

  SchedulerConfig config_;
  KvPagePool* pool_;
  Hash128 fingerprint_;
  KvConnector* connector_;
  std::vector<Sequence*> running_;  // admission order
  std::deque<Sequence*> waiting_;
  int64_t prefix_query_tokens_ = 0, prefix_hit_tokens_ = 0, num_preemptions_ = 0;
};

}  // namespace crescent::engine
