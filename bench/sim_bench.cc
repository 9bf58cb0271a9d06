// The simulator on the whole Mooncake conversation trace (12,031 requests), one
// policy per run: wall time per replay (goal: under 10 s on these machines).
//   build/bench/crescent_sim_bench
#include <benchmark/benchmark.h>

#include "base/check.h"
#include "sim/simulation.h"
#include "sim/trace.h"

namespace {

const crescent::sim::Trace& Conversation() {
  static const crescent::sim::Trace* t = [] {
    auto r = crescent::sim::LoadTrace(CRESCENT_SOURCE_DIR "/../shared/traces/conversation_trace.jsonl");
    CHECK(r.ok()) << r.status().ToString();
    return new crescent::sim::Trace(std::move(r).value());
  }();
  return *t;
}

void BM_ConversationTrace(benchmark::State& st, const char* policy) {
  crescent::sim::SimConfig c;
  c.policy = policy;
  for (auto _ : st) {
    auto r = crescent::sim::Simulate(Conversation(), c);
    CHECK(r.ok());
    benchmark::DoNotOptimize(r);
  }
  st.counters["requests"] = static_cast<double>(Conversation().requests.size());
}

BENCHMARK_CAPTURE(BM_ConversationTrace, random, "random")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ConversationTrace, least_loaded, "least-loaded")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ConversationTrace, local_cache, "local-cache")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ConversationTrace, global_cache, "global-cache")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
