// Generation: one API request in flight — its engine requests (one per prompt
// per choice, n > 1 sharing the prompt), their outputs gathered into an OpenAI
// response or streamed as server-sent events, and its cancellation.
//
//   Start (strand) ── Engine::Submit x (prompts * n) ──> step thread
//   step thread: callback(RequestOutput) ── exchange->Post ──> OnOutput (strand)
//   strand: SSE chunk per delta, or the whole body when every choice finished
//   client gone ──> OnDisconnect ──> Engine::Cancel for each (pages freed)
//
// Engine callbacks do nothing but post to the connection's strand; all state
// below is touched on that strand only, so it needs no lock.
// Ownership: shared_ptr; each engine callback holds one until its request's
// final output. Each Generation counts itself in `in_flight` while alive.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/generation_backend.h"
#include "server/api_request.h"
#include "server/http_types.h"
#include "server/openai_format.h"
#include "server/server_metrics.h"

namespace crescent::server {

struct GenerationSpec {
  ResponseMeta meta;
  std::vector<std::vector<int32_t>> prompts;  // tokenized, one per prompt
  int32_t n = 1;
  std::vector<engine::RequestParams> params;  // one per prompt (max_tokens differs)
  // echo (completions): each prompt's text, returned before its completion;
  // with log-probs, the prompt's tokens come first in them (the first with a
  // null log-prob; the rest from RequestOutput::prompt_samples). Empty: no echo.
  std::vector<std::string> echo_texts;
  bool stream = false;
  bool include_usage = false;
  // Chat with tools: outputs parsed into tool calls (tool_calls.h). Streamed,
  // a choice's text is held back while it may still be a call (all of it
  // when the call is forced), and a call goes out whole in one delta.
  ToolRequest tools;
  int64_t start_ns = 0;  // when the HTTP request arrived (e2e latency)
};

class Generation : public std::enable_shared_from_this<Generation> {
 public:
  // Submits every engine request and answers `exchange` in time. On a refused
  // submission (429, 400, 503) it answers with that error and cancels the rest.
  // REQUIRES: called on the exchange's strand.
  static void Start(GenerationBackend* engine, ServerMetrics* metrics, std::atomic<int64_t>* in_flight,
                    GenerationSpec spec, std::shared_ptr<HttpExchange> exchange);

  Generation(GenerationBackend* engine, ServerMetrics* metrics, std::atomic<int64_t>* in_flight, GenerationSpec spec,
             std::shared_ptr<HttpExchange> exchange);
  ~Generation();

 private:
  struct Choice {
    uint64_t request_id = 0;
    bool submitted = false;
    bool finished = false;
    int32_t prompt_index = 0;
    ChoiceResult result;
    int64_t text_bytes = 0;       // streamed so far (completion log-prob offsets)
    bool echoed = false;          // the prompt's echo went out (or into result)
    int64_t last_token_ns = 0;
    engine::Usage usage;
    std::string held;  // tools: text held back while it may be a call
    std::vector<engine::SampledToken> held_samples;
    bool plain = false;  // tools, streamed: decided to be text, streamed from then on
  };
  // The choice's text read for tool calls; the result's content, calls and
  // finish reason set from it.
  void ReadToolCalls(Choice& c, std::string_view text);

  void Submit();
  void OnOutput(size_t choice, engine::RequestOutput out);
  void CancelAll();
  void Fail(const ApiError& e);
  void Complete();

  GenerationBackend* engine_;
  ServerMetrics* metrics_;
  std::atomic<int64_t>* in_flight_;
  GenerationSpec spec_;
  std::shared_ptr<HttpExchange> exchange_;
  std::vector<Choice> choices_;
  size_t remaining_ = 0;
  bool done_ = false;  // answered (fully, or with an error)
  bool gone_ = false;  // the client disconnected
  bool started_ = false;  // stream headers sent
};

}  // namespace crescent::server
