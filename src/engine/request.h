// The engine's request and output types: native structs, no JSON (the server and
// the CLI convert at their edges; STYLE.md rule 10).
// Values; thread-compatible.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/kv_connector.h"
#include "engine/sampler.h"

namespace crescent::engine {

class JsonGrammar;

struct RequestParams {
  SamplingParams sampling;       // temperature, top_k/p, min_p, penalties, logprobs
  uint64_t seed = 0;             // per-request sampling seed (reproducible in any batch)
  bool has_seed = false;         // false: the engine draws one
  int64_t max_tokens = 16;       // completion tokens; >= 0 (0: the prompt only, e.g. for prompt_logprobs)
  std::vector<int32_t> stop_token_ids;  // finish after emitting one (added to the model's EOS)
  bool ignore_eos = false;       // do not stop at the model's EOS ids
  std::vector<std::string> stop; // stop strings, matched on the detokenized text (needs a tokenizer)
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;  // for text deltas
  // Log-probs of the prompt's tokens 1.. under the model (each with this many
  // alternatives; 0..20), as lm-eval's log-likelihood tasks need; -1: none.
  // Every prompt token is then computed (no prefix cache, no store loads).
  int32_t prompt_logprobs = -1;
  // Structured output (json_grammar.h): every token is masked so the output
  // is a value of this grammar; the request finishes ("stop") when the value
  // is complete, and within max_tokens it is completed whenever it can be.
  // Needs a tokenizer. Immutable and shared (its mask cache is per grammar).
  std::shared_ptr<const JsonGrammar> grammar;
  // The whole request's max_tokens when this engine generates only its start
  // (a prefill instance runs max_tokens 1): the grammar's budget counts from it.
  int64_t grammar_max_tokens = -1;
  // The grammar's source (the request's response_format as JSON text), for
  // whoever passes the request on (a prefill/decode split); the engine ignores it.
  std::string grammar_spec;
};

struct EngineRequest {
  std::vector<int32_t> prompt;  // token ids (tokenized by the caller)
  RequestParams params;
  // A prefill instance's request: its K/V go to this sink as they are
  // computed (kv_connector.h). Usually with max_tokens = 1.
  std::shared_ptr<KvLayerSink> kv_sink;
  // At most this many prompt tokens (prefix cache included) come from the
  // KvConnector (the Conductor decided not to fetch more); -1: no bound.
  int64_t max_external_prefix_tokens = -1;
};

enum class FinishReason { kNone, kStop, kLength, kAbort, kError };
const char* FinishReasonName(FinishReason r);  // "stop", "length", "abort", "error"

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens served from the prefix cache (or a KvConnector)
};

// One increment of a request's output. The last one has finished = true.
struct RequestOutput {
  uint64_t request_id = 0;
  std::vector<int32_t> tokens;        // new token ids since the previous output
  std::vector<SampledToken> samples;  // one per new token (logprob, top logprobs)
  // With params.prompt_logprobs >= 0, in the first output after the prompt
  // is computed: prompt_len - 1 entries, for the prompt's tokens 1.. .
  std::vector<SampledToken> prompt_samples;
  std::string text;                   // new text (empty without a tokenizer)
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  Usage usage;                        // totals so far
  Status error;                       // set when finish_reason == kError
  double first_token_time_s = 0;      // seconds from submit to the first token (0 until then)
  double queue_time_s = 0;            // seconds from submit to its first step (0 until then)
};

}  // namespace crescent::engine
