// `crescent bench trace`: replays a Mooncake trace (or one from `crescent
// make-trace`) against any OpenAI-compatible endpoint and reports TTFT, TBT,
// ITL, throughput, goodput against SLOs and the server's prefix hit rate
// (cli_trace_replay.h, cli_trace_report.h, docs/benchmarks.md). With
// --compare it puts earlier runs (their --out folders) side by side.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <filesystem>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "base/file.h"
#include "cli/cli_http_client.h"
#include "cli/cli_trace_replay.h"
#include "cli/cli_trace_report.h"
#include "cli/cli_trace_simulate.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "sim/trace.h"

namespace crescent::cli {
namespace {

namespace json = boost::json;

struct Opts {
  std::string url, api_key, model, trace, out;
  ReplayOptions replay;
  double ttft_slo = 0, tbt_slo = 0;
  bool json = false;
  std::vector<std::string> compare;
  std::string simulate, sim_policy = "coupled-chunked";
  int sim_prefill = 1, sim_decode = 0;
  int64_t sim_kv_tokens = 0;
};

Result<HttpReply> Get(const ReplayOptions& o, const std::string& path) {
  HttpCall call;
  return call.Run(o.url, "GET", path, "", o.api_key, 30);
}

// The numeric series of a Prometheus text page (histogram buckets left out).
json::object ParseMetrics(const std::string& text) {
  json::object out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    // name{labels} value [timestamp]: the value follows the name (labels hold no space here).
    const size_t sp = line.find(' ', line.find('}') == std::string_view::npos ? 0 : line.find('}'));
    if (sp == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, sp);
    std::string_view rest = line.substr(sp + 1);
    if (const size_t end = rest.find(' '); end != std::string_view::npos) rest = rest.substr(0, end);
    if (name.find("_bucket") != std::string_view::npos) continue;
    try {
      out[name] = std::stod(std::string(rest));
    } catch (const std::exception&) {
    }
  }
  return out;
}

// SIGINT/SIGTERM set `stop` (the replay then ends with a partial report).
class StopOnSignal {
 public:
  explicit StopOnSignal(std::atomic<bool>& stop) : stop_(stop) {
    BlockTerminationSignals();
    thread_ = std::thread([this] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGINT);
      sigaddset(&set, SIGTERM);
      const timespec tick{0, 100'000'000};
      while (!done_.load()) {
        if (sigtimedwait(&set, nullptr, &tick) > 0) {
          fmt::print(stderr, "\nbench trace: stopping (the requests in flight are cancelled)\n");
          stop_.store(true);
        }
      }
    });
  }
  ~StopOnSignal() {
    done_.store(true);
    thread_.join();
    sigset_t set;  // Ctrl-C works as usual again (and children such as gnuplot do not inherit the mask)
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  }

 private:
  std::atomic<bool>& stop_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

void RunCompare(const Opts& o) {
  std::vector<std::string> labels;
  std::vector<std::vector<RequestRecord>> runs;
  std::string table = fmt::format("{:<28} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}\n", "run", "ok", "rej",
                                  "TTFT p50", "TTFT p90", "TBT p50", "TBT p90", "req/s", "hit");
  for (const std::string& dir : o.compare) {
    Result<std::string> text = ReadFileToString(dir + "/requests.jsonl");
    if (!text.ok()) throw CommandError("bench trace --compare: " + dir + " holds no requests.jsonl (a --out folder)");
    std::vector<RequestRecord> recs = ValueOrThrow(ParseRecords(*text, dir + "/requests.jsonl"));
    double elapsed = 0;
    if (Result<std::string> rep = ReadFileToString(dir + "/report.json"); rep.ok()) {
      boost::system::error_code ec;
      json::value v = json::parse(*rep, ec);
      if (!ec && v.is_object()) {
        if (const json::value* s = v.as_object().if_contains("summary"); s && s->is_object()) {
          if (const json::value* e = s->as_object().if_contains("elapsed_s"); e && e->is_number()) {
            elapsed = e->to_number<double>();
          }
        }
      }
    }
    const TraceSummary s = Summarize(recs, elapsed, 0, 0, false);
    const std::string label = std::filesystem::path(dir).filename().string();
    table += fmt::format("{:<28} {:>6} {:>6} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f} {:>8.2f} {:>7.1f}%\n", label, s.ok,
                         s.rejected, s.ttft.p50 * 1e3, s.ttft.p90 * 1e3, s.tbt.p50 * 1e3, s.tbt.p90 * 1e3,
                         s.requests_per_s, s.hit_rate * 100);
    labels.push_back(label.empty() ? dir : label);
    runs.push_back(std::move(recs));
  }
  fmt::print("{}", table);
  const std::string out = o.out.empty() ? "." : o.out;
  std::filesystem::create_directories(out);
  for (const std::string& f : ValueOrThrow(WriteComparePlots(out, labels, runs))) fmt::print("wrote {}\n", f);
}

void Run(const Opts& o) {
  if (!o.compare.empty()) return RunCompare(o);
  if (o.url.empty() || o.trace.empty()) throw CommandError("bench trace needs --url and --trace (or --compare DIR...)");
  if (o.out.find_first_of("'\"") != std::string::npos) throw CommandError("bench trace: --out must not hold quotes");
  ReplayOptions ro = o.replay;
  ro.url = ValueOrThrow(ParseHttpUrl(o.url));
  ro.api_key = o.api_key;
  sim::Trace trace = ValueOrThrow(sim::LoadTrace(o.trace));
  if (trace.requests.empty()) throw CommandError("bench trace: " + o.trace + " holds no request");
  // The endpoint answers, and names its model when --model is not given.
  Result<HttpReply> models = Get(ro, "/v1/models");
  if (!models.ok()) throw CommandError("bench trace: " + o.url + " does not answer: " + models.status().message());
  if (models->status != 200) {
    throw CommandError(fmt::format("bench trace: GET /v1/models answered {}: {}", models->status, models->body.substr(0, 200)));
  }
  ro.model = o.model;
  if (ro.model.empty()) {
    boost::system::error_code ec;
    json::value v = json::parse(models->body, ec);
    const json::value* data = !ec && v.is_object() ? v.as_object().if_contains("data") : nullptr;
    if (data && data->is_array() && !data->as_array().empty() && data->as_array()[0].is_object()) {
      if (const json::value* id = data->as_array()[0].as_object().if_contains("id"); id && id->is_string()) {
        ro.model = std::string(id->as_string());
      }
    }
  }
  const std::vector<PlannedRequest> plan = PlanArrivals(trace, ro);
  std::optional<sim::CostProfile> profile;
  if (!o.simulate.empty()) profile = ValueOrThrow(sim::LoadCostProfile(o.simulate));
  Result<HttpReply> before = Get(ro, "/metrics");
  std::atomic<bool> stop{false};
  bool interrupted = false;
  double elapsed = 0;
  const bool tty = ::isatty(2);
  double last_line = -10;
  auto progress = [&](const ReplayProgress& p) {
    if (!tty && p.elapsed_s - last_line < 10 && p.done < p.total) return;
    last_line = p.elapsed_s;
    fmt::print(stderr, "{}bench trace: {}/{} sent, {} done, {} rejected, {} failed, {:.0f} s{}", tty ? "\r" : "",
               p.sent, p.total, p.done, p.rejected, p.failed, p.elapsed_s, tty ? "   " : "\n");
  };
  std::vector<RequestRecord> recs;
  {
    StopOnSignal on_signal(stop);
    recs = Replay(plan, ro, stop, &interrupted, &elapsed, progress);
  }
  if (tty) fmt::print(stderr, "\n");
  Result<HttpReply> after = Get(ro, "/metrics");
  const TraceSummary s = Summarize(recs, elapsed, o.ttft_slo, o.tbt_slo, interrupted);
  const std::string title = fmt::format("bench trace: {} against {} ({} requests{})", o.trace, o.url, plan.size(),
                                        ro.request_rate > 0 ? fmt::format(", {:g} requests/s", ro.request_rate) : "");
  json::object report{{"summary", SummaryJson(s)},
                      {"options", json::object{{"url", o.url},
                                               {"trace", o.trace},
                                               {"model", ro.model},
                                               {"chat", ro.chat},
                                               {"time_scale", ro.time_scale},
                                               {"length_scale", ro.length_scale},
                                               {"output_scale", ro.output_scale},
                                               {"max_requests", ro.max_requests},
                                               {"duration_s", ro.duration_s},
                                               {"request_rate", ro.request_rate},
                                               {"burstiness", ro.burstiness},
                                               {"seed", ro.seed}}}};
  const bool have_metrics = before.ok() && before->status == 200 && after.ok() && after->status == 200;
  if (have_metrics) {
    report["metrics_before"] = ParseMetrics(before->body);
    report["metrics_after"] = ParseMetrics(after->body);
  }
  std::string sim_text, plot_error;
  if (profile && interrupted) {
    sim_text = "  simulator: not run (the replay was interrupted: the two would cover other requests)\n";
  } else if (profile) {
    // The server's KV pool in tokens, from its /metrics (pages of 16 tokens).
    int64_t kv_tokens = o.sim_kv_tokens;
    if (have_metrics && kv_tokens == 0) {
      const json::object m = ParseMetrics(before->body);
      if (const json::value* v = m.if_contains("crescent_kv_pages_total"); v && v->is_number()) {
        kv_tokens = static_cast<int64_t>(v->to_number<double>()) * 16;
      }
    }
    SimulatedRun sr = ValueOrThrow(SimulateLikeReplay(plan, recs, *profile, ro, kv_tokens, o.sim_policy,
                                                           o.sim_prefill, o.sim_decode));
    report["simulator"] = sr.json;
    sim_text = sr.text;
  }
  if (!o.out.empty()) {
    std::filesystem::create_directories(o.out);
    std::string lines;
    for (const RequestRecord& r : recs) lines += json::serialize(RecordJson(r)) + "\n";
    ThrowIfError(WriteFileAtomic(o.out + "/requests.jsonl", lines));
    ThrowIfError(WriteFileAtomic(o.out + "/report.json", json::serialize(report) + "\n"));
    if (have_metrics) {
      ThrowIfError(WriteFileAtomic(o.out + "/metrics_before.txt", before->body));
      ThrowIfError(WriteFileAtomic(o.out + "/metrics_after.txt", after->body));
    }
    Result<std::vector<std::string>> plots = WritePlots(o.out, recs, title);
    if (!plots.ok()) plot_error = "bench trace: the report is in " + o.out + " but no plots: " + plots.status().message();
  }
  if (o.json) {
    json::object j = report["summary"].as_object();
    if (profile) j["simulator"] = report["simulator"];
    fmt::print("{}\n", json::serialize(j));
  } else {
    fmt::print("{}{}", FormatSummary(s, title), sim_text);
    if (!o.out.empty()) fmt::print("  report, requests and plots in {}\n", o.out);
  }
  if (!plot_error.empty()) throw CommandError(plot_error);  // after the report was printed
  int shown = 0;
  for (const RequestRecord& r : recs) {
    if (r.outcome == Outcome::kFailed && shown++ < 3) fmt::print(stderr, "  failed: request {}: {}\n", r.index, r.error);
  }
}

}  // namespace

void RegisterBenchTrace(CLI::App& bench) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = bench.add_subcommand(
      "trace", "Replay a Mooncake trace against an OpenAI endpoint: TTFT, TBT, throughput, goodput, hit rate, plots");
  cmd->add_option("--url", o->url, "Base URL of the server (http://HOST:PORT)");
  cmd->add_option("--api-key", o->api_key, "Bearer token for the server");
  cmd->add_option("--model", o->model, "Model name in requests (default: the first of /v1/models)");
  cmd->add_option("--trace", o->trace, "Trace file (JSON lines: timestamp, input_length, output_length, hash_ids)");
  cmd->add_option("--time-scale", o->replay.time_scale, "Arrival = timestamp x this (0.5: twice as fast)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--length-scale", o->replay.length_scale, "Prompt lengths (and 512-token blocks) x this")
      ->check(CLI::Range(1e-4, 100.0))
      ->capture_default_str();
  cmd->add_option("--output-scale", o->replay.output_scale, "Output lengths (max_tokens) x this")
      ->check(CLI::Range(1e-4, 100.0))
      ->capture_default_str();
  cmd->add_option("--max-requests", o->replay.max_requests, "Only the first N requests (0: all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--duration", o->replay.duration_s, "Send no request after S seconds (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--request-rate", o->replay.request_rate, "Requests/s instead of the trace's timestamps")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--burstiness", o->replay.burstiness, "Gamma shape of the gaps with --request-rate (1: Poisson)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--seed", o->replay.seed, "Seed of the arrivals with --request-rate")->capture_default_str();
  cmd->add_option("--max-concurrency", o->replay.max_concurrency, "Requests in flight at most")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--vocab", o->replay.vocab, "Prompt token ids are drawn from [100, this)")
      ->check(CLI::Range(int64_t{101}, int64_t{1} << 30))
      ->capture_default_str();
  cmd->add_option("--timeout", o->replay.timeout_s, "Seconds a request may go without data")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--ttft-slo", o->ttft_slo, "TTFT SLO in seconds (goodput)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--tbt-slo", o->tbt_slo, "TBT SLO in seconds (goodput)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--chat", o->replay.chat, "Send text prompts to /v1/chat/completions");
  cmd->add_option("--out", o->out, "Folder for report.json, requests.jsonl, /metrics before and after, and plots");
  cmd->add_flag("--json", o->json, "Print the summary as one JSON object");
  cmd->add_option("--simulate", o->simulate,
                  "A cost profile (bench engine --profile-out): also simulate this run and compare the TTFTs");
  cmd->add_option("--sim-policy", o->sim_policy,
                  "The simulator's policy for --simulate (a cluster's with --sim-decode: random, least-loaded, "
                  "local-cache, global-cache)")
      ->check(CLI::IsMember({"coupled", "coupled-prefix", "coupled-chunked", "random", "least-loaded", "local-cache",
                             "global-cache"}))
      ->capture_default_str();
  cmd->add_option("--sim-prefill", o->sim_prefill, "--simulate: prefill instances (a cluster)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--sim-decode", o->sim_decode, "--simulate: decode instances (0: one all-in-one instance)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--sim-kv-tokens", o->sim_kv_tokens,
                  "--simulate: KV tokens of each instance (default: the server's /metrics crescent_kv_pages_total x 16)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--compare", o->compare, "Earlier --out folders: side by side, and their CDFs on one chart")
      ->expected(1, -1);
  cmd->callback([o] { Run(*o); });
}

}  // namespace crescent::cli
