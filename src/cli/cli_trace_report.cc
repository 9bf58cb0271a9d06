#include "cli/cli_trace_report.h"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "base/file.h"
#include "base/subprocess.h"

namespace crescent::cli {
namespace {

namespace json = boost::json;

double Pct(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double x = p * static_cast<double>(sorted.size() - 1);
  const size_t i = static_cast<size_t>(x);
  const double f = x - static_cast<double>(i);
  return i + 1 < sorted.size() ? sorted[i] * (1 - f) + sorted[i + 1] * f : sorted[i];
}

std::string Ms(const Dist& d) {
  if (d.n == 0) return "          -";
  return fmt::format("{:9.1f} {:9.1f} {:9.1f} {:9.1f}", d.mean * 1e3, d.p50 * 1e3, d.p90 * 1e3, d.p99 * 1e3);
}

// Sorted values of an empirical CDF, as "x y" lines (y in [0, 1]).
std::string CdfData(std::vector<double> v, double scale) {
  std::sort(v.begin(), v.end());
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    out += fmt::format("{:.6f} {:.6f}\n", v[i] * scale, static_cast<double>(i + 1) / static_cast<double>(v.size()));
  }
  return out.empty() ? "0 0\n" : out;
}

std::vector<double> Ttfts(const std::vector<RequestRecord>& recs) {
  std::vector<double> v;
  for (const auto& r : recs) {
    if (r.outcome == Outcome::kOk && r.ttft_s >= 0) v.push_back(r.ttft_s);
  }
  return v;
}
std::vector<double> Tbts(const std::vector<RequestRecord>& recs) {
  std::vector<double> v;
  for (const auto& r : recs) {
    if (r.outcome == Outcome::kOk && !r.itl_s.empty()) v.push_back(MooncakeTbt(r.itl_s));
  }
  return v;
}

// gnuplot's label strings are in double quotes: keep them plain.
std::string Quote(std::string s) {
  for (char& c : s) {
    if (c == '"' || c == '\\' || c == '\n') c = ' ';
  }
  return "\"" + s + "\"";
}

Status RunGnuplot(const std::string& dir, const std::string& script_name, const std::string& script) {
  const std::string path = dir + "/" + script_name;
  RETURN_IF_ERROR(WriteFileAtomic(path, script));
  ASSIGN_OR_RETURN(pid_t pid, SpawnProcess({"gnuplot", path}, {}, kDevNullFd, kDevNullFd, kInheritFd));
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
    return NotFound("gnuplot is not installed (Debian: apt-get install gnuplot-nox; scripts/setup.sh does)");
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return Internal("gnuplot failed on " + path);
  return Status::Ok();
}

constexpr const char* kTerminal =
    "set terminal pngcairo noenhanced size 960,600 font 'sans,11'\nset grid\nset key bottom right\n";

}  // namespace

Dist Distribution(std::vector<double> v) {
  Dist d;
  d.n = static_cast<int64_t>(v.size());
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  d.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  d.p50 = Pct(v, 0.5);
  d.p90 = Pct(v, 0.9);
  d.p99 = Pct(v, 0.99);
  return d;
}

json::object DistJson(const Dist& d) {
  return {{"n", d.n}, {"mean", d.mean}, {"p50", d.p50}, {"p90", d.p90}, {"p99", d.p99}};
}

double MooncakeTbt(const std::vector<double>& gaps) {
  if (gaps.empty()) return 0;
  std::vector<double> g = gaps;
  const size_t k = std::max<size_t>(1, (g.size() + 9) / 10);
  std::partial_sort(g.begin(), g.begin() + static_cast<std::ptrdiff_t>(k), g.end(), std::greater<>());
  return std::accumulate(g.begin(), g.begin() + static_cast<std::ptrdiff_t>(k), 0.0) / static_cast<double>(k);
}

TraceSummary Summarize(const std::vector<RequestRecord>& recs, double elapsed_s, double ttft_slo_s, double tbt_slo_s,
                       bool interrupted) {
  TraceSummary s;
  s.total = static_cast<int64_t>(recs.size());
  s.elapsed_s = elapsed_s;
  s.ttft_slo_s = ttft_slo_s;
  s.tbt_slo_s = tbt_slo_s;
  s.interrupted = interrupted;
  std::vector<double> itl, e2e;
  int64_t out_tokens = 0, within = 0;
  for (const RequestRecord& r : recs) {
    switch (r.outcome) {
      case Outcome::kOk: s.ok++; break;
      case Outcome::kRejected: s.rejected++; break;
      case Outcome::kFailed: s.failed++; break;
      case Outcome::kCancelled: s.cancelled++; break;
    }
    if (r.outcome != Outcome::kOk) continue;
    itl.insert(itl.end(), r.itl_s.begin(), r.itl_s.end());
    e2e.push_back(r.latency_s);
    out_tokens += r.output_tokens;
    s.prompt_tokens += r.prompt_tokens;
    if (r.cached_tokens >= 0) {  // the hit rate: over the prompts as the server counted them
      s.cached_reported = true;
      s.cached_tokens += r.cached_tokens;
      s.hit_denominator += r.server_prompt_tokens >= 0 ? r.server_prompt_tokens : r.prompt_tokens;
    }
    const bool ttft_ok = ttft_slo_s <= 0 || (r.ttft_s >= 0 && r.ttft_s <= ttft_slo_s);
    const bool tbt_ok = tbt_slo_s <= 0 || MooncakeTbt(r.itl_s) <= tbt_slo_s;
    if (ttft_ok && tbt_ok) within++;
  }
  s.ttft = Distribution(Ttfts(recs));
  s.tbt = Distribution(Tbts(recs));
  s.itl = Distribution(std::move(itl));
  s.e2e = Distribution(std::move(e2e));
  if (elapsed_s > 0) {
    s.requests_per_s = static_cast<double>(s.ok) / elapsed_s;
    s.output_tokens_per_s = static_cast<double>(out_tokens) / elapsed_s;
    s.goodput = static_cast<double>(within) / elapsed_s;
  }
  s.slo_fraction = s.total > 0 ? static_cast<double>(within) / static_cast<double>(s.total) : 0;
  s.hit_rate = s.hit_denominator > 0 ? static_cast<double>(s.cached_tokens) / static_cast<double>(s.hit_denominator) : 0;
  return s;
}

std::string FormatSummary(const TraceSummary& s, const std::string& title) {
  std::string o = fmt::format("{}{}\n", title, s.interrupted ? " (interrupted: a partial report)" : "");
  o += fmt::format("  requests   {} total: {} ok, {} rejected (429/503), {} failed, {} cancelled in {:.1f} s\n", s.total,
                   s.ok, s.rejected, s.failed, s.cancelled, s.elapsed_s);
  o += fmt::format("  throughput {:.2f} requests/s, {:.1f} output tokens/s\n", s.requests_per_s, s.output_tokens_per_s);
  o += "  (ms)            mean       p50       p90       p99\n";
  o += fmt::format("  TTFT       {}\n", Ms(s.ttft));
  o += fmt::format("  TBT        {}   (per request: mean of its longest 10% gaps)\n", Ms(s.tbt));
  o += fmt::format("  ITL        {}\n", Ms(s.itl));
  o += fmt::format("  E2E        {}\n", Ms(s.e2e));
  if (s.ttft_slo_s > 0 || s.tbt_slo_s > 0) {
    o += fmt::format("  SLOs       TTFT <= {} s, TBT <= {} s: {:.1f}% of requests, goodput {:.2f} requests/s\n",
                     s.ttft_slo_s > 0 ? fmt::format("{:g}", s.ttft_slo_s) : "-",
                     s.tbt_slo_s > 0 ? fmt::format("{:g}", s.tbt_slo_s) : "-", s.slo_fraction * 100, s.goodput);
  }
  o += s.cached_reported ? fmt::format("  prefix     {:.1f}% of prompt tokens cached ({} of {})\n", s.hit_rate * 100,
                                       s.cached_tokens, s.hit_denominator)
                         : "  prefix     the server reports no cached_tokens\n";
  return o;
}

json::object SummaryJson(const TraceSummary& s) {
  return {{"requests", json::object{{"total", s.total},
                                    {"ok", s.ok},
                                    {"rejected", s.rejected},
                                    {"failed", s.failed},
                                    {"cancelled", s.cancelled}}},
          {"elapsed_s", s.elapsed_s},
          {"interrupted", s.interrupted},
          {"requests_per_s", s.requests_per_s},
          {"output_tokens_per_s", s.output_tokens_per_s},
          {"ttft_s", DistJson(s.ttft)},
          {"tbt_s", DistJson(s.tbt)},
          {"itl_s", DistJson(s.itl)},
          {"e2e_s", DistJson(s.e2e)},
          {"ttft_slo_s", s.ttft_slo_s},
          {"tbt_slo_s", s.tbt_slo_s},
          {"slo_fraction", s.slo_fraction},
          {"goodput_requests_per_s", s.goodput},
          {"prompt_tokens", s.prompt_tokens},
          {"cached_tokens", s.cached_reported ? json::value(s.cached_tokens) : json::value(nullptr)},
          {"prefix_hit_rate", s.cached_reported ? json::value(s.hit_rate) : json::value(nullptr)}};
}

json::object RecordJson(const RequestRecord& r) {
  json::array gaps;
  for (double g : r.itl_s) gaps.push_back(g);
  json::object o{{"index", r.index},
                 {"scheduled_s", r.scheduled_s},
                 {"sent_s", r.sent_s},
                 {"outcome", OutcomeName(r.outcome)},
                 {"status", r.http_status},
                 {"ttft_s", r.ttft_s},
                 {"latency_s", r.latency_s},
                 {"prompt_tokens", r.prompt_tokens},
                 {"max_tokens", r.max_tokens},
                 {"output_tokens", r.output_tokens},
                 {"cached_tokens", r.cached_tokens},
                 {"server_prompt_tokens", r.server_prompt_tokens},
                 {"itl_s", std::move(gaps)}};
  if (!r.error.empty()) o["error"] = r.error;
  return o;
}

Result<std::vector<RequestRecord>> ParseRecords(const std::string& jsonl, const std::string& name) {
  std::vector<RequestRecord> out;
  size_t start = 0;
  int line_no = 0;
  while (start < jsonl.size()) {
    size_t end = jsonl.find('\n', start);
    if (end == std::string::npos) end = jsonl.size();
    const std::string_view line(jsonl.data() + start, end - start);
    start = end + 1;
    ++line_no;
    if (line.empty()) continue;
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    auto bad = [&](std::string_view what) { return InvalidArgument(fmt::format("{}:{}: {}", name, line_no, what)); };
    if (ec || !v.is_object()) return bad("not a JSON object");
    const json::object& o = v.as_object();
    auto num = [&](const char* k, double& dst) {
      const json::value* x = o.if_contains(k);
      if (!x || !x->is_number()) return false;
      dst = x->to_number<double>();
      return true;
    };
    RequestRecord r;
    double index = 0, out_tokens = 0, prompt = 0, cached = -1;
    if (!num("index", index) || !num("sent_s", r.sent_s) || !num("ttft_s", r.ttft_s) ||
        !num("latency_s", r.latency_s) || !num("output_tokens", out_tokens) || !num("prompt_tokens", prompt)) {
      return bad("a request record needs index, sent_s, ttft_s, latency_s, prompt_tokens and output_tokens");
    }
    num("scheduled_s", r.scheduled_s);
    num("cached_tokens", cached);
    double server_prompt = -1;
    num("server_prompt_tokens", server_prompt);
    r.server_prompt_tokens = static_cast<int64_t>(server_prompt);
    r.index = static_cast<int64_t>(index);
    r.output_tokens = static_cast<int64_t>(out_tokens);
    r.prompt_tokens = static_cast<int64_t>(prompt);
    r.cached_tokens = static_cast<int64_t>(cached);
    const json::value* oc = o.if_contains("outcome");
    const std::string outcome = oc && oc->is_string() ? std::string(oc->as_string()) : "";
    if (outcome == "ok") r.outcome = Outcome::kOk;
    else if (outcome == "rejected") r.outcome = Outcome::kRejected;
    else if (outcome == "failed") r.outcome = Outcome::kFailed;
    else if (outcome == "cancelled") r.outcome = Outcome::kCancelled;
    else return bad("unknown outcome '" + outcome + "'");
    if (const json::value* g = o.if_contains("itl_s"); g && g->is_array()) {
      for (const json::value& x : g->as_array()) {
        if (x.is_number()) r.itl_s.push_back(x.to_number<double>());
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<std::string>> WritePlots(const std::string& dir, const std::vector<RequestRecord>& recs,
                                            const std::string& title) {
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/ttft_cdf.dat", CdfData(Ttfts(recs), 1e3)));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/tbt_cdf.dat", CdfData(Tbts(recs), 1e3)));
  // TTFT against the time each request was sent; completions per second.
  std::string over_time;
  double end = 0;
  for (const auto& r : recs) {
    if (r.outcome == Outcome::kOk && r.ttft_s >= 0) over_time += fmt::format("{:.4f} {:.4f}\n", r.sent_s, r.ttft_s * 1e3);
    end = std::max(end, r.sent_s + r.latency_s);
  }
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/ttft_time.dat", over_time.empty() ? "0 0\n" : over_time));
  const size_t seconds = static_cast<size_t>(std::ceil(end)) + 1;
  std::vector<double> done(seconds, 0), tokens(seconds, 0);
  for (const auto& r : recs) {
    if (r.outcome != Outcome::kOk) continue;
    const size_t s = std::min(seconds - 1, static_cast<size_t>(r.sent_s + r.latency_s));
    done[s] += 1;
    tokens[s] += static_cast<double>(r.output_tokens);
  }
  std::string tput;
  for (size_t s = 0; s < seconds; ++s) tput += fmt::format("{} {} {}\n", s, done[s], tokens[s]);
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/throughput_time.dat", tput));
  const std::string t = Quote(title);
  std::string gp = kTerminal;
  gp += fmt::format(
      "set output '{0}/ttft_cdf.png'\nset title {1}\nset xlabel 'TTFT (ms)'\nset ylabel 'fraction of requests'\n"
      "plot '{0}/ttft_cdf.dat' using 1:2 with lines lw 2 title 'TTFT'\n"
      "set output '{0}/tbt_cdf.png'\nset xlabel 'TBT: mean of the longest 10% gaps (ms)'\n"
      "plot '{0}/tbt_cdf.dat' using 1:2 with lines lw 2 title 'TBT'\n"
      "set output '{0}/ttft_over_time.png'\nset xlabel 'sent at (s)'\nset ylabel 'TTFT (ms)'\nset key top left\n"
      "plot '{0}/ttft_time.dat' using 1:2 with points pt 7 ps 0.5 title 'TTFT'\n"
      "set output '{0}/throughput_over_time.png'\nset xlabel 'time (s)'\nset ylabel 'requests/s'\n"
      "set y2label 'output tokens/s'\nset y2tics\nset ytics nomirror\n"
      "plot '{0}/throughput_time.dat' using 1:2 with steps lw 2 title 'requests/s', "
      "'' using 1:3 axes x1y2 with steps lw 2 title 'output tokens/s'\n",
      dir, t);
  RETURN_IF_ERROR(RunGnuplot(dir, "plots.gp", gp));
  return std::vector<std::string>{dir + "/ttft_cdf.png", dir + "/tbt_cdf.png", dir + "/ttft_over_time.png",
                                  dir + "/throughput_over_time.png"};
}

Result<std::vector<std::string>> WriteComparePlots(const std::string& dir, const std::vector<std::string>& labels,
                                                   const std::vector<std::vector<RequestRecord>>& runs) {
  std::string ttft_plot, tbt_plot;
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string a = fmt::format("{}/compare_ttft_{}.dat", dir, i), b = fmt::format("{}/compare_tbt_{}.dat", dir, i);
    RETURN_IF_ERROR(WriteFileAtomic(a, CdfData(Ttfts(runs[i]), 1e3)));
    RETURN_IF_ERROR(WriteFileAtomic(b, CdfData(Tbts(runs[i]), 1e3)));
    const std::string sep = i ? ", " : "";
    ttft_plot += fmt::format("{}'{}' using 1:2 with lines lw 2 title {}", sep, a, Quote(labels[i]));
    tbt_plot += fmt::format("{}'{}' using 1:2 with lines lw 2 title {}", sep, b, Quote(labels[i]));
  }
  std::string gp = kTerminal;
  gp += fmt::format(
      "set output '{0}/compare_ttft_cdf.png'\nset title 'TTFT'\nset xlabel 'TTFT (ms)'\n"
      "set ylabel 'fraction of requests'\nplot {1}\n"
      "set output '{0}/compare_tbt_cdf.png'\nset title 'TBT'\nset xlabel 'TBT: mean of the longest 10% gaps (ms)'\n"
      "plot {2}\n",
      dir, ttft_plot, tbt_plot);
  RETURN_IF_ERROR(RunGnuplot(dir, "compare.gp", gp));
  return std::vector<std::string>{dir + "/compare_ttft_cdf.png", dir + "/compare_tbt_cdf.png"};
}

}  // namespace crescent::cli
