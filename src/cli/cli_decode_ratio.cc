#include "cli/cli_decode_ratio.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "base/check.h"
#include "kernels/roofline.h"

namespace crescent::cli {

namespace {

// Busy jiffies of the whole machine (user + nice + system + irq + softirq +
// steal); -1 when /proc/stat cannot be read.
double MachineBusySeconds() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  uint64_t user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (!(f >> cpu >> user >> nice >> sys >> idle >> iowait >> irq >> softirq >> steal) || cpu != "cpu") return -1;
  return static_cast<double>(user + nice + sys + irq + softirq + steal) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

DecodeRatio MeasureDecodeRatio(engine::Engine& e, PromptMaker& pm, int64_t batch, int64_t prompt_len, int64_t gen_len,
                               double weight_bytes, int pairs) {
  CHECK_GT(pairs, 0);
  DecodeRatio r;
  DecodeRate(e, pm, batch, prompt_len, std::min<int64_t>(gen_len, 8));  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  const double busy0 = MachineBusySeconds(), self0 = SelfCpuSeconds();
  // Probes short enough to sit right beside the run (256 MiB, best of 3).
  constexpr int64_t kProbeBytes = int64_t{1} << 28;
  for (int i = 0; i < pairs; ++i) {
    DecodeRatioPair p;
    p.bw_before = kernels::MeasureReadBandwidthGBs(kProbeBytes, 3);
    p.tokens_per_s = DecodeRate(e, pm, batch, prompt_len, gen_len);
    p.bw_after = kernels::MeasureReadBandwidthGBs(kProbeBytes, 3);
    const double bw = (p.bw_before + p.bw_after) / 2;
    p.ratio = p.tokens_per_s / static_cast<double>(batch) * weight_bytes / (bw * 1e9);
    r.probe_disagreement =
        std::max(r.probe_disagreement, std::fabs(p.bw_before - p.bw_after) / std::max(p.bw_before, p.bw_after));
    r.pairs.push_back(p);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double busy1 = MachineBusySeconds();
  r.other_load_cores = std::max(0.0, (busy1 - busy0) - (SelfCpuSeconds() - self0)) / wall;
  std::vector<double> ratios, rates, bws;
  for (const auto& p : r.pairs) {
    ratios.push_back(p.ratio);
    rates.push_back(p.tokens_per_s);
    bws.push_back((p.bw_before + p.bw_after) / 2);
  }
  r.median = Median(ratios);
  r.min = *std::min_element(ratios.begin(), ratios.end());
  r.max = *std::max_element(ratios.begin(), ratios.end());
  r.tokens_per_s = Median(rates);
  r.bandwidth = Median(bws);
  r.trusted = true;
  if (r.probe_disagreement > 0.15) {
    r.trusted = false;
    r.why = fmt::format("the bandwidth probes beside a run disagree by {:.0f}% (over 15%)", 100 * r.probe_disagreement);
  } else if (busy0 < 0 || busy1 < 0) {
    r.trusted = false;
    r.why = "/proc/stat could not be read, so other load could not be ruled out";
  } else if (r.other_load_cores > 0.2) {
    r.trusted = false;
    r.why = fmt::format("other processes used {:.2f} cores during the runs", r.other_load_cores);
  }
  return r;
}

}  // namespace crescent::cli
