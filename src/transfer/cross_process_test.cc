// The transfer engine across processes on one host, with etcd as the metadata
// store: shared memory integrity, a peer killed in the middle of a batch, a
// hung peer, a restarted peer, a dead owner's segment expiring, a peer stopped
// mid-read (no late write into the caller's memory), a peer killed while the
// endpoint is being made, and the engine destroyed with a stopped peer.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "base/hash.h"
#include "transfer/etcd_metadata_store.h"
#include "transfer/test_support.h"
#include "transfer/transfer_engine.h"

namespace crescent::transfer {
namespace {

using testing::Subprocess;

constexpr uint64_t kMiB = 1 << 20;

class CrossProcessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto e = testing::EtcdServer::Start();
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    etcd_ = std::move(e).value().release();
  }
  static void TearDownTestSuite() {
    delete etcd_;
    etcd_ = nullptr;
  }

  // Starts a peer hosting `segment` and waits for READY.
  std::unique_ptr<Subprocess> Serve(const std::string& segment, uint64_t size, uint64_t seed,
                                    const std::string& transports) {
    auto p = Subprocess::Start({CRESCENT_TRANSFER_PEER, "serve", "--etcd", etcd_->endpoint(), "--segment",
                                segment, "--size", std::to_string(size), "--seed", std::to_string(seed),
                                "--transports", transports, "--net-devices", "lo", "--lease-ttl", "2"});
    EXPECT_TRUE(p.ok());
    if (!p.ok()) return nullptr;
    auto line = (*p)->Expect("READY", 20000);
    EXPECT_TRUE(line.ok()) << line.status().ToString();
    return std::move(p).value();
  }

  std::unique_ptr<TransferEngine> Engine(const std::string& transports, int64_t timeout_ms) {
    EtcdOptions eo;
    eo.endpoint = etcd_->endpoint();
    auto store = EtcdMetadataStore::Connect(eo);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    EngineOptions o;
    o.transports = transports;
    o.net_devices = "lo";
    o.timeout_ms = timeout_ms;
    auto e = TransferEngine::Create(o, std::shared_ptr<MetadataStore>(std::move(store).value()));
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(e).value() : nullptr;
  }

  static testing::EtcdServer* etcd_;
};
testing::EtcdServer* CrossProcessTest::etcd_ = nullptr;

TEST_F(CrossProcessTest, SharedMemoryIntegrityBetweenProcesses) {
  auto server = Serve("xp/shm", 72 * kMiB, 11, "self,sm");
  ASSERT_TRUE(server);
  auto client = Subprocess::Start({CRESCENT_TRANSFER_PEER, "client", "--etcd", etcd_->endpoint(), "--segment",
                                   "xp/shm", "--seed", "11", "--transports", "self,sm", "--net-devices", "lo"});
  ASSERT_TRUE(client.ok());
  auto line = (*client)->ExpectVerdict(60000);
  ASSERT_TRUE(line.ok()) << line.status().ToString();
  EXPECT_EQ(line->rfind("PASS", 0), 0u) << *line;
  EXPECT_EQ((*client)->Wait(), 0);
}

// Writes random bytes into both peers while one of them dies: the dead peer's
// entries fail well within the timeout, the live peer's all land (checked by
// the peer's own hash), and a restarted peer under the same name works again.
TEST_F(CrossProcessTest, PeerKilledMidBatchThenRestarted) {
  const uint64_t kSize = 16 * kMiB;
  auto a = Serve("xp/a", kSize, 1, "tcp");
  auto b = Serve("xp/b", kSize, 2, "tcp");
  ASSERT_TRUE(a && b);
  const int64_t kTimeoutMs = 4000;
  auto engine = Engine("tcp", kTimeoutMs);
  ASSERT_TRUE(engine);
  std::vector<char> local(2 * kSize);
  std::mt19937_64 rng(5);
  for (auto& c : local) c = static_cast<char>(rng());
  ASSERT_TRUE(engine->RegisterLocalMemory("xp/client", local.data(), local.size()).ok());
  SegmentId sa = *engine->OpenSegment("xp/a"), sb = *engine->OpenSegment("xp/b");

  // A stops answering, the batch goes out, then A dies: its entries are in flight.
  a->Kill(SIGSTOP);
  std::vector<TransferRequest> reqs;
  for (uint64_t off = 0; off < kSize; off += kMiB) {
    reqs.push_back({OpKind::kWrite, &local[off], sa, off, kMiB});
    reqs.push_back({OpKind::kWrite, &local[kSize + off], sb, off, kMiB});
  }
  auto t0 = std::chrono::steady_clock::now();
  TransferBatch batch = engine->NewBatch(reqs.size());
  ASSERT_TRUE(engine->Submit(batch, reqs).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  a->Kill(SIGKILL);
  a->Wait();
  Status s = batch.Wait();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(s.ok());
  EXPECT_LT(secs, kTimeoutMs / 1000.0 + 2.0);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EntryStatus st = batch.status(i);
    if (reqs[i].segment == sa) {
      EXPECT_EQ(st.state, EntryState::kFailed) << "entry " << i;
      EXPECT_FALSE(st.error.message().empty());
    } else {
      EXPECT_EQ(st.state, EntryState::kDone) << "entry " << i << ": " << st.error.ToString();
    }
  }
  ASSERT_TRUE(b->WriteLine("HASH 0 " + std::to_string(kSize)));
  auto h = b->Expect("HASH", 5000);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, "HASH " + HashBytes128(&local[kSize], kSize).ToHex());

  // The dead owner's lease (2 s) expires and its segment disappears.
  EtcdOptions eo;
  eo.endpoint = etcd_->endpoint();
  auto reader = EtcdMetadataStore::Connect(eo);
  ASSERT_TRUE(reader.ok());
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = (*reader)->Get("crescent/segments/xp/a").status().code() == StatusCode::kNotFound;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone) << "a dead owner's segment should vanish with its lease";

  // B still works; a restarted A under the same name is reachable again
  // through the same SegmentId.
  auto a2 = Serve("xp/a", kSize, 3, "tcp");
  ASSERT_TRUE(a2);
  TransferBatch again = engine->NewBatch(2);
  ASSERT_TRUE(engine->Submit(again, std::vector<TransferRequest>{{OpKind::kWrite, &local[0], sa, 0, kSize},
                                                                  {OpKind::kRead, &local[kSize], sb, 0, kSize}})
                  .ok());
  s = again.Wait();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(a2->WriteLine("HASH 0 " + std::to_string(kSize)));
  h = a2->Expect("HASH", 5000);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, "HASH " + HashBytes128(&local[0], kSize).ToHex());
}

// A peer that stops answering (SIGSTOP) without dying: its entries fail with
// DeadlineExceeded at the timeout, not later, and the caller is not hung.
TEST_F(CrossProcessTest, HungPeerTimesOut) {
  auto a = Serve("xp/hung", 4 * kMiB, 1, "tcp");
  ASSERT_TRUE(a);
  const int64_t kTimeoutMs = 1500;
  auto engine = Engine("tcp", kTimeoutMs);
  ASSERT_TRUE(engine);
  std::vector<char> local(4 * kMiB);
  ASSERT_TRUE(engine->RegisterLocalMemory("xp/hung-client", local.data(), local.size()).ok());
  SegmentId sa = *engine->OpenSegment("xp/hung");
  // Warm up the endpoint so the hang happens on an established connection.
  TransferBatch warm = engine->NewBatch(1);
  ASSERT_TRUE(engine->Submit(warm, std::vector<TransferRequest>{{OpKind::kRead, local.data(), sa, 0, 4096}}).ok());
  ASSERT_TRUE(warm.Wait().ok());
  a->Kill(SIGSTOP);
  auto t0 = std::chrono::steady_clock::now();
  TransferBatch batch = engine->NewBatch(4);
  std::vector<TransferRequest> reqs;
  for (uint64_t i = 0; i < 4; ++i) reqs.push_back({OpKind::kRead, &local[i * kMiB], sa, i * kMiB, kMiB});
  ASSERT_TRUE(engine->Submit(batch, reqs).ok());
  Status s = batch.Wait();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_GE(secs, kTimeoutMs / 1000.0 - 0.1);
  EXPECT_LT(secs, kTimeoutMs / 1000.0 + 1.5);
  a->Kill(SIGKILL);
}

// READs from a peer that is SIGSTOPped mid-batch: the entries fail within the
// timeout; once the batch is gone UCX holds none of the caller's memory, so
// when the peer continues, nothing it sends lands there (the buffer keeps a
// sentinel), and a buffer freed after the batch is never written (an ASan
// build reports a heap-use-after-free otherwise).
TEST_F(CrossProcessTest, StoppedPeerMidReadNeverWritesLate) {
  const uint64_t kSize = 32 * kMiB;
  auto peer = Serve("xp/late", kSize, 4, "tcp");
  ASSERT_TRUE(peer);
  const int64_t kTimeoutMs = 1500;
  auto engine = Engine("tcp", kTimeoutMs);
  ASSERT_TRUE(engine);
  SegmentId seg = *engine->OpenSegment("xp/late");
  for (int round = 0; round < 2; ++round) {
    auto* local = new char[kSize];
    std::memset(local, 0, kSize);
    ASSERT_TRUE(engine->RegisterLocalMemory("xp/late-client", local, kSize).ok());
    {
      TransferBatch warm = engine->NewBatch(1);  // the endpoint exists before the stop
      ASSERT_TRUE(engine->Submit(warm, std::vector<TransferRequest>{{OpKind::kRead, local, seg, 0, 4096}}).ok());
      ASSERT_TRUE(warm.Wait().ok());
    }
    std::vector<TransferRequest> reqs;
    for (uint64_t off = 0; off < kSize; off += 2 * kMiB) reqs.push_back({OpKind::kRead, local + off, seg, off, 2 * kMiB});
    auto t0 = std::chrono::steady_clock::now();
    {
      TransferBatch batch = engine->NewBatch(reqs.size());
      ASSERT_TRUE(engine->Submit(batch, reqs).ok());
      peer->Kill(SIGSTOP);  // mid-batch: some entries done, some in flight
      Status s = batch.Wait();
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_LT(secs, kTimeoutMs / 1000.0 + 1.0);
      int failed = 0;
      for (size_t i = 0; i < reqs.size(); ++i) failed += batch.status(i).state == EntryState::kFailed;
      std::printf("round %d: %d of %zu entries failed after %.2f s: %s\n", round, failed, reqs.size(), secs,
                  s.ToString().c_str());
    }  // the batch is released here
    const double released = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(released, kTimeoutMs / 1000.0 + 2.5) << "releasing the batch took too long";
    if (round == 0) {
      std::memset(local, 0xAB, kSize);  // a late write would overwrite this
      peer->Kill(SIGCONT);
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
      size_t changed = 0;
      for (uint64_t i = 0; i < kSize; ++i) changed += static_cast<unsigned char>(local[i]) != 0xAB;
      EXPECT_EQ(changed, 0u) << "bytes written into the caller's memory after its batch was released";
      ASSERT_TRUE(engine->UnregisterLocalMemory("xp/late-client").ok());
      delete[] local;
    } else {
      ASSERT_TRUE(engine->UnregisterLocalMemory("xp/late-client").ok());
      delete[] local;  // freed while the peer is still stopped
      peer->Kill(SIGCONT);
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
    }
  }
  // The peer works again after it continues (a new endpoint is made).
  std::vector<char> again(kMiB);
  ASSERT_TRUE(engine->RegisterLocalMemory("xp/late-again", again.data(), again.size()).ok());
  TransferBatch b = engine->NewBatch(1);
  ASSERT_TRUE(engine->Submit(b, std::vector<TransferRequest>{{OpKind::kRead, again.data(), seg, 0, kMiB}}).ok());
  EXPECT_TRUE(b.Wait().ok()) << b.Wait().ToString();
}

// The peer is stopped before the first transfer (the endpoint's wire-up
// cannot finish) and killed while the batch waits on it: every entry fails
// within the timeout and the batch is released. Over TCP the forced close
// returns UCX's operations; over shared memory alone (no peer error
// handling, RMA on heap memory emulated over messages the dead peer never
// answers) the worker is rebuilt to release them, its segments are
// republished with the new worker addresses, and the engine goes on working.
TEST_F(CrossProcessTest, PeerKilledDuringEndpointCreation) {
  for (const char* transports : {"tcp", "self,sm"}) {
    SCOPED_TRACE(transports);
    const std::string name = std::string("xp/wireup-") + transports;
    auto peer = Serve(name, 4 * kMiB, 5, transports);
    ASSERT_TRUE(peer);
    const int64_t kTimeoutMs = 1500;
    auto engine = Engine(transports, kTimeoutMs);
    ASSERT_TRUE(engine);
    std::vector<char> local(4 * kMiB);
    ASSERT_TRUE(engine->RegisterLocalMemory("xp/wireup-client", local.data(), local.size()).ok());
    auto reader = EtcdMetadataStore::Connect(EtcdOptions{etcd_->endpoint(), 5, 3000});
    ASSERT_TRUE(reader.ok());
    const std::string before = *(*reader)->Get("crescent/segments/xp/wireup-client");
    SegmentId seg = *engine->OpenSegment(name);
    peer->Kill(SIGSTOP);
    auto t0 = std::chrono::steady_clock::now();
    {
      TransferBatch batch = engine->NewBatch(4);
      std::vector<TransferRequest> reqs;
      for (uint64_t i = 0; i < 4; ++i) reqs.push_back({OpKind::kRead, &local[i * kMiB], seg, i * kMiB, kMiB});
      ASSERT_TRUE(engine->Submit(batch, reqs).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      peer->Kill(SIGKILL);
      peer->Wait();
      Status s = batch.Wait();
      EXPECT_FALSE(s.ok());
      for (size_t i = 0; i < 4; ++i) EXPECT_EQ(batch.status(i).state, EntryState::kFailed);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(secs, kTimeoutMs / 1000.0 + 3.0) << "the batch was not released in time";
    std::printf("%s: batch released after %.2f s, %lld worker rebuilds\n", transports, secs,
                static_cast<long long>(engine->worker_rebuilds()));
    if (engine->worker_rebuilds() > 0) {  // republished just after the release
      bool republished = false;
      for (int i = 0; i < 50 && !republished; ++i) {
        republished = *(*reader)->Get("crescent/segments/xp/wireup-client") != before;
        if (!republished) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      EXPECT_TRUE(republished) << "segments must be republished with the rebuilt workers' addresses";
    }
    // The engine still works, with a new peer.
    auto fresh = Serve(name + "-2", 4 * kMiB, 6, transports);
    ASSERT_TRUE(fresh);
    SegmentId seg2 = *engine->OpenSegment(name + "-2");
    TransferBatch again = engine->NewBatch(1);
    ASSERT_TRUE(engine->Submit(again, std::vector<TransferRequest>{{OpKind::kRead, local.data(), seg2, 0, kMiB}}).ok());
    EXPECT_TRUE(again.Wait().ok()) << again.Wait().ToString();
  }
}

// Destroying an engine whose entries wait on a stopped peer returns within
// the timeout plus the 2 s UCX gets to hand back force-closed operations; the
// batch, outliving the engine, ends failed and is released.
TEST_F(CrossProcessTest, DestroyingTheEngineWithAStoppedPeerIsBounded) {
  // Over shared memory UCX keeps the operations (heap segment, no peer error
  // handling): the engine must not rebuild workers while it is going away.
  for (const char* transports : {"tcp", "self,sm"}) {
    SCOPED_TRACE(transports);
    auto peer = Serve(std::string("xp/stopped-") + transports, 8 * kMiB, 6, transports);
    ASSERT_TRUE(peer);
    const int64_t kTimeoutMs = 1500;
    auto engine = Engine(transports, kTimeoutMs);
    ASSERT_TRUE(engine);
    std::vector<char> local(8 * kMiB);
    ASSERT_TRUE(engine->RegisterLocalMemory("xp/stopped-client", local.data(), local.size()).ok());
    SegmentId seg = *engine->OpenSegment(std::string("xp/stopped-") + transports);
    TransferBatch warm = engine->NewBatch(1);
    ASSERT_TRUE(engine->Submit(warm, std::vector<TransferRequest>{{OpKind::kRead, local.data(), seg, 0, 4096}}).ok());
    ASSERT_TRUE(warm.Wait().ok());
    peer->Kill(SIGSTOP);
    TransferBatch batch = engine->NewBatch(8);
    std::vector<TransferRequest> reqs;
    for (uint64_t i = 0; i < 8; ++i) reqs.push_back({OpKind::kRead, &local[i * kMiB], seg, i * kMiB, kMiB});
    ASSERT_TRUE(engine->Submit(batch, reqs).ok());
    if (std::string(transports) != "tcp") {
      // Let an entry expire and the worker decide to rebuild, then go away.
      std::this_thread::sleep_for(std::chrono::milliseconds(kTimeoutMs + 2100));
    }
    auto t0 = std::chrono::steady_clock::now();
    engine.reset();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(secs, kTimeoutMs / 1000.0 + 2.5 + 1.0);
    EXPECT_TRUE(batch.Poll());
    EXPECT_TRUE(batch.Released());
    for (size_t i = 0; i < 8; ++i) EXPECT_EQ(batch.status(i).state, EntryState::kFailed);
    peer->Kill(SIGKILL);
  }
}

}  // namespace
}  // namespace crescent::transfer
