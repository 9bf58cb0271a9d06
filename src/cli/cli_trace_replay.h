// Trace replay against any OpenAI-compatible endpoint (`crescent bench trace`,
// docs/benchmarks.md): a Mooncake trace (or one from `crescent make-trace`)
// becomes timed, streamed requests whose prompts keep the trace's sharing.
//
//   Plan        arrivals: the trace's timestamps x time_scale, or a fixed
//               request rate with gamma gaps (burstiness 1 = Poisson, as
//               vLLM's bench); prompt and output lengths x length_scale /
//               output_scale; stops at max_requests or duration_s
//   Synthesize  block id k of hash_ids -> a deterministic block of
//               round(block_tokens x length_scale) token ids (or words, for
//               chat): equal leading ids give an equal leading prefix
//   Replay      sends each request at its time (a worker pool of
//               max_concurrency; a request that waits for a worker is sent
//               late and its lateness recorded), streams it, records TTFT,
//               every inter-token gap, usage (completion and cached tokens)
//               and how it ended: ok; rejected (HTTP 429/503); failed (any
//               other status, a broken stream, an error event, no answer);
//               cancelled (stopped by `stop`, e.g. Ctrl-C)
//
// Replay never throws and never hangs: every read has the request timeout,
// and setting `stop` aborts the requests in flight at once.
// Thread-safety: Replay runs its own threads; on_progress is called from the
// calling thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "cli/cli_http_client.h"
#include "sim/trace.h"

namespace crescent::cli {

struct ReplayOptions {
  HttpUrl url;
  std::string api_key;
  std::string model;  // the "model" field of each request
  bool chat = false;  // /v1/chat/completions with text prompts (else token ids on /v1/completions)
  double time_scale = 1.0;    // arrival = timestamp x time_scale (0.5: twice as fast)
  double length_scale = 1.0;  // prompt tokens (and the trace's 512-token blocks) x this
  double output_scale = 1.0;  // max_tokens = output_length x this (at least 1)
  int64_t max_requests = 0;   // 0: all
  double duration_s = 0;      // 0: no limit; else no request is sent after this
  double request_rate = 0;    // > 0: ignore timestamps, arrivals at this rate
  double burstiness = 1.0;    // gamma shape of the gaps (with request_rate)
  uint64_t seed = 1;
  int max_concurrency = 256;
  int64_t vocab = 32000;      // prompt token ids are drawn from [100, vocab)
  int64_t block_tokens = 512; // the trace's hash block (before length_scale)
  double timeout_s = 600;     // connecting, and each read of a stream
};

struct PlannedRequest {
  double at_s = 0;  // since the start of the run
  int64_t prompt_tokens = 0;
  int64_t max_tokens = 0;
  std::span<const sim::BlockKey> keys;
};

std::vector<PlannedRequest> PlanArrivals(const sim::Trace& trace, const ReplayOptions& o);

// Token ids of a prompt of `tokens` tokens made of blocks of `block_tokens`:
// block i is a function of keys[i] alone (blocks past the keys: of `salt`).
std::vector<int32_t> SynthesizeTokens(std::span<const sim::BlockKey> keys, int64_t tokens, int64_t block_tokens,
                                      int64_t vocab, uint64_t salt);
// The same as words (about one token each with common tokenizers), for chat.
std::string SynthesizeText(std::span<const sim::BlockKey> keys, int64_t tokens, int64_t block_tokens, uint64_t salt);

enum class Outcome { kOk, kRejected, kFailed, kCancelled };
const char* OutcomeName(Outcome o);

struct RequestRecord {
  int64_t index = 0;
  double scheduled_s = 0, sent_s = 0;  // since the start of the run
  double ttft_s = -1;                   // sent -> first token; -1: none
  double latency_s = 0;                 // sent -> end
  std::vector<double> itl_s;            // gaps between token events
  int64_t prompt_tokens = 0, max_tokens = 0;
  int64_t output_tokens = 0;   // usage.completion_tokens (else token events seen)
  int64_t cached_tokens = -1;  // usage.prompt_tokens_details.cached_tokens; -1: not reported
  int64_t server_prompt_tokens = -1;  // usage.prompt_tokens (the prompt as the server counts it)
  int http_status = 0;         // 0: no answer
  Outcome outcome = Outcome::kFailed;
  std::string error;
};

struct ReplayProgress {
  int64_t total = 0, sent = 0, done = 0, rejected = 0, failed = 0;
  double elapsed_s = 0;
};

// Runs the plan; the records are in plan order, one for each request that
// came due (those `stop` caught before they were sent are recorded as
// cancelled; those not due yet are absent). `interrupted` is set when `stop`
// ended the run.
std::vector<RequestRecord> Replay(const std::vector<PlannedRequest>& plan, const ReplayOptions& o,
                                  const std::atomic<bool>& stop, bool* interrupted, double* elapsed_s,
                                  const std::function<void(const ReplayProgress&)>& on_progress = {});

// The request body for one planned request (index `i` salts unkeyed blocks).
std::string RequestBody(const PlannedRequest& r, const ReplayOptions& o, int64_t i);

}  // namespace crescent::cli
