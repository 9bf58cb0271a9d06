#include "server/generation.h"

#include <limits>

#include "base/clock.h"
#include "base/logging.h"

namespace crescent::server {

Generation::Generation(GenerationBackend* engine, ServerMetrics* metrics, std::atomic<int64_t>* in_flight,
                       GenerationSpec spec, std::shared_ptr<HttpExchange> exchange)
    : engine_(engine), metrics_(metrics), in_flight_(in_flight), spec_(std::move(spec)),
      exchange_(std::move(exchange)) {
  in_flight_->fetch_add(1);
}

Generation::~Generation() { in_flight_->fetch_sub(1); }

void Generation::Start(GenerationBackend* engine, ServerMetrics* metrics, std::atomic<int64_t>* in_flight,
                       GenerationSpec spec, std::shared_ptr<HttpExchange> exchange) {
  auto g = std::make_shared<Generation>(engine, metrics, in_flight, std::move(spec), std::move(exchange));
  g->Submit();
}

void Generation::Submit() {
  const int32_t n = spec_.n;
  for (size_t p = 0; p < spec_.prompts.size(); ++p) {
    for (int32_t i = 0; i < n; ++i) {
      Choice c;
      c.prompt_index = static_cast<int32_t>(p);
      c.result.index = static_cast<int32_t>(p) * n + i;
      choices_.push_back(std::move(c));
    }
  }
  remaining_ = choices_.size();
  std::weak_ptr<Generation> weak = weak_from_this();
  exchange_->OnDisconnect([weak] {
    if (auto g = weak.lock()) {
      g->gone_ = true;
      g->CancelAll();
    }
  });
  if (gone_) return;  // the client left before anything was submitted
  auto self = shared_from_this();
  for (size_t k = 0; k < choices_.size(); ++k) {
    Choice& c = choices_[k];
    engine::EngineRequest req;
    req.prompt = spec_.prompts[c.prompt_index];
    req.params = spec_.params[c.prompt_index];
    if (req.params.has_seed) req.params.seed += static_cast<uint64_t>(k % static_cast<size_t>(spec_.n));
    auto ex = exchange_;
    auto id = engine_->Submit(std::move(req), [self, ex, k](engine::RequestOutput o) {
      // Step thread: hand over to the connection's strand, nothing else.
      ex->Post([self, k, o = std::move(o)]() mutable { self->OnOutput(k, std::move(o)); });
    });
    if (!id.ok()) {
      std::string param = id.status().code() != StatusCode::kInvalidArgument             ? ""
                          : id.status().message().starts_with("structured output") ? "response_format"
                                                                                   : "max_tokens";
      Fail(ApiError::FromStatus(id.status(), param));
      CancelAll();
      return;
    }
    c.request_id = *id;
    c.submitted = true;
    c.last_token_ns = MonotonicClock::Get().NowNanos();
  }
  // Headers only after every submission was accepted, so a refusal is a status
  // (429, 400) and not an in-band error. Outputs are posted to this strand, so
  // none can overtake the opening.
  if (spec_.stream) {
    exchange_->StartStream(200, "text/event-stream");
    started_ = true;
    if (spec_.meta.kind == ApiKind::kChat) {
      std::string opening;
      for (const Choice& c : choices_) {
        opening += SseEvent(FormatChunk(spec_.meta, c.result.index, "", {}, "", /*role_delta=*/true,
                                        spec_.include_usage, 0));
      }
      exchange_->Write(std::move(opening));
    }
  }
}

void Generation::CancelAll() {
  for (Choice& c : choices_) {
    if (c.submitted && !c.finished) engine_->Cancel(c.request_id);
  }
}

void Generation::Fail(const ApiError& e) {
  if (done_) return;
  done_ = true;
  if (spec_.stream && started_) {
    // Headers are out: report in-band, as OpenAI-compatible servers do.
    exchange_->Write(SseEvent(e.ToJson()) + std::string(kSseDone));
    exchange_->End();
    return;
  }
  HttpResponse r;
  r.status = e.status;
  r.body = e.ToJson();
  if (e.status == 429) r.headers.emplace_back("Retry-After", std::to_string(engine_->retry_after_s()));
  exchange_->Respond(std::move(r));
}

void Generation::OnOutput(size_t k, engine::RequestOutput out) {
  Choice& c = choices_[k];
  if (c.finished) return;
  const int64_t now = MonotonicClock::Get().NowNanos();
  if (!spec_.echo_texts.empty() && !c.echoed && !(out.finished && out.finish_reason == engine::FinishReason::kError)) {
    // The prompt goes first: its text, and with log-probs its tokens (the
    // first has no log-prob: nothing precedes it).
    c.echoed = true;
    out.text = spec_.echo_texts[c.prompt_index] + out.text;
    if (spec_.meta.logprobs) {
      std::vector<engine::SampledToken> lead;
      lead.reserve(out.prompt_samples.size() + 1 + out.samples.size());
      engine::SampledToken first;
      first.token = spec_.prompts[c.prompt_index].front();
      first.logprob = std::numeric_limits<float>::quiet_NaN();
      lead.push_back(std::move(first));
      for (auto& s : out.prompt_samples) lead.push_back(std::move(s));
      for (auto& s : out.samples) lead.push_back(std::move(s));
      out.samples = std::move(lead);
    }
  }
  if (!out.tokens.empty()) {
    if (c.result.samples.empty() && c.usage.completion_tokens == 0) {
      metrics_->OnFirstToken(out.first_token_time_s);
    } else {
      metrics_->OnTokenGap(static_cast<double>(now - c.last_token_ns) * 1e-9 /
                           static_cast<double>(out.tokens.size()));
    }
    c.last_token_ns = now;
  }
  c.usage = out.usage;
  if (out.finished) {
    c.finished = true;
    --remaining_;
    c.result.finish_reason = engine::FinishReasonName(out.finish_reason);
  }
  if (done_ || gone_) {
    if (remaining_ == 0) Complete();
    return;
  }
  if (out.finished && out.finish_reason == engine::FinishReason::kError) {
    LOG_WARNING("request {} failed: {}", c.request_id, out.error.ToString());
    // No instance to run it on, or none with room (a prefill/decode split): 503, retryable.
    const int status = out.error.code() == StatusCode::kUnavailable || out.error.code() == StatusCode::kResourceExhausted
                           ? 503
                           : 500;
    Fail(ApiError::ForStatus(status, "generation failed: " + out.error.message()));
    CancelAll();
    if (remaining_ == 0) Complete();
    return;
  }
  if (out.finished && out.finish_reason == engine::FinishReason::kAbort && !spec_.stream) {
    Fail(ApiError::ForStatus(503, "the server is shutting down"));
    CancelAll();
    if (remaining_ == 0) Complete();
    return;
  }
  if (spec_.stream && spec_.tools.parses() && !c.plain) {
    c.held += out.text;
    for (auto& s : out.samples) c.held_samples.push_back(std::move(s));
    std::string events;
    const bool plain = !spec_.tools.forced() && !MayBeToolCall(c.held);
    if (plain || out.finished) {
      if (!plain) ReadToolCalls(c, c.held);
      if (!c.result.tool_calls.empty()) {
        events += SseEvent(FormatToolCallsChunk(spec_.meta, c.result.index, c.result.tool_calls, spec_.include_usage));
      } else if (!c.held.empty() || (spec_.meta.logprobs && !c.held_samples.empty())) {
        events += SseEvent(FormatChunk(spec_.meta, c.result.index, c.held, c.held_samples, "", false,
                                       spec_.include_usage, 0));
      }
      c.plain = plain;
      c.held.clear();
      c.held_samples.clear();
    }
    if (out.finished) {
      events += SseEvent(
          FormatChunk(spec_.meta, c.result.index, "", {}, c.result.finish_reason, false, spec_.include_usage, 0));
    }
    if (!events.empty()) exchange_->Write(std::move(events));
  } else if (spec_.stream) {
    std::string events;
    if (!out.text.empty() || (spec_.meta.logprobs && !out.samples.empty())) {
      events += SseEvent(FormatChunk(spec_.meta, c.result.index, out.text, out.samples, "", false,
                                     spec_.include_usage, c.text_bytes));
      c.text_bytes += static_cast<int64_t>(out.text.size());
    }
    if (out.finished) {
      events += SseEvent(
          FormatChunk(spec_.meta, c.result.index, "", {}, c.result.finish_reason, false, spec_.include_usage, 0));
    }
    if (!events.empty()) exchange_->Write(std::move(events));
  } else {
    c.result.text += out.text;
    if (spec_.meta.logprobs) {
      for (auto& s : out.samples) c.result.samples.push_back(std::move(s));
    }
  }
  if (remaining_ == 0) Complete();
}

void Generation::ReadToolCalls(Choice& c, std::string_view text) {
  ToolOutput t = ParseToolOutput(spec_.tools, text);
  if (t.calls.empty()) return;
  c.result.tool_calls = std::move(t.calls);
  c.result.content_null = !t.content.has_value();
  c.result.text = t.content.value_or("");
  // A call the model chose (or was made to choose among the tools) ends in
  // "tool_calls"; a named one in "stop", as OpenAI's.
  if (c.result.finish_reason == "stop" && spec_.tools.choice != ToolChoice::kNamed) c.result.finish_reason = "tool_calls";
}

void Generation::Complete() {
  engine::Usage total;
  std::vector<bool> prompt_counted(spec_.prompts.size(), false);
  for (const Choice& c : choices_) {
    if (!prompt_counted[c.prompt_index]) {
      prompt_counted[c.prompt_index] = true;
      total.prompt_tokens += c.usage.prompt_tokens;
      total.cached_tokens += c.usage.cached_tokens;
    }
    total.completion_tokens += c.usage.completion_tokens;
  }
  metrics_->OnFinished(total.prompt_tokens, total.completion_tokens,
                       static_cast<double>(MonotonicClock::Get().NowNanos() - spec_.start_ns) * 1e-9);
  if (done_ || gone_) return;
  done_ = true;
  if (spec_.stream) {
    std::string tail;
    if (spec_.include_usage) tail += SseEvent(FormatUsageChunk(spec_.meta, total));
    tail += kSseDone;
    exchange_->Write(std::move(tail));
    exchange_->End();
    return;
  }
  std::vector<ChoiceResult> results;
  results.reserve(choices_.size());
  for (Choice& c : choices_) {
    if (spec_.tools.parses()) ReadToolCalls(c, std::string(c.result.text));
    results.push_back(std::move(c.result));
  }
  HttpResponse r;
  r.body = FormatResponse(spec_.meta, results, total);
  exchange_->Respond(std::move(r));
}

}  // namespace crescent::server
