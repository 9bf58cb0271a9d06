// The scheduler as pure policy, on a small page pool and a fake KvConnector
// whose loads and saves end when the test says: budget and seats, FCFS,
// preemption, the prefix cache, and the asynchronous seam (a loading sequence
// waits in its own state while others run; a failed load recomputes; saved
// pages stay pinned until the save ends; a removed loading sequence's pages
// wait for its load; the queue head loads once, not every step).
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <unordered_map>

namespace crescent::engine {
namespace {

constexpr int64_t kPage = 4, kChunk = 8;

KvCacheShape Shape() {
  KvCacheShape s;
  s.num_layers = 1;
  s.kv_heads = 1;
  s.head_dim = 2;
  s.page_tokens = kPage;
  s.dtype = DType::kF32;
  return s;
}

class FakeConnector final : public KvConnector {
 public:
  int64_t chunk_tokens() const override { return kChunk; }
  int64_t ExternalPrefixTokens(std::span<const int32_t>, std::span<const Hash128> keys, int64_t hit) override {
    ++lookups;
    int64_t n = 0;
    while (n < static_cast<int64_t>(keys.size()) && have.count(keys[n])) ++n;
    return n * kChunk > hit ? n * kChunk : 0;
  }
  void StartLoad(uint64_t id, std::vector<KvChunkRef> chunks, KvPageAccess&) override { loads[id] = std::move(chunks); }
  void StartSave(uint64_t id, KvChunkRef chunk, KvPageAccess&) override { saves[id] = std::move(chunk); }
  std::vector<KvCompletion> PollCompletions() override {
    std::vector<KvCompletion> out;
    out.swap(done);
    return out;
  }
  void EndLoad(uint64_t id, Status s = Status::Ok()) {
    done.push_back({KvOp::kLoad, id, s});
    loads.erase(id);
  }
  void EndSave(uint64_t id, Status s = Status::Ok()) {
    done.push_back({KvOp::kSave, id, s});
    saves.erase(id);
  }

  std::unordered_map<Hash128, int, Hash128Hasher> have;
  std::map<uint64_t, std::vector<KvChunkRef>> loads;
  std::map<uint64_t, KvChunkRef> saves;
  std::vector<KvCompletion> done;
  int lookups = 0;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void Make(int64_t pages, SchedulerConfig c = {}, bool with_connector = false) {
    pool_ = std::make_unique<KvPagePool>(Shape(), pages);
    sched_ = std::make_unique<Scheduler>(c, pool_.get(), fp_, with_connector ? &conn_ : nullptr);
  }
  Sequence* Seq(uint64_t id, int64_t prompt, int salt = 0) {
    auto s = std::make_unique<Sequence>();
    s->id = id;
    for (int64_t i = 0; i < prompt; ++i) s->tokens.push_back(static_cast<int32_t>(i * 13 + salt));
    s->prompt_len = prompt;
    s->max_tokens = 100;
    seqs_.push_back(std::move(s));
    return seqs_.back().get();
  }
  // One step: schedule, pretend to compute, commit, append a sampled token.
  SchedulerOutput Step() {
    SchedulerOutput out = sched_->Schedule();
    sched_->Commit(out);
    for (const ScheduledSeq& s : out.scheduled) {
      if (s.sample) s.seq->tokens.push_back(7);
    }
    return out;
  }
  static bool Has(const SchedulerOutput& o, const Sequence* s) {
    return std::any_of(o.scheduled.begin(), o.scheduled.end(), [&](const ScheduledSeq& x) { return x.seq == s; });
  }
  // The connector holds every whole chunk of `s`'s prompt.
  void Publish(Sequence* s) {
    Hash128 parent;
    for (int64_t p = 0; (p + 1) * kPage <= s->prompt_len; ++p) {
      parent = PageKey(parent, std::span<const int32_t>(s->tokens.data() + p * kPage, kPage), fp_);
      if ((p + 1) % (kChunk / kPage) == 0) conn_.have[parent] = 1;
    }
  }

  Hash128 fp_{1, 2};
  FakeConnector conn_;
  std::unique_ptr<KvPagePool> pool_;
  std::unique_ptr<Scheduler> sched_;
  std::vector<std::unique_ptr<Sequence>> seqs_;
};

TEST_F(SchedulerTest, BudgetSeatsAndFirstComeFirstServed) {
  SchedulerConfig c;
  c.max_num_batched_tokens = 10;
  c.max_num_seqs = 2;
  Make(64, c);
  Sequence *a = Seq(1, 6), *b = Seq(2, 6), *d = Seq(3, 6);
  sched_->Add(a);
  sched_->Add(b);
  sched_->Add(d);
  SchedulerOutput o = Step();
  ASSERT_EQ(o.scheduled.size(), 2u);
  EXPECT_EQ(o.scheduled[0].seq, a);
  EXPECT_EQ(o.scheduled[0].num_tokens, 6);
  EXPECT_EQ(o.scheduled[1].seq, b);
  EXPECT_EQ(o.scheduled[1].num_tokens, 4) << "the rest of the budget";
  EXPECT_TRUE(o.scheduled[0].sample);
  EXPECT_FALSE(o.scheduled[1].sample);
  EXPECT_EQ(sched_->num_waiting(), 1) << "no third seat";
  o = Step();
  EXPECT_EQ(o.scheduled[0].num_tokens, 1) << "a decodes one token";
  EXPECT_EQ(o.scheduled[1].num_tokens, 2);
  EXPECT_TRUE(o.scheduled[1].sample);
}

TEST_F(SchedulerTest, OutOfPagesTheNewestIsPreemptedAndRecomputes) {
  Make(4);
  Sequence *a = Seq(1, 7), *b = Seq(2, 7);
  sched_->Add(a);
  sched_->Add(b);
  Step();  // 7 tokens each in 2 pages, one sampled
  Step();  // the 8th token fills the second page
  SchedulerOutput o = Step();  // a needs a third page: b goes
  ASSERT_EQ(o.preempted.size(), 1u);
  EXPECT_EQ(o.preempted[0], b);
  EXPECT_EQ(b->num_computed, 0);
  EXPECT_TRUE(b->kv.pages.empty());
  EXPECT_EQ(sched_->num_preemptions(), 1);
  EXPECT_EQ(sched_->num_waiting(), 1);
}

TEST_F(SchedulerTest, APrefixCacheHitLeavesTheLastTokenToCompute) {
  Make(64);
  Sequence* a = Seq(1, 12);
  sched_->Add(a);
  Step();
  sched_->Remove(a);
  Sequence* b = Seq(2, 12);  // the same prompt
  sched_->Add(b);
  SchedulerOutput o = Step();
  ASSERT_EQ(o.scheduled.size(), 1u);
  EXPECT_EQ(o.scheduled[0].start, 8) << "2 of 3 full pages hit; the last page is recomputed for its logits";
  EXPECT_EQ(b->cached_prompt_tokens, 8);
  EXPECT_EQ(sched_->prefix_hit_tokens(), 8);
  EXPECT_EQ(sched_->prefix_query_tokens(), 24);
}

TEST_F(SchedulerTest, ALoadingSequenceWaitsInItsOwnStateWhileOthersRun) {
  Make(64, SchedulerConfig{}, /*with_connector=*/true);
  Sequence* longs = Seq(1, 26);
  Publish(longs);
  Sequence* other = Seq(2, 5, 99);
  sched_->Add(longs);
  sched_->Add(other);
  SchedulerOutput o = Step();
  ASSERT_EQ(conn_.loads.size(), 1u);
  const std::vector<KvChunkRef>& chunks = conn_.loads.at(1);
  ASSERT_EQ(chunks.size(), 3u) << "24 of 26 tokens in whole 8-token chunks";
  EXPECT_EQ(chunks[0].pages.size(), 2u);
  EXPECT_FALSE(Has(o, longs)) << "it computes nothing while loading";
  EXPECT_TRUE(Has(o, other)) << "the next one is admitted meanwhile";
  EXPECT_EQ(sched_->num_loading(), 1);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Has(Step(), other)) << "steps go on without the load";
  EXPECT_EQ(conn_.lookups, 2) << "one lookup per admission: the loading one is not re-planned every step";
  conn_.EndLoad(1);
  o = Step();
  ASSERT_TRUE(Has(o, longs));
  for (const ScheduledSeq& s : o.scheduled) {
    if (s.seq == longs) {
      EXPECT_EQ(s.start, 24) << "computes only past the loaded prefix";
    }
  }
  EXPECT_EQ(longs->cached_prompt_tokens, 24);
  EXPECT_EQ(sched_->kv_stats().loaded_tokens, 24);
  EXPECT_EQ(sched_->num_loading(), 0);
  // The loaded pages joined the prefix cache.
  sched_->Remove(longs);
  Sequence* again = Seq(3, 26);
  sched_->Add(again);
  Step();
  EXPECT_EQ(again->cached_prompt_tokens, 24);
  EXPECT_TRUE(conn_.loads.empty()) << "a local hit needs no load";
}

TEST_F(SchedulerTest, AFailedLoadFallsBackToRecompute) {
  Make(64, SchedulerConfig{}, true);
  Sequence* s = Seq(1, 26);
  Publish(s);
  sched_->Add(s);
  Step();
  const int64_t free_before = pool_->num_free_pages();
  conn_.EndLoad(1, Unavailable("store gone"));
  SchedulerOutput o = Step();
  ASSERT_TRUE(Has(o, s));
  EXPECT_EQ(o.scheduled[0].start, 0) << "recomputed from the start";
  EXPECT_EQ(sched_->kv_stats().load_failures, 1);
  EXPECT_EQ(sched_->kv_stats().loads, 1) << "no second load";
  EXPECT_EQ(s->cached_prompt_tokens, 0);
  EXPECT_EQ(pool_->num_free_pages(), free_before - 1) << "the load's 6 pages went back; 7 hold the 26 tokens computed";
}

TEST_F(SchedulerTest, SavedPagesStayPinnedUntilTheSaveEndsAndFailuresCount) {
  Make(8, SchedulerConfig{}, true);
  Sequence* s = Seq(1, 17);
  sched_->Add(s);
  Step();  // 17 tokens: two whole chunks computed -> two saves
  ASSERT_EQ(conn_.saves.size(), 2u);
  std::vector<int32_t> pinned;
  for (auto& [id, c] : conn_.saves) pinned.insert(pinned.end(), c.pages.begin(), c.pages.end());
  EXPECT_EQ(pinned.size(), 4u);
  sched_->Remove(s);
  for (int32_t p : pinned) EXPECT_EQ(pool_->ref_count(p), 1) << "pinned by its save after the sequence went";
  EXPECT_EQ(pool_->num_free_pages(), 8 - 4);
  const uint64_t first = conn_.saves.begin()->first, second = std::next(conn_.saves.begin())->first;
  conn_.EndSave(first);
  conn_.EndSave(second, Internal("put failed"));
  sched_->Schedule();  // collects completions
  for (int32_t p : pinned) EXPECT_EQ(pool_->ref_count(p), 0);
  EXPECT_EQ(pool_->num_free_pages(), 8);
  EXPECT_EQ(sched_->kv_stats().saves, 2);
  EXPECT_EQ(sched_->kv_stats().save_failures, 1);
  EXPECT_FALSE(sched_->has_pending_kv());
}

TEST_F(SchedulerTest, ARemovedLoadingSequenceLeavesItsPagesToTheLoad) {
  Make(16, SchedulerConfig{}, true);
  Sequence* s = Seq(1, 26);
  Publish(s);
  sched_->Add(s);
  Step();
  const int64_t used = pool_->num_pages() - pool_->num_free_pages();
  EXPECT_GE(used, 6);
  sched_->Remove(s);
  EXPECT_EQ(pool_->num_pages() - pool_->num_free_pages(), used) << "the connector still writes them";
  EXPECT_TRUE(sched_->has_pending_kv());
  conn_.EndLoad(1);
  sched_->WaitForKv();
  EXPECT_EQ(pool_->num_free_pages(), 16);
}

TEST_F(SchedulerTest, NoRoomForTheExternalPrefixComputesIt) {
  SchedulerConfig c;
  c.max_num_batched_tokens = 8;
  Make(5, c, true);  // the 24-token external prefix needs 6 pages; a first 8-token chunk needs 2
  Sequence* s = Seq(1, 26);
  Publish(s);
  sched_->Add(s);
  SchedulerOutput o = sched_->Schedule();
  EXPECT_TRUE(conn_.loads.empty());
  ASSERT_TRUE(Has(o, s));
  EXPECT_EQ(o.scheduled[0].start, 0);
}

// Sequences back from their loads hold pages while they wait; when the head
// cannot get the one more page it needs, the others give theirs back to the
// prefix cache instead of the queue waiting on itself forever.
TEST_F(SchedulerTest, FinishedLoadsWaitingBehindTheHeadNeverDeadlockIt) {
  Make(8, SchedulerConfig{}, true);
  Sequence *a = Seq(1, 17, 1), *b = Seq(2, 17, 2), *c = Seq(3, 17, 3);
  for (Sequence* s : {a, b, c}) {
    Publish(s);
    sched_->Add(s);
  }
  Step();
  ASSERT_EQ(conn_.loads.size(), 2u) << "a and b load 16 tokens in 4 pages each; c finds no room";
  conn_.EndLoad(1);
  conn_.EndLoad(2);
  SchedulerOutput o = Step();
  ASSERT_TRUE(Has(o, a)) << "the head needs a fifth page: b gives its pages back";
  EXPECT_EQ(o.scheduled[0].start, 16);
  sched_->Remove(a);
  Step();  // b's first page went to a: b loads again what the cache lost
  ASSERT_EQ(conn_.loads.count(2), 1u);
  conn_.EndLoad(2);
  if (conn_.loads.count(3)) conn_.EndLoad(3);  // c found room for its load meanwhile
  o = Step();
  ASSERT_TRUE(Has(o, b));
  EXPECT_EQ(b->cached_prompt_tokens, 16);
}

// A sequence loading its prefix holds a seat: no more loads than seats.
TEST_F(SchedulerTest, ALoadTakesASeat) {
  SchedulerConfig c;
  c.max_num_seqs = 1;
  Make(64, c, true);
  Sequence* old = Seq(1, 6, 5);
  sched_->Add(old);
  Step();  // old runs and holds the only seat
  Sequence* mid = Seq(2, 6, 6);
  Sequence* late = Seq(3, 17, 7);
  Publish(late);
  sched_->Add(mid);
  sched_->Add(late);
  sched_->Remove(old);
  Step();  // mid takes the seat
  EXPECT_TRUE(conn_.loads.empty()) << "no seat left for late's load";
  EXPECT_EQ(sched_->num_waiting(), 1);
}

}  // namespace
}  // namespace crescent::engine
