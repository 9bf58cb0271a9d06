// The decode ratio of `crescent bench engine`: decode tokens/s at one batch
// size against the memory-bandwidth floor (weight bytes per step / GB/s),
// measured so that it can be trusted on a host whose memory speed changes
// from second to second. Each of `pairs` decode runs is bracketed by a
// bandwidth probe right before and right after it; a pair's ratio uses the
// mean of its two probes; the figure is the median of the pairs' ratios,
// with their spread. A run is not trusted (no figure printed as the ratio)
// when the probes of any pair disagree by more than 15%, or when other
// processes used more than a fifth of a core meanwhile (read from /proc/stat
// against this process's own CPU time).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/cli_engine_probe.h"
#include "engine/engine.h"

namespace crescent::cli {

struct DecodeRatioPair {
  double tokens_per_s = 0, bw_before = 0, bw_after = 0, ratio = 0;
};

struct DecodeRatio {
  std::vector<DecodeRatioPair> pairs;
  double median = 0, min = 0, max = 0;  // of the pairs' ratios
  double tokens_per_s = 0;              // median of the runs
  double bandwidth = 0;                 // median of the pairs' mean probes, GB/s
  double probe_disagreement = 0;        // worst |before - after| / max(before, after)
  double other_load_cores = 0;          // CPU used by other processes, in cores
  bool trusted = false;
  std::string why;  // when not trusted
};

DecodeRatio MeasureDecodeRatio(engine::Engine& e, PromptMaker& pm, int64_t batch, int64_t prompt_len, int64_t gen_len,
                               double weight_bytes, int pairs);

}  // namespace crescent::cli
