// The interference part of `crescent bench pd` (docs/disaggregation.md): why
// disaggregation exists. While `decoders` requests decode, a stream of long
// prompts arrives; the p99 inter-token time of the decoding requests is
// measured on
//   all-in-one: one `crescent serve` on both cores (chunked prefill, the
//               server's own step budget), and
//   P/D:        `crescent serve --role prefill` pinned to core 0, `--role
//               decode` pinned to core 1, `crescent conductor` in front,
// each started as its own process (taskset) on 127.0.0.1 and driven over
// HTTP by the trace replay's client (cli_trace_replay.h): the same requests
// at the same times against both.
// Throws CommandError when a process does not start or a request fails.
#pragma once

#include <cstdint>
#include <string>

namespace crescent::cli {

struct InterferenceOptions {
  std::string model;  // a model folder
  int64_t decoders = 8, decode_tokens = 300, decode_prompt = 64;
  int64_t long_prompt = 2048, long_prompts = 6;
  double long_gap_s = 1.0;  // between two long prompts
  std::string transports = "self,sm";
};

struct InterferenceSide {
  double itl_p50_s = 0, itl_p99_s = 0, tbt_p99_s = 0;  // of the decoding requests, while long prompts arrive
  double long_ttft_mean_s = 0;                        // of the long prompts
};

struct InterferenceResult {
  InterferenceSide all_in_one, pd;
};

InterferenceResult MeasureInterference(const InterferenceOptions& o);

}  // namespace crescent::cli
