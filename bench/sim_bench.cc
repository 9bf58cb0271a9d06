// The simulator on a whole conversation trace (12,031 requests), one policy per
// run: wall time per replay (goal: under 10 s on these machines). The trace is
// Mooncake's conversation_trace.jsonl from $CRESCENT_TRACES_DIR when that is
// set, else one generated with the same size and structure (crescent make-trace).
//   [CRESCENT_TRACES_DIR=DIR] build/bench/crescent_sim_bench
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "base/check.h"
#include "sim/simulation.h"
#include "sim/trace.h"
#include "sim/trace_gen.h"

namespace {

const crescent::sim::Trace& Conversation() {
  static const crescent::sim::Trace* t = [] {
    const char* dir = std::getenv("CRESCENT_TRACES_DIR");
    crescent::sim::TraceGenOptions g;
    g.requests = 12031;
    auto r = dir && *dir ? crescent::sim::LoadTrace(std::string(dir) + "/conversation_trace.jsonl")
                         : crescent::sim::GenerateTrace(g);
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
