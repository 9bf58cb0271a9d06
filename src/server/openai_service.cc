#include "server/openai_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <random>

#include "base/clock.h"
#include "server/generation.h"
#include "server/openai_format.h"

namespace crescent::server {

namespace {

constexpr int64_t kMaxChoices = 256;

std::string RandomId(std::string_view prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), static_cast<uint32_t>(rng()));
}

// "application/json", in any case, with parameters ("; charset=utf-8") allowed.
bool IsJsonMediaType(std::string_view ct) {
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && (ct.back() == ' ' || ct.back() == '\t')) ct.remove_suffix(1);
  while (!ct.empty() && (ct.front() == ' ' || ct.front() == '\t')) ct.remove_prefix(1);
  constexpr std::string_view kJson = "application/json";
  if (ct.size() != kJson.size()) return false;
  for (size_t i = 0; i < ct.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(ct[i])) != kJson[i]) return false;
  }
  return true;
}

ApiError ContextTooLong(std::string message, std::string param) {
  ApiError e = ApiError::ForStatus(400, std::move(message), std::move(param));
  e.code = "context_length_exceeded";
  return e;
}

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

OpenAiService::OpenAiService(ServiceOptions options) : options_(std::move(options)), created_(UnixSeconds()) {}

void OpenAiService::SetReady(GenerationBackend* engine, const model::Tokenizer* tokenizer,
                             const model::ChatTemplate* chat, int64_t kv_capacity_tokens) {
  engine_ = engine;
  tokenizer_ = tokenizer;
  chat_ = chat;
  kv_capacity_tokens_ = kv_capacity_tokens;
  State expected = State::kLoading;
  state_.compare_exchange_strong(expected, State::kReady);
}

void OpenAiService::SetLoadFailed(std::string message) {
  load_error_ = std::move(message);
  State expected = State::kLoading;
  state_.compare_exchange_strong(expected, State::kFailed);
}

void OpenAiService::SetDraining() { state_.store(State::kDraining); }

void OpenAiService::Reply(HttpExchange& ex, const ApiError& e) {
  HttpResponse r;
  r.status = e.status;
  r.body = e.ToJson();
  ex.Respond(std::move(r));
}

void OpenAiService::Handle(HttpRequest req, std::shared_ptr<HttpExchange> ex) {
  const State state = state_.load();
  const bool ready = state == State::kReady;
  auto unavailable = [&] {
    switch (state) {
      case State::kLoading: return ApiError::ForStatus(503, "the model is loading");
      case State::kDraining: return ApiError::ForStatus(503, "the server is shutting down");
      case State::kFailed: return ApiError::ForStatus(503, "the model failed to load: " + load_error_);
      case State::kReady: break;
    }
    return ApiError::ForStatus(503, "unavailable");
  };
  auto method_is = [&](const char* allowed) {
    if (req.method == allowed) return true;
    ApiError e = ApiError::ForStatus(405, fmt::format("{} is not allowed on {}; use {}", req.method, req.path, allowed));
    HttpResponse r;
    r.status = 405;
    r.body = e.ToJson();
    r.headers.emplace_back("Allow", allowed);
    ex->Respond(std::move(r));
    return false;
  };
  if (req.path == "/health") {
    if (!method_is("GET")) return;
    if (!ready) return Reply(*ex, unavailable());
    ex->Respond(HttpResponse{200, "application/json", "{}", {}, false});
    return;
  }
  if (req.path == "/metrics") {
    if (!method_is("GET")) return;
    std::optional<engine::EngineStats> stats;
    if (ready) stats = engine_->Stats();
    std::string text = metrics_.Render(stats ? &*stats : nullptr);
    if (ready) text += engine_->MetricsText();
    ex->Respond(HttpResponse{200, "text/plain; version=0.0.4", std::move(text), {}, false});
    return;
  }
  constexpr std::string_view kModelPrefix = "/v1/models/";
  const bool is_model = req.path.size() > kModelPrefix.size() && req.path.starts_with(kModelPrefix);
  const bool is_models = req.path == "/v1/models" || is_model;
  const bool is_completions = req.path == "/v1/completions";
  const bool is_chat = req.path == "/v1/chat/completions";
  if (!is_models && !is_completions && !is_chat) {
    return Reply(*ex, ApiError::ForStatus(404, fmt::format("no route for {} {}", req.method, req.path)));
  }
  if (!options_.api_key.empty() && req.authorization != "Bearer " + options_.api_key) {
    return Reply(*ex, ApiError::ForStatus(401, "a valid API key is required (Authorization: Bearer <key>)"));
  }
  if (!method_is(is_models ? "GET" : "POST")) return;
  if (!ready) return Reply(*ex, unavailable());
  if (is_models) {
    const int64_t max_len = std::min(engine_->max_model_len(), kv_capacity_tokens_);
    if (!is_model) {
      ex->Respond(HttpResponse{200, "application/json", FormatModelList(options_.served_model, created_, max_len), {},
                               false});
      return;
    }
    const std::string id = req.path.substr(kModelPrefix.size());
    if (id != options_.served_model) return Reply(*ex, ApiError::ModelNotFound(id));
    ex->Respond(HttpResponse{200, "application/json", FormatModel(options_.served_model, created_, max_len), {}, false});
    return;
  }
  // Only JSON bodies: a browser may send a "simple" cross-origin POST (text/plain,
  // form data, no type) without a preflight, and this refuses it.
  if (!IsJsonMediaType(req.content_type)) {
    return Reply(*ex, ApiError::ForStatus(415, fmt::format("the request body must be application/json, got '{}'",
                                                           req.content_type.empty() ? "no Content-Type" : req.content_type)));
  }
  // Off the io thread: counted in flight from here, so a shutdown's grace covers it.
  const ApiKind kind = is_chat ? ApiKind::kChat : ApiKind::kCompletion;
  const int64_t start_ns = MonotonicClock::Get().NowNanos();
  ++in_flight_;
  auto task = [this, kind, start_ns, req = std::move(req), ex]() mutable {
    std::variant<ApiError, GenerationSpec> prepared = Prepare(kind, req, start_ns);
    ex->Post([this, ex, prepared = std::move(prepared)]() mutable {
      if (auto* e = std::get_if<ApiError>(&prepared)) {
        Reply(*ex, *e);
      } else {
        Generation::Start(engine_, &metrics_, &in_flight_, std::move(std::get<GenerationSpec>(prepared)), ex);
      }
      --in_flight_;
    });
  };
  if (!prep_.Submit(std::move(task))) {
    --in_flight_;
    Reply(*ex, ApiError::ForStatus(503, "the server is shutting down"));
  }
}

std::variant<ApiError, GenerationSpec> OpenAiService::Prepare(ApiKind kind, HttpRequest& req, int64_t start_ns) {
  ParseResult parsed = kind == ApiKind::kChat ? ParseChatRequest(req.body) : ParseCompletionRequest(req.body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  ApiRequest& r = std::get<ApiRequest>(parsed);
  if (!r.model.empty() && r.model != options_.served_model) return ApiError::ModelNotFound(r.model);

  const char* prompt_param = kind == ApiKind::kChat ? "messages" : "prompt";
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> echo_texts;  // echo: each prompt as the client gave it (token ids as text)
  if (kind == ApiKind::kChat) {
    if (!chat_) return ApiError::ForStatus(400, "this model has no chat template", "messages");
    model::ChatTemplateInputs in;
    in.add_generation_prompt = true;
    in.bos_token = tokenizer_->bos_token();
    in.eos_token = tokenizer_->eos_token();
    for (const ToolSpec& t : r.tools.tools) in.tools_json.push_back(t.json);
    auto text = chat_->Render(r.messages, in);
    if (!text.ok()) return ApiError::ForStatus(400, text.status().message(), "messages");
    prompts.push_back(tokenizer_->Encode(*text, /*add_special_tokens=*/false));
  } else {
    const int64_t vocab = engine_->vocab_size();
    for (PromptInput& p : r.prompts) {
      if (!p.is_tokens) {
        prompts.push_back(tokenizer_->Encode(p.text, /*add_special_tokens=*/true));
        if (r.echo) echo_texts.push_back(p.text);
        continue;
      }
      for (int32_t t : p.tokens) {
        if (t >= vocab) {
          return ApiError::ForStatus(
                                400, fmt::format("token id {} is outside the vocabulary ({})", t, vocab), "prompt");
        }
      }
      if (r.echo) echo_texts.push_back(tokenizer_->Decode(p.tokens, r.skip_special_tokens));
      prompts.push_back(std::move(p.tokens));
    }
  }

  for (auto [t, b] : r.logit_bias) {
    if (t >= engine_->vocab_size()) {
      return ApiError::ForStatus(400, fmt::format("logit_bias token id {} is outside the vocabulary ({})", t,
                                                             engine_->vocab_size()),
                                            "logit_bias");
    }
  }
  if (static_cast<int64_t>(prompts.size()) * r.n > kMaxChoices) {
    return ApiError::ForStatus(400, fmt::format("at most {} choices (prompts x n) per request", kMaxChoices), "n");
  }
  const int64_t limit = std::min(engine_->max_model_len(), kv_capacity_tokens_);
  GenerationSpec spec;
  for (const auto& p : prompts) {
    const int64_t len = static_cast<int64_t>(p.size());
    if (len == 0) return ApiError::ForStatus(400, "the prompt is empty", prompt_param);
    if (len >= limit) {
      return ContextTooLong(fmt::format("this model's maximum context length is {} tokens; "
                                                   "the {} has {} tokens",
                                                   limit, prompt_param, len),
                                       prompt_param);
    }
    engine::RequestParams params;
    const int64_t room = limit - len;
    if (r.max_tokens) {
      if (*r.max_tokens > limit - len) {
        return ContextTooLong(fmt::format("this model's maximum context length is {} tokens; "
                                                     "the request asks for {} ({} in the {}, {} to generate)",
                                                     limit, len + *r.max_tokens, len, prompt_param, *r.max_tokens),
                                         "max_tokens");
      }
      params.max_tokens = *r.max_tokens;
    } else {
      params.max_tokens = kind == ApiKind::kChat ? room : std::min<int64_t>(16, room);
    }
    params.sampling.temperature = r.temperature;
    params.sampling.top_p = r.top_p;
    params.sampling.top_k = r.top_k;
    params.sampling.min_p = r.min_p;
    params.sampling.presence_penalty = r.presence_penalty;
    params.sampling.frequency_penalty = r.frequency_penalty;
    params.sampling.repetition_penalty = r.repetition_penalty;
    params.sampling.logprobs = r.logprobs ? r.top_logprobs : 0;
    params.sampling.logit_bias = r.logit_bias;
    params.grammar = r.grammar;
    params.grammar_spec = r.grammar_spec;
    params.prompt_logprobs = r.echo && r.logprobs ? r.top_logprobs : -1;
    params.has_seed = r.seed.has_value();
    params.seed = r.seed.value_or(0);
    params.stop = r.stop;
    params.ignore_eos = r.ignore_eos;
    params.skip_special_tokens = r.skip_special_tokens;
    spec.params.push_back(std::move(params));
  }
  spec.meta.kind = kind;
  spec.meta.id = RandomId(kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-");
  spec.meta.created = UnixSeconds();
  spec.meta.model = options_.served_model;
  spec.meta.logprobs = r.logprobs;
  spec.meta.top_logprobs = r.top_logprobs;
  spec.meta.tokenizer = tokenizer_;
  spec.prompts = std::move(prompts);
  spec.echo_texts = std::move(echo_texts);
  spec.n = r.n;
  spec.stream = r.stream;
  spec.include_usage = r.include_usage;
  spec.tools = std::move(r.tools);
  spec.start_ns = start_ns;
  return spec;
}

}  // namespace crescent::server
