// The P/D KV path over the real transfer engine, in one process: engine P
// prefills and its TransferKvSink WRITEs each layer into engine D's reserved
// pages (D's pool registered as a segment, shared memory between the two
// transfer engines); D admits with P's first token and decodes the rest:
// tokens equal one engine's. A decode side that is gone (its transfer engine
// destroyed) fails the writes within the timeout, P's request still ends and
// its pinned pages are released: nothing hangs.
#include "server/transfer_kv_sink.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "engine/engine.h"
#include "server/pd_test_support.h"
#include "transfer/in_process_metadata_store.h"

namespace crescent::server {
namespace {

using engine::Completion;
using engine::Engine;
using engine::EngineRequest;

class TransferKvSinkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new std::string(pd_testing::WriteTinyModel("pd_sink_test", 4)); }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::unique_ptr<Engine> Make(int64_t kv_bytes) { return pd_testing::MakeEngine(*dir_, nullptr, kv_bytes); }
  std::unique_ptr<transfer::TransferEngine> Transfer() { return pd_testing::ShmTransfer(meta_); }
  static EngineRequest Req(int64_t n, int salt, int64_t max_tokens) {
    return pd_testing::GreedyRequest(n, salt, max_tokens);
  }
  static Completion Run(Engine& e, EngineRequest r) { return pd_testing::RunToEnd(e, std::move(r)); }
  static engine::KvCacheShape Shape(const Engine& e) { return e.kv_shape(); }
  static int64_t Pages(const Engine& e) { return e.Stats().kv_pages_total; }

  std::shared_ptr<transfer::InProcessMetadataStore> meta_ = std::make_shared<transfer::InProcessMetadataStore>();
  static std::string* dir_;
};
std::string* TransferKvSinkTest::dir_ = nullptr;

TEST_F(TransferKvSinkTest, LayersWrittenIntoTheDecodeEnginesPagesGiveTheSameTokens) {
  const int64_t p_bytes = 8 << 20, d_bytes = 6 << 20;  // different pool sizes: offsets differ
  auto ref = Make(p_bytes);
  auto p = Make(p_bytes);
  auto d = Make(d_bytes);
  auto tp = Transfer();
  auto td = Transfer();
  ASSERT_TRUE(tp->RegisterBuffer(p->kv_memory().data(), p->kv_memory().size()).ok());
  ASSERT_TRUE(td->RegisterLocalMemory("pd-test/d/kv", d->kv_memory().data(), d->kv_memory().size()).ok());
  Result<transfer::SegmentId> seg = tp->OpenSegment("pd-test/d/kv");
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  for (int64_t n : {1, 17, 300}) {
    EngineRequest req = Req(n, static_cast<int>(n), 10);
    const std::vector<int32_t> want = Run(*ref, req).tokens;
    Result<engine::KvReservation> r = d->ReserveKv(req.prompt, req.params.max_tokens);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    auto sink = std::make_shared<TransferKvSink>(tp.get(), Shape(*p), KvTarget{*seg, Pages(*d), *r},
                                                 engine::KvReservationOptions{}.pages_per_checksum);
    EngineRequest pre = req;
    pre.params.max_tokens = 1;
    pre.kv_sink = sink;
    Completion first = Run(*p, pre);
    ASSERT_EQ(first.tokens.size(), 1u);
    ASSERT_TRUE(sink->Wait().ok());
    EXPECT_GT(sink->bytes_submitted(), 0);
    engine::KvCommit commit{r->id, r->generation, sink->checksums(), first.tokens[0]};
    engine::OutputQueue q;
    Result<uint64_t> id = d->SubmitPrefilled(req, commit, q.Callback());
    ASSERT_TRUE(id.ok()) << n << ": " << id.status().ToString();
    Completion rest = engine::Collect(q.WaitFinished(1)[0]);
    std::vector<int32_t> got = first.tokens;
    got.insert(got.end(), rest.tokens.begin(), rest.tokens.end());
    EXPECT_EQ(got, want) << "prompt of " << n << " tokens";
  }
}

TEST_F(TransferKvSinkTest, AGoneDecodeSideFailsTheWritesInTimeAndReleasesThePages) {
  auto p = Make(8 << 20);
  auto d = Make(6 << 20);
  auto tp = Transfer();
  auto td = Transfer();
  ASSERT_TRUE(tp->RegisterBuffer(p->kv_memory().data(), p->kv_memory().size()).ok());
  ASSERT_TRUE(td->RegisterLocalMemory("pd-test/gone/kv", d->kv_memory().data(), d->kv_memory().size()).ok());
  Result<transfer::SegmentId> seg = tp->OpenSegment("pd-test/gone/kv");
  ASSERT_TRUE(seg.ok());
  EngineRequest req = Req(200, 9, 8);
  Result<engine::KvReservation> r = d->ReserveKv(req.prompt, req.params.max_tokens);
  ASSERT_TRUE(r.ok());
  td.reset();  // the decode instance's transfer engine goes away (as in a killed process)
  auto sink = std::make_shared<TransferKvSink>(tp.get(), Shape(*p), KvTarget{*seg, Pages(*d), *r}, 16);
  EngineRequest pre = req;
  pre.params.max_tokens = 1;
  pre.kv_sink = sink;
  const auto t0 = std::chrono::steady_clock::now();
  Completion first = Run(*p, pre);
  EXPECT_EQ(first.tokens.size(), 1u);  // the prefill itself is not held up
  EXPECT_FALSE(sink->Wait().ok());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 2.0 + 3.0) << "writes end within the transfer timeout";
  // The sink goes idle and the engine unpins the pages.
  bool freed = false;
  for (int i = 0; i < 500 && !freed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    freed = sink->Idle() && p->Stats().kv_pages_used == 0;
  }
  EXPECT_TRUE(freed);
}

}  // namespace
}  // namespace crescent::server
