// What `crescent bench trace` reports about a replay (cli_trace_replay.h):
//
//   counts      requests by outcome (ok, rejected = 429/503, failed, cancelled)
//   TTFT        mean / p50 / p90 / p99 over the answered requests
//   ITL         the same over every inter-token gap (vLLM's "ITL")
//   TBT         per request, the mean of its longest 10% gaps (the Mooncake
//               paper's definition), then mean / p50 / p90 / p99 over requests
//   E2E         request latency
//   throughput  requests/s and output tokens/s over the run's wall time
//   SLOs        with --ttft-slo / --tbt-slo: the fraction of all requests that
//               were answered within both, and goodput (those per second)
//   hit rate    the server's cached_tokens / its prompt_tokens, over the
//               answered requests that report cached_tokens
//
// Files under --out: report.json (all of the above, the options, the
// server's /metrics before and after), requests.jsonl (one record a
// request), and PNG plots drawn by gnuplot (Debian's gnuplot-nox): TTFT and
// TBT CDFs, TTFT over time, throughput over time; --compare draws several
// runs' CDFs on one chart.
// Values; thread-compatible.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "cli/cli_trace_replay.h"

namespace crescent::cli {

struct Dist {
  int64_t n = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};
Dist Distribution(std::vector<double> v);
boost::json::object DistJson(const Dist& d);  // n, mean, p50, p90, p99

struct TraceSummary {
  int64_t total = 0, ok = 0, rejected = 0, failed = 0, cancelled = 0;
  Dist ttft, itl, tbt, e2e;
  double elapsed_s = 0, requests_per_s = 0, output_tokens_per_s = 0;
  double ttft_slo_s = 0, tbt_slo_s = 0;  // 0: none
  double slo_fraction = 0, goodput = 0;
  int64_t prompt_tokens = 0, cached_tokens = 0;  // prompt tokens: as sent (planned)
  int64_t hit_denominator = 0;  // the server's prompt tokens of the requests that reported cached_tokens
  bool cached_reported = false;  // the server reported cached_tokens
  double hit_rate = 0;
  bool interrupted = false;
};

// The Mooncake paper's TBT of one request: the mean of its longest
// ceil(10%) gaps; 0 without gaps.
double MooncakeTbt(const std::vector<double>& gaps);
TraceSummary Summarize(const std::vector<RequestRecord>& recs, double elapsed_s, double ttft_slo_s, double tbt_slo_s,
                       bool interrupted);
std::string FormatSummary(const TraceSummary& s, const std::string& title);
boost::json::object SummaryJson(const TraceSummary& s);
boost::json::object RecordJson(const RequestRecord& r);
Result<std::vector<RequestRecord>> ParseRecords(const std::string& jsonl, const std::string& name);

// The plots of one run into `dir` (gnuplot, PNG); the names written.
Result<std::vector<std::string>> WritePlots(const std::string& dir, const std::vector<RequestRecord>& recs,
                                            const std::string& title);
// Several runs (their labels and records) on one chart each: TTFT and TBT CDFs.
Result<std::vector<std::string>> WriteComparePlots(const std::string& dir, const std::vector<std::string>& labels,
                                                   const std::vector<std::vector<RequestRecord>>& runs);

}  // namespace crescent::cli
