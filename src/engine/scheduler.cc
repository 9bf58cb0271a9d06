#include "engine/scheduler.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace crescent::engine {

int64_t SchedulerOutput::num_tokens() const {
  int64_t n = 0;
  for (const auto& s : scheduled) n += s.num_tokens;
  return n;
}

Scheduler::Scheduler(const SchedulerConfig& config, KvPagePool* pool, const Hash128& fingerprint,
                     KvConnector* connector)
    : config_(config), pool_(pool), fingerprint_(fingerprint), connector_(connector) {
  CHECK_GT(config.max_num_seqs, 0);
  CHECK_GT(config.max_num_batched_tokens, 0);
}

void Scheduler::Add(Sequence* seq) { waiting_.push_back(seq); }

void Scheduler::Remove(Sequence* seq) {
  auto it = std::find(running_.begin(), running_.end(), seq);
  if (it != running_.end()) running_.erase(it);
  auto wt = std::find(waiting_.begin(), waiting_.end(), seq);
  if (wt != waiting_.end()) waiting_.erase(wt);
  auto lt = loads_.find(seq->id);
  if (lt != loads_.end() && lt->second.seq == seq) {
    // The connector is writing into its pages: they go when the load ends.
    lt->second.seq = nullptr;
    lt->second.orphan = std::move(seq->kv.pages);
    seq->kv = SequenceKv{};
  } else {
    pool_->Release(seq->kv);
  }
  seq->num_computed = 0;
}

void Scheduler::CollectKv() {
  if (connector_ == nullptr) return;
  const int64_t pt = pool_->shape().page_tokens;
  std::vector<KvCompletion> done = connector_->PollCompletions();
  // Loads that ended go back to the head of the queue in the order they were
  // admitted (by id, i.e. arrival), ahead of everything that waited behind them.
  std::vector<Sequence*> ready;
  for (const KvCompletion& c : done) {
    if (c.op == KvOp::kSave) {
      auto it = saves_.find(c.id);
      if (it == saves_.end()) continue;
      for (int32_t p : it->second) pool_->Unref(p);
      saves_.erase(it);
      if (!c.status.ok()) ++kv_stats_.save_failures;
      continue;
    }
    auto it = loads_.find(c.id);
    if (it == loads_.end()) continue;
    PendingLoad load = std::move(it->second);
    loads_.erase(it);
    if (load.seq == nullptr) {  // removed meanwhile
      for (int32_t p : load.orphan) pool_->Unref(p);
      continue;
    }
    Sequence* seq = load.seq;
    seq->external_prefix_ready = true;
    if (c.status.ok()) {
      seq->kv.num_tokens = load.tokens;
      kv_stats_.loaded_tokens +=
          std::max<int64_t>(0, std::min(load.tokens, seq->prompt_len) - static_cast<int64_t>(load.local_pages) * pt);
      // The loaded pages join the prefix cache: a later sequence (or this
      // one, should it be preempted) finds them locally.
      if (config_.enable_prefix_caching) {
        for (int64_t i = 0; i < load.tokens / pt; ++i) pool_->SetKey(seq->kv.pages[i], seq->page_keys[i]);
      }
    } else {
      ++kv_stats_.load_failures;
      for (size_t i = load.local_pages; i < seq->kv.pages.size(); ++i) pool_->Unref(seq->kv.pages[i]);
      seq->kv.pages.resize(load.local_pages);
      seq->kv.num_tokens = static_cast<int64_t>(load.local_pages) * pt;
    }
    ready.push_back(seq);
  }
  // Back in arrival order: before the first waiting sequence that came later.
  for (Sequence* seq : ready) {
    auto at = std::find_if(waiting_.begin(), waiting_.end(), [&](Sequence* w) { return w->id > seq->id; });
    waiting_.insert(at, seq);
  }
}

void Scheduler::WaitForKv() {
  while (has_pending_kv()) {
    CollectKv();
    if (has_pending_kv()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void Scheduler::ExtendKeys(Sequence* seq) const {
  ExtendPageKeys(seq->tokens, pool_->shape().page_tokens, fingerprint_, seq->page_keys);
}

int64_t Scheduler::TakeCachedPrefix(Sequence* seq) {
  const int64_t pt = pool_->shape().page_tokens;
  // Leave at least one token to compute: its logits are what we sample from.
  const int64_t max_pages = (seq->num_tokens() - 1) / pt;
  int64_t hit = 0;
  if (config_.enable_prefix_caching && !seq->no_prefix_reuse) {
    ExtendKeys(seq);
    for (; hit < max_pages; ++hit) {
      int32_t p = pool_->Lookup(seq->page_keys[hit]);
      if (p < 0) break;
      pool_->Ref(p);
      seq->kv.pages.push_back(p);
    }
  }
  return hit * pt;
}

bool Scheduler::StartExternalLoad(Sequence* seq, int64_t cached) {
  const int64_t pt = pool_->shape().page_tokens;
  const int64_t max_tokens = (seq->num_tokens() - 1) / pt * pt;
  if (connector_ == nullptr || seq->external_tried || cached >= max_tokens) return false;
  // Blocked for room before: ask again only once more pages are free.
  if (seq->external_retry_free >= 0 && pool_->num_free_pages() <= seq->external_retry_free) return false;
  seq->external_tried = true;
  ExtendKeys(seq);
  const int64_t ct = connector_->chunk_tokens();
  const int64_t pages_per_chunk = ct / pt;
  std::vector<Hash128> chunk_keys;
  for (int64_t c = 1; c * pages_per_chunk <= static_cast<int64_t>(seq->page_keys.size()); ++c) {
    chunk_keys.push_back(seq->page_keys[c * pages_per_chunk - 1]);
  }
  int64_t ext = connector_->ExternalPrefixTokens(seq->tokens, chunk_keys, cached);
  ext = std::min(ext, max_tokens);
  if (seq->max_external >= 0) ext = std::min(ext, seq->max_external);
  ext = ext / ct * ct;  // whole chunks only
  if (ext <= cached) return false;
  const size_t local_pages = seq->kv.pages.size();
  if (!pool_->Reserve(seq->kv, ext).ok()) {  // no room now: compute it, or load once pages are freed
    seq->external_tried = false;
    seq->external_retry_free = pool_->num_free_pages();
    return false;
  }
  seq->external_retry_free = -1;
  std::vector<KvChunkRef> chunks;
  for (int64_t c = cached / ct; c < ext / ct; ++c) {
    KvChunkRef ref;
    ref.key = chunk_keys[c];
    if (c > 0) ref.parent = chunk_keys[c - 1];
    ref.chunk_start = c * ct;
    ref.first_token = std::max(c * ct, cached);
    ref.pages.assign(seq->kv.pages.begin() + ref.first_token / pt, seq->kv.pages.begin() + (c + 1) * ct / pt);
    chunks.push_back(std::move(ref));
  }
  loads_[seq->id] = PendingLoad{seq, ext, local_pages, {}};
  ++kv_stats_.loads;
  connector_->StartLoad(seq->id, std::move(chunks), *pool_);
  return true;
}

void Scheduler::Preempt(Sequence* seq) {
  pool_->Release(seq->kv);  // full pages keep their keys: a resumed seq may hit them
  seq->num_computed = 0;
  seq->external_tried = false;  // what left the pool may be loaded again
  ++seq->num_preemptions;
  ++num_preemptions_;
  waiting_.push_front(seq);
}

SchedulerOutput Scheduler::Schedule() {
  CollectKv();
  SchedulerOutput out;
  int64_t budget = config_.max_num_batched_tokens;
  // 1. Running sequences, oldest first.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* seq = running_[i];
    const int64_t n = std::min(seq->num_tokens() - seq->num_computed, budget);
    if (n <= 0) {
      ++i;
      continue;
    }
    bool self_preempted = false;
    while (!pool_->Reserve(seq->kv, seq->num_computed + n).ok()) {
      Sequence* victim = running_.back();
      running_.pop_back();
      Preempt(victim);
      out.preempted.push_back(victim);
      if (victim == seq) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;  // seq was the newest; nothing after it remains
    out.scheduled.push_back({seq, seq->num_computed, n, seq->num_computed + n == seq->num_tokens()});
    budget -= n;
    ++i;
  }
  // 2. Waiting sequences, in order; none are admitted after a preemption this step.
  // Sequences loading their prefix hold seats too.
  while (out.preempted.empty() && budget > 0 && !waiting_.empty() &&
         static_cast<int64_t>(running_.size() + loads_.size()) < config_.max_num_seqs) {
    Sequence* seq = waiting_.front();
    int64_t cached;
    if (seq->external_prefix_ready) {  // back from a load: its prefix is in its pages
      seq->external_prefix_ready = false;
      cached = seq->kv.num_tokens;
    } else {
      cached = TakeCachedPrefix(seq);
      if (StartExternalLoad(seq, cached)) {
        waiting_.pop_front();  // waits in loads_; the others go on
        continue;
      }
    }
    const int64_t n = std::min(seq->num_tokens() - cached, budget);
    if (!pool_->Reserve(seq->kv, cached + n).ok()) {
      // Sequences behind it that are back from a load hold pages nobody
      // computes with: give them to the prefix cache (they take them back by
      // key when their turn comes), or the head could wait on them forever.
      bool gave = false;
      for (Sequence* w : waiting_) {
        if (w == seq || !w->external_prefix_ready) continue;
        pool_->Release(w->kv);
        w->external_prefix_ready = false;
        w->external_tried = false;  // what the cache loses of it may be loaded again
        gave = true;
      }
      if (!gave || !pool_->Reserve(seq->kv, cached + n).ok()) {
        pool_->Release(seq->kv);
        break;
      }
    }
    seq->num_computed = cached;
    seq->kv.num_tokens = cached;
    if (!seq->admitted_once) {
      seq->admitted_once = true;
      seq->cached_prompt_tokens = std::min(cached, seq->prompt_len);
      prefix_query_tokens_ += seq->prompt_len;
      prefix_hit_tokens_ += seq->cached_prompt_tokens;
    }
    waiting_.pop_front();
    running_.push_back(seq);
    out.scheduled.push_back({seq, cached, n, cached + n == seq->num_tokens()});
    budget -= n;
  }
  return out;
}

void Scheduler::Commit(const SchedulerOutput& out) {
  const int64_t pt = pool_->shape().page_tokens;
  for (const ScheduledSeq& s : out.scheduled) {
    Sequence* seq = s.seq;
    seq->num_computed = s.start + s.num_tokens;
    seq->kv.num_tokens = seq->num_computed;
    if (connector_ != nullptr) {
      ExtendKeys(seq);
      const int64_t ct = connector_->chunk_tokens(), per = ct / pt;
      for (int64_t c = s.start / ct; (c + 1) * ct <= seq->num_computed; ++c) {
        if ((c + 1) * ct <= s.start) continue;  // saved by an earlier step
        KvChunkRef ref{seq->page_keys[(c + 1) * per - 1], c > 0 ? seq->page_keys[c * per - 1] : Hash128{}, c * ct, c * ct,
                       std::vector<int32_t>(seq->kv.pages.begin() + c * per, seq->kv.pages.begin() + (c + 1) * per)};
        for (int32_t p : ref.pages) pool_->Ref(p);  // pinned until the save ends
        const uint64_t id = next_save_id_++;
        saves_[id] = ref.pages;
        ++kv_stats_.saves;
        connector_->StartSave(id, std::move(ref), *pool_);
      }
    }
    if (!config_.enable_prefix_caching) continue;
    ExtendKeys(seq);
    const int64_t full = std::min<int64_t>(seq->num_computed / pt, static_cast<int64_t>(seq->page_keys.size()));
    for (int64_t i = s.start / pt; i < full; ++i) pool_->SetKey(seq->kv.pages[i], seq->page_keys[i]);
  }
}

}  // namespace crescent::engine
