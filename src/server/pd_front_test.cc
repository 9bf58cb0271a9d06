// The prefill/decode split end to end in one process, over the real pieces:
// two engines, two transfer engines (UCX shared memory) that know nothing of
// each other's segments until a Reserve reply carries the descriptor, the
// KvInstance gRPC services on 127.0.0.1, and the front. Outputs (token ids,
// log-probs, text) equal one engine's; a decode instance that is gone, or an
// instance of another model, ends the request with a clear error in bounded
// time; a cancelled request ends.
#include "server/pd_front.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "model/tokenizer.h"
#include "server/kv_instance_service.h"
#include "server/pd_test_support.h"
#include "transfer/in_process_metadata_store.h"

namespace crescent::server {
namespace {

using engine::Completion;
using engine::Engine;
using engine::EngineRequest;

class PdFrontTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(pd_testing::WriteTinyModel("pd_front_test", 6));
    tok_ = new model::Tokenizer(model::Tokenizer::FromDirectory(*dir_).value());
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete tok_;
    delete dir_;
  }
  static std::unique_ptr<Engine> Make(int64_t kv_bytes, int64_t lease_ms = 10'000) {
    return pd_testing::MakeEngine(*dir_, tok_, kv_bytes, lease_ms);
  }
  static std::unique_ptr<transfer::TransferEngine> Transfer(std::shared_ptr<transfer::MetadataStore> meta) {
    return pd_testing::ShmTransfer(std::move(meta));
  }
  static EngineRequest Req(int64_t n, int salt, int64_t max_tokens) {
    EngineRequest r = pd_testing::GreedyRequest(n, salt, max_tokens);
    r.params.sampling.logprobs = 2;
    return r;
  }
  template <class E>
  static Completion Run(E& e, EngineRequest r) {
    return pd_testing::RunToEnd(e, std::move(r));
  }

  void SetUp() override { Build(10'000); }
  void Build(int64_t d_lease_ms) {
    svc_p_.reset();
    svc_d_.reset();
    tp_.reset();
    td_.reset();
    ref_ = Make(8 << 20);
    p_ = Make(8 << 20);
    d_ = Make(6 << 20, d_lease_ms);
    tp_ = Transfer(meta_p_);
    td_ = Transfer(meta_d_);
    ASSERT_TRUE(tp_->RegisterBuffer(p_->kv_memory().data(), p_->kv_memory().size()).ok());
    ASSERT_TRUE(td_->RegisterLocalMemory("pd/d0/kv", d_->kv_memory().data(), d_->kv_memory().size()).ok());
    KvInstanceOptions dopt;
    dopt.segment = "pd/d0/kv";
    dopt.role = "decode";
    svc_d_ = KvInstanceService::Start(dopt, d_.get(), td_.get(), meta_d_).value();
    svc_p_ = KvInstanceService::Start(KvInstanceOptions{}, p_.get(), tp_.get(), meta_p_).value();
  }
  PdFrontOptions FrontOptions() {
    PdFrontOptions o;
    o.prefill = {svc_p_->address()};
    o.decode = {svc_d_->address()};
    o.model_hash = p_->model_hash();
    o.connect_timeout_ms = 3000;
    return o;
  }

  std::shared_ptr<transfer::InProcessMetadataStore> meta_p_ = std::make_shared<transfer::InProcessMetadataStore>();
  std::shared_ptr<transfer::InProcessMetadataStore> meta_d_ = std::make_shared<transfer::InProcessMetadataStore>();
  std::unique_ptr<Engine> ref_, p_, d_;
  std::unique_ptr<transfer::TransferEngine> tp_, td_;
  std::unique_ptr<KvInstanceService> svc_p_, svc_d_;
  static std::string* dir_;
  static model::Tokenizer* tok_;
};
std::string* PdFrontTest::dir_ = nullptr;
model::Tokenizer* PdFrontTest::tok_ = nullptr;

TEST_F(PdFrontTest, OutputsThroughPrefillAndDecodeInstancesEqualOneEngines) {
  auto front = PdFront::Create(FrontOptions()).value();
  for (int64_t n : {1, 40, 300}) {
    EngineRequest req = Req(n, static_cast<int>(n) + 1, 12);
    Completion want = Run(*ref_, req);
    Completion got = Run(*front, req);
    ASSERT_TRUE(got.error.ok()) << got.error.ToString();
    EXPECT_EQ(got.tokens, want.tokens) << n;
    EXPECT_EQ(got.text, want.text) << n;
    ASSERT_EQ(got.samples.size(), want.samples.size());
    for (size_t i = 0; i < got.samples.size(); ++i) {
      EXPECT_NEAR(got.samples[i].logprob, want.samples[i].logprob, 1e-3);
      ASSERT_EQ(got.samples[i].top.size(), 2u);
    }
    EXPECT_EQ(got.finish_reason, engine::FinishReason::kLength);
    EXPECT_EQ(got.usage.completion_tokens, 12);
    EXPECT_EQ(got.usage.prompt_tokens, n);
  }
  // Sampled with a seed: the same draws as one engine.
  EngineRequest s = Req(50, 3, 10);
  s.params.sampling.temperature = 0.9f;
  s.params.seed = 42;
  s.params.has_seed = true;
  EXPECT_EQ(Run(*front, s).tokens, Run(*ref_, s).tokens);
  // A request of one token ends on the prefill instance.
  EngineRequest one = Req(30, 4, 1);
  Completion c1 = Run(*front, one);
  EXPECT_EQ(c1.tokens, Run(*ref_, one).tokens);
  EXPECT_EQ(c1.finish_reason, engine::FinishReason::kLength);
  EXPECT_EQ(front->in_flight(), 0);
}

TEST_F(PdFrontTest, AGoneDecodeInstanceOrAnotherModelIsAClearErrorInTime) {
  // A front of another model refuses the instances.
  PdFrontOptions wrong = FrontOptions();
  wrong.model_hash.lo ^= 1;
  Result<std::unique_ptr<PdFront>> other = PdFront::Create(wrong);
  EXPECT_EQ(other.status().code(), StatusCode::kUnavailable) << other.status().ToString();
  // A prefill instance named as a decode one is refused too.
  PdFrontOptions swapped = FrontOptions();
  swapped.decode = swapped.prefill;
  EXPECT_FALSE(PdFront::Create(swapped).ok());
  Completion c;
  // The decode instance goes away.
  auto front = PdFront::Create(FrontOptions()).value();
  svc_d_.reset();
  const auto t0 = std::chrono::steady_clock::now();
  c = Run(*front, Req(20, 2, 4));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(c.finish_reason, engine::FinishReason::kError);
  EXPECT_EQ(c.error.code(), StatusCode::kUnavailable) << c.error.ToString();
  EXPECT_LT(s, 2 * 5.0 + 2) << "two tries, each within the reserve deadline";
}

// A prefill longer than the decode instance's lease: the prefill instance
// keeps the reservation alive while it writes (none expires), and the
// output is one engine's.
TEST_F(PdFrontTest, APrefillLongerThanTheLeaseKeepsItsReservation) {
  Build(/*d_lease_ms=*/40);
  EngineRequest req = Req(2500, 8, 6);  // 40 steps of 64 tokens: a few lease periods even on a fast host
  const Completion want = Run(*ref_, req);
  auto front = PdFront::Create(FrontOptions()).value();
  const auto t0 = std::chrono::steady_clock::now();
  Completion got = Run(*front, req);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(got.error.ok()) << got.error.ToString();
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_GT(s, 3 * 0.040) << "the prefill was not longer than the lease: the test proves nothing";
  EXPECT_EQ(d_->kv_reservation_stats().expired, 0);
  EXPECT_EQ(d_->kv_reservation_stats().committed, 1);
}

// The decode instance ends a reservation while the prefill writes into it:
// the prefill instance's next extend is refused, it stops writing and gives
// up (the front then retries with a fresh reservation).
TEST_F(PdFrontTest, AReservationEndedUnderAPrefillStopsItsWrites) {
  Build(/*d_lease_ms=*/300);
  EngineRequest req = Req(2500, 9, 6);  // 40 steps of 64 prompt tokens
  const Completion want = Run(*ref_, req);
  auto front = PdFront::Create(FrontOptions()).value();
  engine::OutputQueue q;
  const int64_t steps0 = p_->Stats().steps;
  ASSERT_TRUE(front->Submit(req, q.Callback()).ok());
  // The prefill is writing once it has run 10 of its steps: counted, not
  // timed (a sleep sized from the reference run ended after the prefill
  // when the two ran at different speeds under load).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (p_->Stats().steps < steps0 + 10 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ASSERT_LT(p_->Stats().steps, steps0 + 40) << "the prefill ended before the reservation could be ended under it";
  d_->CancelKv(1);  // the first reservation of this decode engine
  Completion got = engine::Collect(q.WaitFinished(1)[0]);
  EXPECT_EQ(svc_p_->stats().leases_lost, 1) << "the prefill instance did not see the reservation end";
  EXPECT_GE(d_->kv_reservation_stats().cancelled, 1);
  // The retry finds the ended reservation's pages still fenced (this decode
  // pool has room for one such prompt): a clean error, nothing reused.
  if (!got.error.ok()) {
    EXPECT_EQ(got.error.code(), StatusCode::kResourceExhausted) << got.error.ToString();
    EXPECT_GT(d_->kv_reservation_stats().quarantined_pages, 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2 * 300 + 100));  // lease end + quarantine
  Completion again = Run(*front, req);
  ASSERT_TRUE(again.error.ok()) << again.error.ToString();
  EXPECT_EQ(again.tokens, want.tokens);
}

}  // namespace
}  // namespace crescent::server
