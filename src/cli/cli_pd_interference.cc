#include "cli/cli_pd_interference.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "base/file.h"
#include "base/logging.h"
#include "base/subprocess.h"
#include "cli/cli_child_process.h"
#include "cli/cli_trace_replay.h"
#include "cli/cli_trace_report.h"
#include "cli/cli_util.h"
#include "cli/commands.h"

namespace crescent::cli {
namespace {

// A `crescent` child pinned to `cpus`, its output in `log` (stopped when it goes).
class Child : public ChildProcess {
 public:
  Child(const std::string& cpus, std::vector<std::string> args, std::string log)
      : ChildProcess(Argv(cpus, std::move(args)), std::move(log), {"OMP_WAIT_POLICY=PASSIVE"}) {}

 private:
  static std::vector<std::string> Argv(const std::string& cpus, std::vector<std::string> args) {
    std::vector<std::string> argv{"taskset", "-c", cpus, SelfExe()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
};

std::vector<std::string> ServeArgs(const InterferenceOptions& o, int port) {
  return {"serve", "--model", o.model, "--host", "127.0.0.1", "--port", std::to_string(port),
          "--kv-offload-dram-bytes", "0", "--kv-cache-bytes", std::to_string(int64_t{768} << 20)};
}

// The requests: decoders first (staggered), then the long prompts.
std::vector<PlannedRequest> Plan(const InterferenceOptions& o) {
  std::vector<PlannedRequest> plan;
  for (int64_t i = 0; i < o.decoders; ++i) {
    plan.push_back({0.05 * static_cast<double>(i), o.decode_prompt, o.decode_tokens, {}});
  }
  for (int64_t i = 0; i < o.long_prompts; ++i) {
    plan.push_back({2.0 + o.long_gap_s * static_cast<double>(i), o.long_prompt, 2, {}});
  }
  return plan;
}

InterferenceSide Drive(const InterferenceOptions& o, int port) {
  ReplayOptions ro;
  ro.url = {"127.0.0.1", static_cast<uint16_t>(port), ""};
  ro.model = o.model;
  ro.timeout_s = 300;
  const std::vector<PlannedRequest> plan = Plan(o);
  std::atomic<bool> stop{false};
  bool interrupted = false;
  double elapsed = 0;
  std::vector<RequestRecord> recs = Replay(plan, ro, stop, &interrupted, &elapsed);
  for (const RequestRecord& r : recs) {
    if (r.outcome != Outcome::kOk) throw CommandError("bench pd: a request failed: " + r.error);
  }
  // The window: from the first long prompt's arrival to the last one's end.
  double from = 1e30, to = 0, ttft = 0;
  for (size_t i = static_cast<size_t>(o.decoders); i < recs.size(); ++i) {
    from = std::min(from, recs[i].sent_s);
    to = std::max(to, recs[i].sent_s + recs[i].latency_s);
    ttft += recs[i].ttft_s / static_cast<double>(o.long_prompts);
  }
  std::vector<double> gaps;
  std::vector<double> tbts;
  for (size_t i = 0; i < static_cast<size_t>(o.decoders) && i < recs.size(); ++i) {
    const RequestRecord& r = recs[i];
    double t = r.sent_s + r.ttft_s;
    std::vector<double> mine;
    for (double g : r.itl_s) {
      t += g;
      if (t >= from && t <= to) mine.push_back(g);
    }
    if (!mine.empty()) tbts.push_back(MooncakeTbt(mine));
    gaps.insert(gaps.end(), mine.begin(), mine.end());
  }
  if (gaps.empty()) throw CommandError("bench pd: the decoding requests ended before the long prompts came (raise --decode-tokens)");
  const Dist d = Distribution(gaps);
  InterferenceSide s;
  s.itl_p50_s = d.p50;
  s.itl_p99_s = d.p99;
  s.tbt_p99_s = Distribution(tbts).p99;
  s.long_ttft_mean_s = ttft;
  return s;
}

}  // namespace

InterferenceResult MeasureInterference(const InterferenceOptions& o) {
  InterferenceResult out;
  const std::string dir = fmt::format("/tmp/crescent-bench-pd-{}", ::getpid());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw CommandError("bench pd: cannot make " + dir + ": " + ec.message());
  {
    LOG_INFO("interference: all-in-one on cores 0-1");
    const int port = FreeLocalPort();
    Child all("0,1", ServeArgs(o, port), dir + "/all-in-one.log");
    all.WaitHealthy(port, 300);
    out.all_in_one = Drive(o, port);
  }
  {
    LOG_INFO("interference: prefill on core 0, decode on core 1");
    const int dport = FreeLocalPort(), pport = FreeLocalPort(), fport = FreeLocalPort();
    const std::string dkv = fmt::format("127.0.0.1:{}", FreeLocalPort()), pkv = fmt::format("127.0.0.1:{}", FreeLocalPort());
    std::vector<std::string> da = ServeArgs(o, dport), pa = ServeArgs(o, pport);
    da.insert(da.end(), {"--role", "decode", "--instance-listen", dkv, "--kv-transports", o.transports});
    pa.insert(pa.end(), {"--role", "prefill", "--instance-listen", pkv, "--kv-transports", o.transports});
    Child d("1", da, dir + "/decode.log");
    Child p("0", pa, dir + "/prefill.log");
    d.WaitHealthy(dport, 300);
    p.WaitHealthy(pport, 300);
    Child f("0,1", {"conductor", "--model", o.model, "--host", "127.0.0.1", "--port", std::to_string(fport), "--prefill",
                    pkv, "--decode", dkv},
            dir + "/front.log");
    f.WaitHealthy(fport, 120);
    out.pd = Drive(o, fport);
  }
  return out;
}

}  // namespace crescent::cli
