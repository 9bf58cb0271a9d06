// `crescent make-trace`: write a synthetic request trace in the Mooncake format
// (sim/trace_gen.h); `crescent trace-stats`: the statistics docs/simulator.md
// compares between generated and real traces (sim/trace_stats.h).
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "base/file.h"
#include "cli/commands.h"
#include "sim/trace.h"
#include "sim/trace_gen.h"
#include "sim/trace_stats.h"

namespace crescent::cli {
namespace {

std::string QuantileRow(const std::vector<std::pair<double, int64_t>>& qs, bool json) {
  std::string s;
  for (const auto& [q, v] : qs) {
    s += json ? fmt::format("{}\"{}\":{}", s.empty() ? "" : ",", q, v) : fmt::format(" {:>7}", v);
  }
  return s;
}

void PrintStats(const std::string& name, const sim::TraceStats& s, bool json) {
  if (json) {
    std::string curve;
    for (const auto& [cap, h] : s.lru_curve) {
      curve += fmt::format("{}{{\"capacity_tokens\":{},\"hit_rate\":{:.4f}}}", curve.empty() ? "" : ",", cap, h);
    }
    std::printf(
        "{\"trace\":\"%s\",\"requests\":%lld,\"duration_s\":%.1f,\"requests_per_s\":%.3f,\"mean_input\":%.1f,"
        "\"mean_output\":%.1f,\"input_quantiles\":{%s},\"output_quantiles\":{%s},\"share_first_block\":%.4f,"
        "\"share_two_blocks\":%.4f,\"max_hit_rate\":%.4f,\"lru_curve\":[%s]}\n",
        name.c_str(), static_cast<long long>(s.requests), s.duration_s, s.requests_per_s, s.mean_input, s.mean_output,
        QuantileRow(s.input_quantiles, true).c_str(), QuantileRow(s.output_quantiles, true).c_str(),
        s.share_first_block, s.share_two_blocks, s.max_hit_rate, curve.c_str());
    return;
  }
  std::printf("%s: %lld requests over %.0f s (%.2f requests/s)\n", name.c_str(), static_cast<long long>(s.requests),
              s.duration_s, s.requests_per_s);
  std::string head;
  for (double q : sim::kTraceQuantiles) head += fmt::format(" {:>7}", fmt::format("p{}", q * 100));
  std::printf("%-16s%s    mean\n", "quantile", head.c_str());
  std::printf("%-16s%s %7.0f\n", "input tokens", QuantileRow(s.input_quantiles, false).c_str(), s.mean_input);
  std::printf("%-16s%s %7.0f\n", "output tokens", QuantileRow(s.output_quantiles, false).c_str(), s.mean_output);
  std::printf("sharing: %.1f%% of requests reuse an earlier first block, %.1f%% two or more blocks\n",
              100 * s.share_first_block, 100 * s.share_two_blocks);
  std::printf("LRU hit rate by capacity (tokens):");
  for (const auto& [cap, h] : s.lru_curve) std::printf(" %lld:%.3f", static_cast<long long>(cap), h);
  std::printf(" inf:%.3f\n", s.max_hit_rate);
}

}  // namespace

void RegisterTrace(CLI::App& app) {
  auto gen = std::make_shared<sim::TraceGenOptions>();
  auto out = std::make_shared<std::string>();
  auto stats = std::make_shared<bool>(false);
  CLI::App* make = app.add_subcommand(
      "make-trace", "Write a synthetic trace in the Mooncake format (timestamp, input_length, output_length, hash_ids)");
  make->add_option("--out", *out, "Output file (JSON lines)")->required();
  make->add_option("--requests", gen->requests, "Requests")->check(CLI::Range(int64_t{1}, int64_t{10'000'000}));
  make->add_option("--seed", gen->seed, "Seed (the same seed gives the same trace)");
  make->add_option("--like", gen->like, "conversation (multi-turn sessions) | synthetic (shared documents)")
      ->check(CLI::IsMember({"conversation", "synthetic"}));
  make->add_option("--rate", gen->requests_per_s, "Mean requests per second (0: the real trace's rate)")
      ->check(CLI::NonNegativeNumber);
  make->add_flag("--stats", *stats, "Also print the trace's statistics (as trace-stats does)");
  make->callback([gen, out, stats] {
    sim::Trace t = ValueOrThrow(sim::GenerateTrace(*gen));
    ThrowIfError(WriteFileAtomic(*out, sim::FormatTrace(t)));
    std::fprintf(stderr, "make-trace: wrote %zu %s-like requests to %s (seed %llu)\n", t.requests.size(),
                 gen->like.c_str(), out->c_str(), static_cast<unsigned long long>(gen->seed));
    if (*stats) PrintStats(*out, sim::ComputeTraceStats(t), false);
  });

  auto files = std::make_shared<std::vector<std::string>>();
  auto json = std::make_shared<bool>(false);
  CLI::App* st = app.add_subcommand("trace-stats", "Print a trace's lengths, arrival rate, prefix sharing and "
                                                   "LRU hit-rate curve");
  st->add_option("traces", *files, "Trace files")->required();
  st->add_flag("--json", *json, "One JSON object a trace");
  st->callback([files, json] {
    for (const std::string& f : *files) PrintStats(f, sim::ComputeTraceStats(ValueOrThrow(sim::LoadTrace(f))), *json);
  });
}

}  // namespace crescent::cli
