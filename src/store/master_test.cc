// The store master's policy, on a ManualClock: the put state machine,
// placement (locality, spread, the ramp of a fresh node), watermarks and
// eviction (never leased or in-flight objects, leaves first), leases and
// deferred frees, generations, membership expiry and SSD grace, demotion,
// re-reports after a failover, term fencing and bad input.
#include "store/master.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "store/range_allocator.h"

namespace crescent::store {
namespace {

constexpr uint64_t kMiB = 1 << 20;

proto::Key PK(uint64_t k) {
  proto::Key p;
  p.set_hi(0);
  p.set_lo(k);
  return p;
}

class MasterTest : public ::testing::Test {
 protected:
  MasterTest() { Reset(MasterOptions{}); }
  void Reset(MasterOptions o) {
    o.ramp_ms = ramp_ms_;
    master_ = std::make_unique<Master>(o, &clock_);
  }
  // Moves time on in steps of at most 1 s; the nodes in live_ heartbeat at
  // every step (the others fall silent).
  void Advance(int64_t ms) {
    while (ms > 0) {
      const int64_t step = std::min<int64_t>(ms, 1'000);
      clock_.AdvanceNanos(step * 1'000'000);
      ms -= step;
      for (const std::string& n : live_) Beat(n, 0, epochs_[n]);
      master_->Tick();
    }
  }
  proto::RequestHeader H(const std::string& node = "") {
    proto::RequestHeader h;
    h.set_term(master_->term());
    h.set_client_node(node);
    return h;
  }
  // Mounts `node` with a DRAM segment "<node>/dram" (and an SSD one if ssd > 0).
  void MountNode(const std::string& node, uint64_t dram, uint64_t ssd = 0, uint64_t epoch = 1,
                 std::vector<proto::ReportedObject> objects = {}, bool remount = false) {
    proto::MountRequest req;
    *req.mutable_header() = H();
    req.set_remount(remount);
    req.set_node_id(node);
    req.set_node_address(node + ":1");
    req.set_node_epoch(epoch);
    auto* s = req.add_segments();
    s->set_name(node + "/dram");
    s->set_tier(proto::TIER_DRAM);
    s->set_capacity(dram);
    if (ssd > 0) {
      s = req.add_segments();
      s->set_name(node + "/ssd");
      s->set_tier(proto::TIER_SSD);
      s->set_capacity(ssd);
    }
    for (auto& o : objects) *req.add_objects() = o;
    proto::MountReply rep;
    ASSERT_TRUE(master_->Mount(req, &rep).ok());
    live_.insert(node);
    epochs_[node] = epoch;
  }
  proto::PutStartResult Start(uint64_t key, uint64_t size, const std::string& node = "", uint32_t replicas = 1,
                              int64_t parent = -1) {
    proto::PutStartRequest req;
    *req.mutable_header() = H(node);
    auto* it = req.add_items();
    *it->mutable_key() = PK(key);
    it->set_size(size);
    it->set_replicas(replicas);
    if (parent >= 0) *it->mutable_parent() = PK(static_cast<uint64_t>(parent));
    proto::PutStartReply rep;
    EXPECT_TRUE(master_->PutStart(req, &rep).ok());
    return rep.results(0);
  }
  Status End(uint64_t key, uint64_t put_id, bool ok = true) {
    proto::PutEndRequest req;
    *req.mutable_header() = H();
    auto* it = req.add_items();
    *it->mutable_key() = PK(key);
    it->set_put_id(put_id);
    it->set_ok(ok);
    it->set_checksum(key * 7);
    proto::PutEndReply rep;
    EXPECT_TRUE(master_->PutEnd(req, &rep).ok());
    return Status(static_cast<StatusCode>(rep.results(0).code()), rep.results(0).message());
  }
  // A complete object; returns its replicas.
  proto::PutStartResult Put(uint64_t key, uint64_t size, const std::string& node = "", uint32_t replicas = 1,
                            int64_t parent = -1) {
    proto::PutStartResult r = Start(key, size, node, replicas, parent);
    EXPECT_EQ(r.status().code(), 0) << r.status().message();
    if (r.status().code() == 0 && !r.exists()) {
      EXPECT_TRUE(End(key, r.put_id()).ok());
    }
    return r;
  }
  proto::GetResult Get(uint64_t key, const std::string& node = "") {
    proto::GetRequest req;
    *req.mutable_header() = H(node);
    *req.add_keys() = PK(key);
    proto::GetReply rep;
    EXPECT_TRUE(master_->Get(req, &rep).ok());
    return rep.results(0);
  }
  bool Exists(uint64_t key) {
    proto::ExistsRequest req;
    *req.mutable_header() = H();
    *req.add_keys() = PK(key);
    proto::ExistsReply rep;
    EXPECT_TRUE(master_->Exists(req, &rep).ok());
    return rep.exists(0);
  }
  proto::HeartbeatReply Beat(const std::string& node, uint64_t acked = 0, uint64_t epoch = 1,
                             std::vector<proto::DemoteResult> demoted = {}) {
    proto::HeartbeatRequest req;
    *req.mutable_header() = H();
    req.set_node_id(node);
    req.set_node_epoch(epoch);
    req.set_acked_seq(acked);
    for (auto& d : demoted) *req.add_demoted() = d;
    proto::HeartbeatReply rep;
    EXPECT_TRUE(master_->Heartbeat(req, &rep).ok());
    return rep;
  }

  int64_t ramp_ms_ = 0;
  std::set<std::string> live_;
  std::map<std::string, uint64_t> epochs_;
  ManualClock clock_{1'000'000'000};
  std::unique_ptr<Master> master_;
};

TEST(RangeAllocatorTest, BestFitCoalescesAndReserves) {
  RangeAllocator a(64 * 4096);
  auto x = a.Allocate(1);
  auto y = a.Allocate(4097);
  auto z = a.Allocate(4096);
  ASSERT_TRUE(x && y && z);
  EXPECT_EQ(*x, 0u);
  EXPECT_EQ(*y, 4096u);
  EXPECT_EQ(*z, 3 * 4096u);
  EXPECT_EQ(a.used(), 4 * 4096u);
  a.Free(*y, 4097);
  EXPECT_EQ(*a.Allocate(4096), 4096u);  // best fit: the 2-block hole, not the tail
  a.Free(*x, 1);
  a.Free(4096, 4096);
  a.Free(*z, 4096);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.largest_free(), 64 * 4096u);  // all coalesced
  EXPECT_FALSE(a.Allocate(65 * 4096));
  EXPECT_TRUE(a.Reserve(8 * 4096, 3 * 4096));
  EXPECT_FALSE(a.Reserve(9 * 4096, 4096)) << "overlap";
  EXPECT_FALSE(a.Reserve(100, 4096)) << "misaligned";
  EXPECT_FALSE(a.Reserve(63 * 4096, 2 * 4096)) << "past the end";
  EXPECT_EQ(a.used(), 3 * 4096u);
}

TEST_F(MasterTest, PutIsTwoPhaseAndIdempotent) {
  MountNode("a", 64 * kMiB);
  proto::PutStartResult r = Start(1, kMiB, "a");
  ASSERT_EQ(r.status().code(), 0);
  ASSERT_EQ(r.replicas_size(), 1);
  EXPECT_EQ(r.replicas(0).segment_name(), "a/dram");
  EXPECT_FALSE(Exists(1)) << "a WRITING object is invisible";
  EXPECT_EQ(Get(1).status().code(), static_cast<int>(StatusCode::kNotFound));
  EXPECT_EQ(Start(1, kMiB).status().code(), static_cast<int>(StatusCode::kFailedPrecondition));
  EXPECT_EQ(End(1, r.put_id() + 1).code(), StatusCode::kNotFound) << "a wrong put id";
  ASSERT_TRUE(End(1, r.put_id()).ok());
  EXPECT_TRUE(Exists(1));
  proto::GetResult g = Get(1);
  ASSERT_EQ(g.status().code(), 0);
  EXPECT_EQ(g.size(), kMiB);
  EXPECT_EQ(g.checksum(), 7u);
  EXPECT_EQ(g.replicas(0).offset(), r.replicas(0).offset());
  EXPECT_EQ(g.replicas(0).generation(), r.replicas(0).generation());
  const uint64_t used = master_->SegmentUsed("a/dram");
  proto::PutStartResult again = Start(1, kMiB, "a");
  EXPECT_TRUE(again.exists()) << "a put of a complete key moves no bytes";
  EXPECT_EQ(again.replicas_size(), 0);
  EXPECT_EQ(master_->SegmentUsed("a/dram"), used);
  EXPECT_TRUE(End(1, r.put_id()).ok()) << "a retried PutEnd (its reply was lost) is answered as the first";
  // Put ids of another master (a new leader) start elsewhere: a PutEnd from
  // before a failover never ends someone else's put.
  proto::PutStartResult mine = Start(2, kMiB, "a");
  std::unique_ptr<Master> next = std::make_unique<Master>(MasterOptions{}, &clock_);
  std::swap(master_, next);
  MountNode("a", 64 * kMiB);
  proto::PutStartResult theirs = Start(2, kMiB, "a");
  std::swap(master_, next);
  EXPECT_NE(theirs.put_id(), mine.put_id());
  EXPECT_EQ(End(2, theirs.put_id()).code(), StatusCode::kNotFound) << "another master's put id";
  EXPECT_TRUE(End(2, mine.put_id()).ok());
}

TEST_F(MasterTest, RevokedAndAbandonedPutsFreeTheirSpace) {
  MountNode("a", 64 * kMiB);
  proto::PutStartResult r = Start(1, kMiB, "a");
  ASSERT_TRUE(End(1, r.put_id(), /*ok=*/false).ok());
  EXPECT_EQ(master_->SegmentUsed("a/dram"), 0u);
  EXPECT_FALSE(Exists(1));
  // A writer that dies: its space comes back only after the put timeout
  // (its late writes have ended by then), and its PutEnd is refused.
  proto::PutStartResult z = Start(2, kMiB, "a");
  Advance(10'000);
  EXPECT_GT(master_->SegmentUsed("a/dram"), 0u);
  Advance(21'000);
  EXPECT_EQ(master_->SegmentUsed("a/dram"), 0u);
  EXPECT_EQ(End(2, z.put_id()).code(), StatusCode::kNotFound);
  EXPECT_EQ(master_->counters().at("puts_expired"), 1);
}

TEST_F(MasterTest, ReplicasOnDistinctNodesFirstLocal) {
  for (const char* n : {"a", "b", "c", "d"}) MountNode(n, 64 * kMiB);
  proto::PutStartResult r = Put(1, kMiB, "c", 3);
  ASSERT_EQ(r.replicas_size(), 3);
  EXPECT_EQ(r.replicas(0).node_id(), "c") << "the first replica on the writer's node";
  std::set<std::string> nodes;
  for (const auto& rep : r.replicas()) nodes.insert(rep.node_id());
  EXPECT_EQ(nodes.size(), 3u);
  // Get answers the caller's own copy first.
  EXPECT_EQ(Get(1, "c").replicas(0).node_id(), "c");
  EXPECT_EQ(Get(1, r.replicas(1).node_id()).replicas(0).node_id(), r.replicas(1).node_id());
  // More replicas than nodes: as many as there are nodes.
  EXPECT_EQ(Put(2, kMiB, "", 3).replicas_size(), 3);
}

// A batch from a writer without a segment spreads over the segments (power of
// two choices on free space), none getting most of it.
TEST_F(MasterTest, ABatchPutSpreadsOverSegments) {
  for (const char* n : {"a", "b", "c", "d"}) MountNode(n, 256 * kMiB);
  proto::PutStartRequest req;
  *req.mutable_header() = H();
  for (uint64_t k = 0; k < 100; ++k) {
    auto* it = req.add_items();
    *it->mutable_key() = PK(k);
    it->set_size(kMiB);
  }
  proto::PutStartReply rep;
  ASSERT_TRUE(master_->PutStart(req, &rep).ok());
  std::map<std::string, int> per;
  for (const auto& r : rep.results()) per[r.replicas(0).node_id()]++;
  ASSERT_EQ(per.size(), 4u);
  for (const auto& [n, c] : per) EXPECT_LT(c, 40) << n;
}

// Mooncake #3688: a node that joins (or restarts) empty must not attract
// every put; its share ramps up over ramp_ms.
TEST_F(MasterTest, AFreshNodeRampsUpInsteadOfTakingEveryPut) {
  ramp_ms_ = 30'000;
  Reset(MasterOptions{});
  for (const char* n : {"a", "b", "c"}) MountNode(n, 1024 * kMiB);
  Advance(60'000);  // a, b, c are established
  uint64_t k = 0;
  for (; k < 300; ++k) Put(k, kMiB);  // they are now ~30% full
  MountNode("new", 1024 * kMiB);       // empty
  std::map<std::string, int> early, late;
  for (int i = 0; i < 200; ++i, ++k) early[Put(k, kMiB).replicas(0).node_id()]++;
  Advance(40'000);
  for (int i = 0; i < 200; ++i, ++k) late[Put(k, kMiB).replicas(0).node_id()]++;
  EXPECT_LT(early["new"], 200 / 2) << "the fresh node took most puts at once";
  EXPECT_GT(late["new"], early["new"]) << "its share did not grow";
  std::printf("fresh node's share of puts: %d/200 just after joining, %d/200 after the ramp\n", early["new"],
              late["new"]);
}

TEST_F(MasterTest, WatermarksEvictLruLeavesFirstNeverLeasedOrWriting) {
  MasterOptions o;
  Reset(o);
  const uint64_t rec = RecordBytes(kMiB);
  MountNode("a", 10 * rec);
  // 4..8 on their own first; later a chain 1 <- 2 <- 3 (3 is the leaf).
  for (uint64_t k = 4; k <= 8; ++k) Put(k, kMiB, "a");
  Advance(10);
  Put(1, kMiB, "a");
  Put(2, kMiB, "a", 1, 1);
  Put(3, kMiB, "a", 1, 2);
  proto::PutStartResult writing = Start(9, kMiB, "a");  // in flight
  Advance(10);
  ASSERT_EQ(Get(5).status().code(), 0);  // leased now: 5 s
  Put(10, kMiB, "a");                    // 10 of 10 records: above 0.90
  Advance(100);
  // Down to 0.80 (8 records): two of the oldest leaves, 4..8, go; never 5
  // (leased) nor 9 (writing); the younger chain stays whole.
  EXPECT_LE(master_->SegmentUsed("a/dram"), 8 * rec);
  EXPECT_TRUE(Exists(5));
  EXPECT_TRUE(Exists(1) && Exists(2) && Exists(3));
  EXPECT_TRUE(Exists(10));
  EXPECT_EQ(master_->counters().at("evictions"), 2);
  ASSERT_TRUE(End(9, writing.put_id()).ok());
  EXPECT_TRUE(Exists(9));
}

TEST_F(MasterTest, APutWithNoRoomEvictsOrFailsClearly) {
  const uint64_t rec = RecordBytes(kMiB);
  MountNode("a", 4 * rec);
  for (uint64_t k = 1; k <= 4; ++k) Put(k, kMiB, "a");
  ASSERT_EQ(Get(1).status().code(), 0);  // leased
  Put(5, kMiB, "a");                     // evicts the oldest unleased one (2)
  EXPECT_TRUE(Exists(1));
  EXPECT_FALSE(Exists(2));
  EXPECT_TRUE(Exists(5));
  proto::PutStartResult big = Start(6, 8 * kMiB, "a");
  EXPECT_EQ(big.status().code(), static_cast<int>(StatusCode::kResourceExhausted));
  EXPECT_NE(big.status().message().find("does not fit any segment"), std::string::npos) << big.status().message();
  // Everything leased: no room, said plainly, nothing evicted.
  for (uint64_t k : {1, 3, 4, 5}) Get(k);
  proto::PutStartResult full = Start(7, kMiB, "a");
  EXPECT_EQ(full.status().code(), static_cast<int>(StatusCode::kResourceExhausted));
  EXPECT_TRUE(Exists(3) && Exists(4) && Exists(5));
}

// A removed object disappears at once, but a reader's lease keeps its space
// from reuse until the lease ends; a reused range gets a new generation.
TEST_F(MasterTest, RemoveHidesAtOnceAndFreesAfterTheLease) {
  const uint64_t rec = RecordBytes(kMiB);
  MountNode("a", 2 * rec);
  proto::PutStartResult first = Put(1, kMiB, "a");
  proto::GetResult g = Get(1);  // lease
  proto::RemoveRequest rm;
  *rm.mutable_header() = H();
  *rm.add_keys() = PK(1);
  proto::RemoveReply rr;
  ASSERT_TRUE(master_->Remove(rm, &rr).ok());
  EXPECT_FALSE(Exists(1));
  EXPECT_EQ(master_->SegmentUsed("a/dram"), rec) << "freed while a reader holds a lease";
  proto::PutStartResult second = Put(2, kMiB, "a");
  EXPECT_NE(second.replicas(0).offset(), first.replicas(0).offset()) << "leased space reused";
  Get(2);  // leased too: now nothing may go
  EXPECT_EQ(Start(3, kMiB, "a").status().code(), static_cast<int>(StatusCode::kResourceExhausted));
  Advance(5'100);  // the leases end
  proto::PutStartResult reuse = Put(3, kMiB, "a");
  EXPECT_GT(reuse.replicas(0).generation(), std::max(g.replicas(0).generation(), second.replicas(0).generation()))
      << "reused space keeps an old generation";
  // The node is told to clear the freed record (resent until acknowledged).
  proto::HeartbeatReply hb = Beat("a");
  ASSERT_EQ(hb.frees_size(), 1);
  EXPECT_EQ(hb.frees(0).generation(), first.replicas(0).generation());
  EXPECT_EQ(Beat("a").frees_size(), 1) << "unacknowledged frees are resent";
  EXPECT_EQ(Beat("a", hb.seq() + 1).frees_size(), 0);
}

TEST_F(MasterTest, ADeadNodeLosesItsDramReplicasAndItsSsdOnesComeBack) {
  MountNode("a", 64 * kMiB, 64 * kMiB);
  MountNode("b", 64 * kMiB);
  Put(1, kMiB, "a", 2);  // on a and b
  Put(2, kMiB, "a");     // on a only
  live_.erase("a");  // a falls silent; b keeps beating
  Advance(12'000);
  EXPECT_TRUE(Exists(1)) << "the copy on b survives";
  EXPECT_FALSE(Exists(2));
  proto::GetResult g = Get(1);
  ASSERT_EQ(g.replicas_size(), 1);
  EXPECT_EQ(g.replicas(0).node_id(), "b");
  EXPECT_EQ(master_->counters().at("nodes_expired"), 1);
  EXPECT_TRUE(Beat("a").remount()) << "an expired node must mount again";
  // An SSD object of a comes back when a restarts and re-reports it.
  proto::ReportedObject ssd;
  *ssd.mutable_key() = PK(3);
  ssd.set_size(kMiB);
  ssd.set_checksum(21);
  ssd.set_segment_name("a/ssd");
  ssd.set_offset(0);
  ssd.set_generation(0);
  MountNode("a", 64 * kMiB, 64 * kMiB, /*epoch=*/2, {ssd});
  proto::GetResult back = Get(3);
  ASSERT_EQ(back.status().code(), 0);
  EXPECT_EQ(back.replicas(0).tier(), proto::TIER_SSD);
  EXPECT_EQ(back.checksum(), 21u);
}

TEST_F(MasterTest, SsdReplicasOfADeadNodeWaitOutTheGraceThenGo) {
  MountNode("a", 64 * kMiB, 64 * kMiB);
  proto::ReportedObject ssd;
  *ssd.mutable_key() = PK(3);
  ssd.set_size(kMiB);
  ssd.set_segment_name("a/ssd");
  MountNode("a", 64 * kMiB, 64 * kMiB, 1, {ssd});
  live_.erase("a");
  Advance(11'000);  // a expired: its SSD copy is disconnected, not readable
  EXPECT_FALSE(Exists(3));
  EXPECT_EQ(master_->objects(), 1u) << "kept for the grace period";
  Advance(121'000);
  EXPECT_EQ(master_->objects(), 0u);
}

TEST_F(MasterTest, AboveTheWatermarkObjectsAreDemotedToSsd) {
  const uint64_t rec = RecordBytes(kMiB);
  MountNode("a", 10 * rec, 100 * rec);
  for (uint64_t k = 1; k <= 10; ++k) Put(k, kMiB, "a");
  Advance(100);
  proto::HeartbeatReply hb = Beat("a");
  ASSERT_EQ(hb.demote_size(), 2) << "two records to copy down to 0.80";
  EXPECT_TRUE(Exists(1)) << "a demoting object stays readable";
  std::vector<proto::DemoteResult> done;
  for (const auto& t : hb.demote()) {
    proto::DemoteResult d;
    *d.mutable_key() = t.key();
    d.set_ok(true);
    d.set_ssd_segment("a/ssd");
    d.set_ssd_location(t.key().lo() * 1000);
    d.set_dram_generation(t.generation());
    done.push_back(d);
  }
  proto::HeartbeatReply applied = Beat("a", hb.seq(), 1, done);
  EXPECT_EQ(master_->SegmentUsed("a/dram"), 8 * rec);
  EXPECT_EQ(master_->SegmentUsed("a/ssd"), 2 * rec);
  // The reply was lost: the node sends the same results again. They are the
  // objects' SSD copies now, not orphans to drop.
  proto::HeartbeatReply again = Beat("a", hb.seq(), 1, done);
  EXPECT_EQ(again.ssd_drops_size(), 0) << "a repeated demotion result must not drop the SSD copy";
  EXPECT_EQ(master_->SegmentUsed("a/ssd"), 2 * rec);
  const uint64_t demoted = hb.demote(0).key().lo();
  proto::GetResult g = Get(demoted);
  ASSERT_EQ(g.status().code(), 0);
  ASSERT_EQ(g.replicas_size(), 1);
  EXPECT_EQ(g.replicas(0).tier(), proto::TIER_SSD);
  EXPECT_EQ(g.replicas(0).offset(), demoted * 1000);
  EXPECT_EQ(master_->counters().at("demotions"), 2);
}

// After a failover the new master knows nothing until nodes re-report; it
// allocates only in segments whose contents it knows, so nothing is handed
// out twice, and every re-reported object is readable again.
TEST_F(MasterTest, ANewLeaderRebuildsFromReReports) {
  MountNode("a", 64 * kMiB);
  proto::PutStartResult p1 = Put(1, kMiB, "a");
  proto::PutStartResult p2 = Put(2, 3 * kMiB, "a");
  // The new leader (term 2): an empty Master.
  MasterOptions o;
  master_ = std::make_unique<Master>(o, &clock_);
  master_->SetTerm(2);
  EXPECT_EQ(Start(9, kMiB).status().code(), static_cast<int>(StatusCode::kResourceExhausted))
      << "no segment is known: nothing may be allocated";
  proto::HeartbeatRequest old;
  old.mutable_header()->set_term(1);
  old.set_node_id("a");
  old.set_node_epoch(1);
  proto::HeartbeatReply hb;
  ASSERT_TRUE(master_->Heartbeat(old, &hb).ok());
  EXPECT_TRUE(hb.remount());
  EXPECT_EQ(hb.header().term(), 2u);
  std::vector<proto::ReportedObject> objs;
  for (auto [key, r, size] : {std::tuple{1u, p1.replicas(0), kMiB}, std::tuple{2u, p2.replicas(0), 3 * kMiB}}) {
    proto::ReportedObject ro;
    *ro.mutable_key() = PK(key);
    ro.set_size(size);
    ro.set_checksum(key * 7);
    ro.set_segment_name(r.segment_name());
    ro.set_offset(r.offset());
    ro.set_generation(r.generation());
    objs.push_back(ro);
  }
  MountNode("a", 64 * kMiB, 0, 1, objs, /*remount=*/true);
  EXPECT_TRUE(Exists(1) && Exists(2));
  EXPECT_EQ(Get(2).replicas(0).offset(), p2.replicas(0).offset());
  // Writes of puts the old leader placed may still land in the free space
  // for write_grace_ms: nothing is allocated there before.
  proto::PutStartResult early = Start(3, kMiB, "a");
  EXPECT_EQ(early.status().code(), static_cast<int>(StatusCode::kResourceExhausted));
  EXPECT_NE(early.status().message().find("grace"), std::string::npos) << early.status().message();
  Advance(o.write_grace_ms);
  proto::PutStartResult fresh = Put(3, kMiB, "a");
  for (const auto& r : {p1.replicas(0), p2.replicas(0)}) {
    EXPECT_NE(fresh.replicas(0).offset(), r.offset()) << "space of a re-reported object handed out again";
  }
  EXPECT_GT(fresh.replicas(0).generation(), p2.replicas(0).generation());
}

TEST_F(MasterTest, TermsFenceStaleCallers) {
  master_->SetTerm(5);
  proto::ExistsRequest req;
  *req.add_keys() = PK(1);
  proto::ExistsReply rep;
  req.mutable_header()->set_term(4);
  Status s = master_->Exists(req, &rep);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << "an older term is refused";
  EXPECT_NE(s.message().find("term 4 is over"), std::string::npos);
  req.mutable_header()->set_term(6);
  EXPECT_EQ(master_->Exists(req, &rep).code(), StatusCode::kUnavailable) << "a deposed master refuses";
  req.mutable_header()->set_term(0);
  proto::ExistsReply ok;
  EXPECT_TRUE(master_->Exists(req, &ok).ok()) << "a caller that knows no term yet is served";
  EXPECT_EQ(ok.header().term(), 5u);
}

TEST_F(MasterTest, BadInputIsRefusedClearly) {
  MountNode("a", 64 * kMiB);
  EXPECT_EQ(Start(1, 0).status().code(), static_cast<int>(StatusCode::kInvalidArgument));
  EXPECT_EQ(Start(1, uint64_t{2} << 30).status().code(), static_cast<int>(StatusCode::kInvalidArgument));
  EXPECT_EQ(Get(42).status().code(), static_cast<int>(StatusCode::kNotFound));
  proto::MountRequest bad;
  *bad.mutable_header() = H();
  bad.set_node_id("b");
  auto* s = bad.add_segments();
  s->set_name("a/dram");  // someone else's
  s->set_tier(proto::TIER_DRAM);
  s->set_capacity(64 * kMiB);
  proto::MountReply r;
  EXPECT_EQ(master_->Mount(bad, &r).code(), StatusCode::kInvalidArgument);
  bad.mutable_segments(0)->set_name("b/dram");
  bad.mutable_segments(0)->set_capacity(100);
  EXPECT_EQ(master_->Mount(bad, &r).code(), StatusCode::kInvalidArgument);
  // Out-of-range and overlapping re-reports are skipped, counted, not trusted.
  proto::ReportedObject far;
  *far.mutable_key() = PK(7);
  far.set_size(kMiB);
  far.set_segment_name("c/dram");
  far.set_offset(uint64_t{1} << 40);
  proto::ReportedObject overlap = far;
  *overlap.mutable_key() = PK(8);
  overlap.set_offset(0);
  proto::ReportedObject overlap2 = overlap;
  *overlap2.mutable_key() = PK(9);
  proto::ReportedObject twice = overlap;  // key 8 again, elsewhere in the same segment
  twice.set_offset(16 * kMiB);
  MountNode("c", 64 * kMiB, 0, 1, {far, overlap, overlap2, twice});
  EXPECT_FALSE(Exists(7));
  EXPECT_TRUE(Exists(8));
  EXPECT_FALSE(Exists(9));
  EXPECT_EQ(master_->counters().at("bad_reports"), 2);
  EXPECT_EQ(master_->counters().at("duplicate_reports"), 1);
  EXPECT_EQ(Get(8).replicas_size(), 1) << "one copy of a key per segment";
  EXPECT_EQ(master_->SegmentUsed("c/dram"), RecordBytes(kMiB)) << "the duplicate's space is freed";
  // A client of another model.
  proto::ExistsRequest e;
  e.mutable_header()->set_fingerprint_hi(1);
  e.mutable_header()->set_fingerprint_lo(2);
  proto::ExistsReply er;
  EXPECT_TRUE(master_->Exists(e, &er).ok());  // binds the store to model (1, 2)
  e.mutable_header()->set_fingerprint_lo(3);
  Status other = master_->Exists(e, &er);
  EXPECT_EQ(other.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(other.message().find("fingerprint"), std::string::npos);
  // A bad replica report drops just that copy.
  proto::PutStartResult two = Put(20, kMiB, "a", 2);
  MountNode("d", 64 * kMiB);
  proto::ReportBadReplicaRequest br;
  *br.mutable_header() = H();
  *br.mutable_key() = PK(20);
  *br.mutable_replica() = two.replicas(0);
  proto::ReportBadReplicaReply brr;
  ASSERT_TRUE(master_->ReportBadReplica(br, &brr).ok());
  EXPECT_EQ(Get(20).replicas_size(), static_cast<int>(two.replicas_size()) - 1);
}

// Write-through: a put on a node with an SSD tier is copied there at once and
// keeps its DRAM copy; both are readable, the SSD one survives a restart.
TEST_F(MasterTest, WriteThroughCopiesEveryPutToSsdAndKeepsDram) {
  MasterOptions o;
  o.ssd_write_through = true;
  Reset(o);
  MountNode("a", 64 * kMiB, 64 * kMiB);
  Put(1, kMiB, "a");
  proto::HeartbeatReply hb = Beat("a");
  ASSERT_EQ(hb.demote_size(), 1);
  proto::DemoteResult d;
  *d.mutable_key() = hb.demote(0).key();
  d.set_ok(true);
  d.set_ssd_segment("a/ssd");
  d.set_ssd_location(77);
  d.set_dram_generation(hb.demote(0).generation());
  Beat("a", hb.seq(), 1, {d});
  proto::GetResult g = Get(1, "a");
  ASSERT_EQ(g.replicas_size(), 2);
  EXPECT_EQ(g.replicas(0).tier(), proto::TIER_DRAM) << "the DRAM copy stays, nearest first";
  EXPECT_EQ(g.replicas(1).tier(), proto::TIER_SSD);
  EXPECT_EQ(master_->SegmentUsed("a/dram"), RecordBytes(kMiB));
  EXPECT_EQ(master_->SegmentUsed("a/ssd"), RecordBytes(kMiB));
  EXPECT_EQ(master_->counters().at("ssd_copies"), 1);
}

}  // namespace
}  // namespace crescent::store
