// The store end to end in one process: a LocalMaster, store nodes with
// their own transfer engines (shared memory between them), and clients.
// Objects of 1 byte to 64 MiB round-trip with checksums; a flipped byte in a
// DRAM copy is caught and the copy dropped; a copy whose space was reused is
// refused; objects demoted to SSD are read back through the owner's staging
// area and from the local tier; bad input and a dead master are clear errors.
#include "store/client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "store/master_api.h"
#include "store/remote_master.h"
#include "store/store_node.h"
#include "transfer/in_process_metadata_store.h"

namespace crescent::store {
namespace {

constexpr uint64_t kMiB = 1 << 20;

std::vector<std::byte> Bytes(size_t n, uint64_t seed) {
  std::vector<std::byte> v(n);
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    meta_ = std::make_shared<transfer::InProcessMetadataStore>();
    MasterOptions mo;
    mo.ramp_ms = 0;
    master_ = std::make_shared<LocalMaster>(mo);
  }
  void TearDown() override {
    clients_.clear();
    nodes_.clear();
    engines_.clear();
    for (const auto& d : dirs_) std::filesystem::remove_all(d);
  }
  std::shared_ptr<transfer::TransferEngine> Engine() {
    transfer::EngineOptions o;
    o.transports = "self,sm";
    o.timeout_ms = 3000;
    auto e = transfer::TransferEngine::Create(o, meta_);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    engines_.push_back(std::shared_ptr<transfer::TransferEngine>(std::move(e).value()));
    return engines_.back();
  }
  StoreNode* Node(const std::string& id, uint64_t dram, uint64_t ssd = 0) {
    StoreNodeOptions o;
    o.node_id = id;
    o.dram_bytes = dram;
    if (ssd > 0) {
      char tmpl[] = "/tmp/crescent-store-ssd-XXXXXX";
      EXPECT_TRUE(mkdtemp(tmpl));
      dirs_.push_back(tmpl);
      o.ssd_dir = tmpl;
      o.ssd_bytes = ssd;
    }
    auto n = StoreNode::Start(o, master_, Engine());
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    nodes_.push_back(std::move(n).value());
    return nodes_.back().get();
  }
  // A client with its own engine, on `node` (nullptr: a pure client).
  Client* MakeClient(StoreNode* node = nullptr, uint32_t replicas = 0) {
    ClientOptions o;
    o.replicas = replicas;
    auto engine = node ? engines_[NodeIndex(node)] : Engine();
    auto c = Client::Create(o, master_, engine, node);
    EXPECT_TRUE(c.ok());
    clients_.push_back(std::move(c).value());
    return clients_.back().get();
  }
  size_t NodeIndex(StoreNode* n) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].get() == n) return engines_.size() - nodes_.size() + i;  // engines made in node order
    }
    return 0;
  }

  std::shared_ptr<transfer::InProcessMetadataStore> meta_;
  std::shared_ptr<LocalMaster> master_;
  std::vector<std::shared_ptr<transfer::TransferEngine>> engines_;
  std::vector<std::unique_ptr<StoreNode>> nodes_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<std::string> dirs_;
};

TEST_F(StoreTest, ObjectsRoundTripFromOneByteTo64MiB) {
  StoreNode* a = Node("a", 256 * kMiB);
  Node("b", 256 * kMiB);
  Client* writer = MakeClient();   // no segment: its puts go to a and b
  Client* on_a = MakeClient(a);    // reads a's copies by memcpy, b's by transfer
  Client* reader = MakeClient();
  uint64_t k = 0;
  for (size_t size : {size_t{1}, size_t{7}, size_t{4096}, size_t{65537}, size_t{kMiB}, size_t{8 * kMiB} + 3,
                      size_t{64 * kMiB}}) {
    const auto data = Bytes(size, size);
    const Key key{++k, 77};
    ASSERT_TRUE(writer->Put(key, data).ok()) << size;
    for (Client* c : {reader, on_a}) {
      std::vector<std::byte> out(size + 10);
      Result<uint64_t> got = c->Get(key, out);
      ASSERT_TRUE(got.ok()) << size << ": " << got.status().ToString();
      EXPECT_EQ(*got, size);
      EXPECT_TRUE(std::equal(data.begin(), data.end(), out.begin())) << size;
    }
  }
  EXPECT_GT(on_a->counters().local_reads.load(), 0);
  EXPECT_GT(on_a->counters().remote_reads.load(), 0);
  // Idempotent: a second put of a complete key moves nothing.
  const auto again = Bytes(100, 1);
  ASSERT_TRUE(writer->Put(Key{100, 1}, again).ok());
  ASSERT_TRUE(writer->Put(Key{100, 1}, again).ok());
  EXPECT_EQ(writer->counters().put_exists.load(), 1);
  // Batch, async and the prefix probe.
  std::vector<std::vector<std::byte>> vals;
  std::vector<PutItem> items;
  std::vector<Key> keys;
  for (int i = 0; i < 8; ++i) {
    vals.push_back(Bytes(3000 + i, 500 + i));
    keys.push_back(Key{200 + static_cast<uint64_t>(i), 2});
  }
  for (int i = 0; i < 5; ++i) items.push_back({keys[i], vals[i], i ? std::optional<Key>(keys[i - 1]) : std::nullopt});
  for (const Status& s : writer->BatchPutAsync(items).get()) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*reader->PrefixLength(keys), 5u);
  std::vector<std::vector<std::byte>> outs(5, std::vector<std::byte>(4000));
  std::vector<GetItem> gets;
  for (int i = 0; i < 5; ++i) gets.push_back({keys[i], outs[i], {}, nullptr});
  auto res = reader->BatchGetAsync(gets).get();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(res[i].ok());
    EXPECT_TRUE(std::equal(vals[i].begin(), vals[i].end(), outs[i].begin()));
  }
}

TEST_F(StoreTest, ManyConcurrentClients) {
  Node("a", 256 * kMiB);
  Node("b", 256 * kMiB);
  std::vector<Client*> cs;
  for (int i = 0; i < 4; ++i) cs.push_back(MakeClient());
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        const Key key{static_cast<uint64_t>(t * 1000 + i), 9};
        const auto data = Bytes(10000 + i * 100, key.lo);
        if (!cs[t]->Put(key, data).ok()) bad++;
        std::vector<std::byte> out(data.size());
        Result<uint64_t> g = cs[(t + 1) % 4]->Get(key, out);
        if (!g.ok() || out != data) bad++;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
}

// A byte flipped in one of two DRAM copies: the get still succeeds from the
// other, the bad copy is dropped and counted; with the only copy flipped the
// get fails with DataLoss; nothing wrong is returned.
TEST_F(StoreTest, AFlippedByteIsCaughtAndTheCopyDropped) {
  StoreNode* a = Node("a", 64 * kMiB);
  StoreNode* b = Node("b", 64 * kMiB);
  Client* writer = MakeClient(nullptr, 2);
  Client* reader = MakeClient();
  const auto data = Bytes(3 * kMiB, 5);
  const Key key{1, 1};
  ASSERT_TRUE(writer->Put(key, data).ok());
  Result<proto::GetResult> where = reader->Locate(key);
  ASSERT_TRUE(where.ok());
  ASSERT_EQ(where->replicas_size(), 2);
  const proto::Replica first = where->replicas(0);
  StoreNode* owner = first.node_id() == "a" ? a : b;
  owner->record(first.offset())[kBlock + 12345] ^= std::byte{0x40};
  std::vector<std::byte> out(data.size());
  Result<uint64_t> got = reader->Get(key, out);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(out, data);
  EXPECT_EQ(reader->counters().checksum_failures.load(), 1);
  // Reports go to the master off the reader's path: soon, not at once.
  auto soon = [](const std::function<bool()>& cond) {
    for (int i = 0; i < 200 && !cond(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return cond();
  };
  EXPECT_TRUE(soon([&] { return reader->Locate(key)->replicas_size() == 1; })) << "the bad copy must be dropped";
  // The only copy, corrupted.
  const Key solo{2, 1};
  Client* one = MakeClient(nullptr, 1);
  ASSERT_TRUE(one->Put(solo, data).ok());
  const proto::Replica r = reader->Locate(solo)->replicas(0);
  (r.node_id() == "a" ? a : b)->record(r.offset())[kBlock + 7] ^= std::byte{1};
  std::fill(out.begin(), out.end(), std::byte{0});
  got = reader->Get(solo, out);
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss) << got.status().ToString();
  EXPECT_TRUE(soon([&] { return reader->Get(solo, out).status().code() == StatusCode::kNotFound; }))
      << "dropped after the report";
  EXPECT_EQ(master_->With([](Master& m) { return m.counters().at("bad_replicas"); }), 2);
}

// A copy whose header names another generation (its space was reused) is
// refused before the get reports success.
TEST_F(StoreTest, AStaleGenerationIsRefused) {
  StoreNode* a = Node("a", 64 * kMiB);
  Client* c = MakeClient();
  const auto data = Bytes(10000, 3);
  ASSERT_TRUE(c->Put(Key{5, 5}, data).ok());
  const proto::Replica r = c->Locate(Key{5, 5})->replicas(0);
  RecordHeader h;
  std::memcpy(&h, a->record(r.offset()), sizeof(h));
  h = MakeHeader(h.key(), h.size, h.checksum, h.generation + 1);  // as a later allocation would leave it
  std::memcpy(a->record(r.offset()), &h, sizeof(h));
  std::vector<std::byte> out(data.size());
  EXPECT_EQ(c->Get(Key{5, 5}, out).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(c->counters().stale_copies.load(), 1);
}

// DRAM above its watermark demotes to SSD; the objects are read back from
// the SSD tier: through the owner's staging area from another process's
// client, and from the tier itself by a client on the owning node.
TEST_F(StoreTest, DemotedObjectsAreReadFromSsd) {
  const uint64_t rec = RecordBytes(kMiB);
  StoreNode* a = Node("a", 10 * rec, 64 * rec);
  Client* on_a = MakeClient(a);
  Client* remote = MakeClient();
  std::vector<std::vector<std::byte>> vals;
  for (uint64_t k = 0; k < 10; ++k) {
    vals.push_back(Bytes(kMiB, k));
    ASSERT_TRUE(on_a->Put(Key{k, 3}, vals.back()).ok());
  }
  // Demotions happen on the master's tick and the node's heartbeats.
  bool demoted = false;
  for (int i = 0; i < 60 && !demoted; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    demoted = a->counters().demotions.load() >= 2 &&
              master_->With([](Master& m) { return m.counters().count("demotions") ? m.counters().at("demotions") : 0; }) >= 2;
  }
  ASSERT_TRUE(demoted);
  int from_ssd = 0;
  for (uint64_t k = 0; k < 10; ++k) {
    Result<proto::GetResult> w = remote->Locate(Key{k, 3});
    ASSERT_TRUE(w.ok());
    if (w->replicas(0).tier() != proto::TIER_SSD) continue;
    ++from_ssd;
    for (Client* c : {remote, on_a}) {
      std::vector<std::byte> out(kMiB);
      Result<uint64_t> g = c->Get(Key{k, 3}, out);
      ASSERT_TRUE(g.ok()) << g.status().ToString();
      EXPECT_EQ(out, vals[k]);
    }
  }
  EXPECT_GE(from_ssd, 2);
  EXPECT_GE(remote->counters().ssd_reads.load(), 2);
  EXPECT_GE(a->counters().stages.load(), 2);
  EXPECT_GE(on_a->counters().ssd_reads.load(), 2);
}

// A get with a scatter list puts the object's bytes into its parts in order
// (skipping the null ones) from every kind of copy, and reports where it read
// from; two scatter gets in one batch never write into each other's room.
TEST_F(StoreTest, ScatterGetsFromEveryTierReportWhereTheyRead) {
  const uint64_t size = 300'000;
  const uint64_t rec = RecordBytes(size);
  StoreNode* a = Node("a", 6 * rec, 64 * rec);  // full: above the watermark, some are demoted
  Client* on_a = MakeClient(a);
  Client* remote = MakeClient();
  std::vector<std::vector<std::byte>> vals;
  for (uint64_t k = 0; k < 6; ++k) {
    vals.push_back(Bytes(size, 40 + k));
    ASSERT_TRUE(on_a->Put(Key{k, 9}, vals.back()).ok());
  }
  auto master_demotions = [&] {
    return master_->With([](Master& m) { return m.counters().count("demotions") ? m.counters().at("demotions") : 0; });
  };
  for (int i = 0; i < 60 && (a->counters().demotions.load() < 2 || master_demotions() < 2); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(master_demotions(), 2);
  std::set<ReadFrom> seen;
  for (Client* c : {on_a, remote}) {
    // All six in one batch: parts of 1,000 bytes, every third one skipped.
    std::vector<std::vector<std::byte>> outs(6, std::vector<std::byte>(size, std::byte{0x5a}));
    std::vector<GetItem> gets(6);
    std::vector<ReadFrom> from(6, ReadFrom::kNone);
    for (uint64_t k = 0; k < 6; ++k) {
      gets[k].key = Key{k, 9};
      gets[k].from = &from[k];
      for (uint64_t at = 0, n = 0; at < size; at += 1000, ++n) {
        gets[k].parts.push_back({n % 3 == 2 ? nullptr : outs[k].data() + at, std::min<uint64_t>(1000, size - at)});
      }
    }
    std::vector<Result<uint64_t>> got = c->BatchGet(gets);
    for (uint64_t k = 0; k < 6; ++k) {
      ASSERT_TRUE(got[k].ok()) << got[k].status().ToString();
      for (uint64_t at = 0, n = 0; at < size; at += 1000, ++n) {
        const uint64_t m = std::min<uint64_t>(1000, size - at);
        for (uint64_t j = at; j < at + m; ++j) {
          ASSERT_EQ(outs[k][j], n % 3 == 2 ? std::byte{0x5a} : vals[k][j]) << k << " at " << j;
        }
      }
      ASSERT_NE(from[k], ReadFrom::kNone);
      seen.insert(from[k]);
    }
  }
  EXPECT_TRUE(seen.contains(ReadFrom::kLocalDram));
  EXPECT_TRUE(seen.contains(ReadFrom::kLocalSsd));
  EXPECT_TRUE(seen.contains(ReadFrom::kRemoteDram));
  EXPECT_TRUE(seen.contains(ReadFrom::kRemoteSsd));
  // Too little room in the parts: a clear error, nothing written past them.
  std::vector<std::byte> small(size / 2);
  GetItem g;
  g.key = Key{0, 9};
  g.parts = {{small.data(), small.size()}};
  EXPECT_EQ(remote->BatchGet({&g, 1})[0].status().code(), StatusCode::kResourceExhausted);
}

TEST_F(StoreTest, BadInputIsAClearError) {
  Node("a", 16 * kMiB);
  Client* c = MakeClient();
  EXPECT_EQ(c->Put(Key{1, 0}, {}).code(), StatusCode::kInvalidArgument);
  const auto big = Bytes(20 * kMiB, 1);
  Status s = c->Put(Key{2, 0}, big);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  std::vector<std::byte> out(10);
  EXPECT_EQ(c->Get(Key{3, 0}, out).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(c->Put(Key{4, 0}, Bytes(100, 2)).ok());
  EXPECT_EQ(c->Get(Key{4, 0}, out).status().code(), StatusCode::kResourceExhausted) << "a buffer too small";
  EXPECT_EQ(c->Remove(Key{99, 0}).code(), StatusCode::kNotFound);
  ASSERT_TRUE(c->Remove(Key{4, 0}).ok());
  EXPECT_FALSE(*c->Exists(Key{4, 0}));
}

// A master that is not there: calls fail with Unavailable within the timeout.
TEST_F(StoreTest, ADeadMasterIsUnavailableInTime) {
  RemoteMasterOptions ro;
  ro.target = "127.0.0.1:1";  // nothing listens
  ro.timeout_ms = 500;
  auto rm = RemoteMaster::Connect(ro);
  ASSERT_TRUE(rm.ok());
  auto c = Client::Create(ClientOptions{}, std::shared_ptr<MasterApi>(std::move(rm).value()), Engine());
  ASSERT_TRUE(c.ok());
  auto t0 = std::chrono::steady_clock::now();
  Status s = (*c)->Put(Key{1, 1}, Bytes(10, 1));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_LT(secs, 1.0);
  std::vector<std::byte> out(10);
  EXPECT_EQ((*c)->Get(Key{1, 1}, out).status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace crescent::store
