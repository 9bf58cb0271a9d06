// `crescent simulate`: replay a Mooncake-format trace (a released one, or one
// crescent generates when --trace is absent) on a simulated cluster under one
// Conductor policy (or a coupled vLLM-like baseline) and print TTFT, TBT, cache
// hit rate, the effective request ratio under the SLOs, rejections and prefill
// compute; or, with --hit-rate-curve, Figure 9's hit rate against LRU capacity.
// Docs: docs/simulator.md.
#include <chrono>
#include <exception>
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "cli/commands.h"
#include "sim/hit_rate.h"
#include "sim/simulation.h"
#include "sim/trace.h"
#include "sim/trace_gen.h"

namespace crescent::cli {
namespace {

struct SimulateOpts {
  std::string trace, profile;
  sim::SimConfig config;
  bool no_admission = false;
  bool json = false;
  bool hit_rate_curve = false;
  bool per_instance = false;
  int64_t limit = 0;
};

std::string InstanceCounts(const std::vector<int64_t>& counts) {
  std::string s;
  for (size_t i = 0; i < counts.size(); ++i) s += (i ? "," : "") + std::to_string(counts[i]);
  return s;
}

void PrintHitRateCurve(const sim::Trace& trace, int64_t block_tokens, bool json) {
  std::string rows;
  if (!json) std::printf("%-16s %s\n", "capacity_tokens", "hit_rate");
  for (int64_t cap = 10'000; cap <= 1'000'000'000; cap *= 10) {
    const double h = sim::LruHitRate(trace, cap, block_tokens);
    if (json) {
      rows += fmt::format("{}{{\"capacity_tokens\":{},\"hit_rate\":{:.6f}}}", rows.empty() ? "" : ",", cap, h);
    } else {
      std::printf("%-16lld %.4f\n", static_cast<long long>(cap), h);
    }
  }
  const double max = sim::MaxHitRate(trace, block_tokens);
  if (json) {
    std::printf("{\"curve\":[%s],\"max_hit_rate\":%.6f}\n", rows.c_str(), max);
  } else {
    std::printf("%-16s %.4f\n", "infinite", max);
  }
}

void RunSimulate(const SimulateOpts& o) {
  sim::SimConfig cfg = o.config;
  cfg.admission = !o.no_admission;
  if (!o.profile.empty()) cfg.profile = ValueOrThrow(sim::LoadCostProfile(o.profile));
  sim::Trace trace;
  if (o.trace.empty()) {
    sim::TraceGenOptions g;  // the size and structure of Mooncake's conversation trace
    g.requests = 12031;
    trace = ValueOrThrow(sim::GenerateTrace(g));
    std::fprintf(stderr,
                 "simulate: no --trace given: replaying a generated conversation-like trace (%lld requests, the same "
                 "as `crescent make-trace --like conversation --requests %lld --seed %llu`); --trace FILE replays "
                 "a real one\n",
                 static_cast<long long>(g.requests), static_cast<long long>(g.requests),
                 static_cast<unsigned long long>(g.seed));
  } else {
    trace = ValueOrThrow(sim::LoadTrace(o.trace));
  }
  if (o.limit > 0) trace = trace.Prefix(static_cast<size_t>(o.limit));
  if (o.hit_rate_curve) {
    PrintHitRateCurve(trace, static_cast<int64_t>(cfg.profile.block_tokens), o.json);
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  sim::SimResult r = ValueOrThrow(sim::Simulate(trace, cfg));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const sim::SimSummary s = sim::Summarize(r, cfg.ttft_slo_s, cfg.tbt_slo_s);
  if (o.json) {
    std::printf(
        "{\"policy\":\"%s\",\"requests\":%lld,\"rejected\":%lld,\"ttft_avg_s\":%.6f,\"ttft_p50_s\":%.6f,"
        "\"ttft_p90_s\":%.6f,\"ttft_p99_s\":%.6f,\"tbt_avg_s\":%.6f,\"tbt_p90_s\":%.6f,\"cache_hit_rate\":%.6f,"
        "\"effective_request_ratio\":%.6f,\"prefill_compute_s\":%.3f,\"transfers\":%lld,"
        "\"transferred_tokens\":%lld,\"simulated_s\":%.3f,\"wall_s\":%.3f,\"requests_per_instance\":[%s]}\n",
        cfg.policy.c_str(), static_cast<long long>(s.requests), static_cast<long long>(s.rejected), s.ttft_avg_s,
        s.ttft_p50_s, s.ttft_p90_s, s.ttft_p99_s, s.tbt_avg_s, s.tbt_p90_s, s.cache_hit_rate,
        s.effective_request_ratio, s.prefill_compute_s, static_cast<long long>(r.transfers),
        static_cast<long long>(r.transferred_tokens), r.end_s, wall, InstanceCounts(r.requests_per_instance).c_str());
    return;
  }
  std::printf("policy %s: %lld requests, %lld rejected (simulated %.0f s in %.2f s)\n", cfg.policy.c_str(),
              static_cast<long long>(s.requests), static_cast<long long>(s.rejected), r.end_s, wall);
  std::printf("TTFT  avg %.3f s  p50 %.3f s  p90 %.3f s  p99 %.3f s\n", s.ttft_avg_s, s.ttft_p50_s, s.ttft_p90_s,
              s.ttft_p99_s);
  std::printf("TBT   avg %.4f s  p90 %.4f s  (mean of each request's longest 10%% token intervals)\n", s.tbt_avg_s,
              s.tbt_p90_s);
  std::printf("cache hit rate %.4f   effective request ratio %.4f (TTFT SLO %g s, TBT SLO %g s)\n", s.cache_hit_rate,
              s.effective_request_ratio, cfg.ttft_slo_s, cfg.tbt_slo_s);
  std::printf("prefill compute %.1f node-s   prefix transfers %lld (%lld tokens)\n", s.prefill_compute_s,
              static_cast<long long>(r.transfers), static_cast<long long>(r.transferred_tokens));
  if (o.per_instance) std::printf("requests per instance: %s\n", InstanceCounts(r.requests_per_instance).c_str());
}

// CLI11's number checks print DBL_MAX in their messages; these say it plainly.
CLI::Validator NumberAtLeast(double lo, bool strict) {
  return CLI::Validator(
      [lo, strict](std::string& text) -> std::string {
        double v = 0;
        try {
          size_t used = 0;
          v = std::stod(text, &used);
          if (used != text.size()) return "'" + text + "' is not a number";
        } catch (const std::exception&) {
          return "'" + text + "' is not a number";
        }
        if (strict ? v > lo : v >= lo) return "";
        return "must be " + std::string(strict ? "greater than " : "at least ") + fmt::format("{}", lo);
      },
      strict ? "NUMBER > " + fmt::format("{}", lo) : "NUMBER >= " + fmt::format("{}", lo));
}

}  // namespace

void RegisterSimulate(CLI::App& app) {
  auto o = std::make_shared<SimulateOpts>();
  CLI::App* cmd = app.add_subcommand("simulate", "Replay a Mooncake trace on a simulated cluster");
  cmd->add_option("--trace", o->trace,
                  "Trace file (JSON lines: timestamp, input_length, output_length, hash_ids); default: a generated "
                  "conversation-like trace");
  cmd->add_option("--prefill", o->config.prefill, "Prefill instances (coupled: N+M coupled instances)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--decode", o->config.decode, "Decode instances")->check(CLI::Range(0, 100000));
  cmd->add_option("--policy", o->config.policy,
                  "random | least-loaded | local-cache | global-cache | coupled | coupled-prefix | coupled-chunked")
      ->check(CLI::IsMember({"random", "least-loaded", "local-cache", "global-cache", "coupled", "coupled-prefix",
                             "coupled-chunked"}));
  cmd->add_option("--cache-tokens-per-node", o->config.cache_tokens_per_node, "DRAM KVCache per prefill node, tokens")
      ->check(NumberAtLeast(0, false));
  cmd->add_option("--ttft-slo", o->config.ttft_slo_s, "TTFT SLO in seconds (0: none)")->check(NumberAtLeast(0, false));
  cmd->add_option("--tbt-slo", o->config.tbt_slo_s, "TBT SLO in seconds (0: none)")->check(NumberAtLeast(0, false));
  cmd->add_option("--speedup", o->config.speedup, "Replay the trace X times faster")->check(NumberAtLeast(0, true));
  cmd->add_option("--seed", o->config.seed, "Seed (the random policy's stream)");
  cmd->add_option("--balancing-threshold", o->config.kvcache_balancing_threshold,
                  "Algorithm 1's kvcache_balancing_threshold (>= 1)")
      ->check(NumberAtLeast(1, false));
  cmd->add_option("--profile", o->profile, "Cost profile JSON overriding the LLaMA3-70B/8xA800 defaults");
  cmd->add_option("--limit", o->limit, "Replay only the first N requests")->check(NumberAtLeast(0, false));
  cmd->add_flag("--no-admission", o->no_admission, "Never reject, even when a prediction breaks an SLO");
  cmd->add_flag("--per-instance", o->per_instance, "Print the request count of every prefill instance");
  cmd->add_flag("--hit-rate-curve", o->hit_rate_curve,
                "Print Figure 9 instead: LRU hit rate at 1e4..1e9 tokens and the maximum");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] { RunSimulate(*o); });
}

}  // namespace crescent::cli
