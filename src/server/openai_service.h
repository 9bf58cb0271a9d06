// OpenAiService: the HTTP routes of `crescent serve`.
//
//   GET  /health                 200 when ready; 503 while loading or draining
//   GET  /metrics                Prometheus text
//   GET  /v1/models              the served model
//   POST /v1/completions         text completions
//   POST /v1/chat/completions    chat, through the model's chat template
//   other methods on these: 405 (with Allow); other paths: 404
//
// With an API key, every /v1 route needs "Authorization: Bearer <key>" (401).
// Requests are parsed into native types (api_request.h), rendered and
// tokenized on a small WorkPool (never on an io thread: a 4 MiB prompt must
// not stall /health or other connections), and handed to a Generation on the
// connection's strand; no JSON goes further.
// Ownership: borrows the engine, tokenizer and chat template given to
// SetReady, which must outlive every request (the Server shuts the engine down
// before destroying them). Thread-safety: Handle runs on any io thread; state
// changes are atomic.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "engine/engine.h"
#include "server/generation_backend.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "server/api_request.h"
#include "server/generation.h"
#include "server/http_types.h"
#include "server/server_metrics.h"
#include "server/work_pool.h"

namespace crescent::server {

struct ServiceOptions {
  std::string served_model;  // the name clients pass as "model"
  std::string api_key;       // "" = no authentication
};

class OpenAiService {
 public:
  explicit OpenAiService(ServiceOptions options);

  // REQUIRES: called once; `chat` may be null (chat requests then get 400).
  // `kv_capacity_tokens`: tokens the whole KV pool holds (caps default max_tokens).
  void SetReady(GenerationBackend* engine, const model::Tokenizer* tokenizer, const model::ChatTemplate* chat,
                int64_t kv_capacity_tokens);
  void SetLoadFailed(std::string message);
  void SetDraining();
  // Runs what the pool still holds and joins it (before the tokenizer goes).
  void StopPreparing() { prep_.Stop(); }

  void Handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange);
  ServerMetrics& metrics() { return metrics_; }
  // Generations alive (answered or not, until their engine requests end).
  int64_t in_flight() const { return in_flight_.load(); }

 private:
  enum class State { kLoading, kReady, kDraining, kFailed };
  // Parsing, rendering, tokenization and checks: a Generation's spec, or the error to answer.
  std::variant<ApiError, GenerationSpec> Prepare(ApiKind kind, HttpRequest& req, int64_t start_ns);
  void Reply(HttpExchange& ex, const ApiError& e);

  ServiceOptions options_;
  ServerMetrics metrics_;
  std::atomic<State> state_{State::kLoading};
  std::atomic<int64_t> in_flight_{0};
  std::string load_error_;  // written before state_ becomes kFailed
  int64_t created_ = 0;     // unix seconds at start (model "created")
  GenerationBackend* engine_ = nullptr;  // set before state_ becomes kReady
  const model::Tokenizer* tokenizer_ = nullptr;
  const model::ChatTemplate* chat_ = nullptr;
  int64_t kv_capacity_tokens_ = 0;
  WorkPool prep_{2};  // last: joined first
};

}  // namespace crescent::server
