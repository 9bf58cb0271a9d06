#include "server/api_request.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/json.h"
#include "server/response_format.h"
#include "server/tool_calls.h"

namespace crescent::server {

namespace json = boost::json;

namespace {

constexpr int32_t kMaxN = 128;
constexpr size_t kMaxStops = 16;
constexpr size_t kMaxPrompts = 128;
constexpr size_t kMaxLogitBias = 1024;

// Typed field access that remembers the first error and names its field.
class Fields {
 public:
  explicit Fields(const json::object& o) : obj_(o) {}

  const json::value* Get(std::string_view key) const {
    auto it = obj_.find(json::string_view(key.data(), key.size()));
    return it == obj_.end() || it->value().is_null() ? nullptr : &it->value();
  }
  void Fail(std::string_view key, std::string message) {
    if (!error_) error_ = ApiError::ForStatus(400, std::move(message), std::string(key));
  }
  void TypeError(std::string_view key, std::string_view want, const json::value& got) {
    Fail(key, fmt::format("'{}' must be {}, got {}", key, want, JsonKindName(got)));
  }

  std::optional<double> Number(std::string_view key, double lo, double hi) {
    const json::value* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) {
      TypeError(key, "a number", *v);
      return std::nullopt;
    }
    const double d = v->to_number<double>();
    if (!(d >= lo && d <= hi)) {
      Fail(key, fmt::format("'{}' must be in [{}, {}], got {}", key, lo, hi, d));
      return std::nullopt;
    }
    return d;
  }

  std::optional<int64_t> Int(std::string_view key, int64_t lo, int64_t hi) {
    const json::value* v = Get(key);
    if (!v) return std::nullopt;
    int64_t i = 0;
    if (v->is_int64()) {
      i = v->get_int64();
    } else if (v->is_uint64()) {
      i = std::numeric_limits<int64_t>::max();
    } else if (v->is_double() && std::nearbyint(v->get_double()) == v->get_double() &&
               std::fabs(v->get_double()) < 9e18) {
      i = static_cast<int64_t>(v->get_double());  // 16.0: some clients send floats
    } else {
      TypeError(key, "an integer", *v);
      return std::nullopt;
    }
    if (i < lo || i > hi) {
      Fail(key, fmt::format("'{}' must be in [{}, {}], got {}", key, lo, hi, i));
      return std::nullopt;
    }
    return i;
  }

  std::optional<bool> Bool(std::string_view key) {
    const json::value* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_bool()) {
      TypeError(key, "a boolean", *v);
      return std::nullopt;
    }
    return v->get_bool();
  }

  std::optional<std::string> String(std::string_view key) {
    const json::value* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) {
      TypeError(key, "a string", *v);
      return std::nullopt;
    }
    return std::string(v->get_string());
  }

  std::optional<ApiError>& error() { return error_; }

 private:
  const json::object& obj_;
  std::optional<ApiError> error_;
};

// "logit_bias": {"<token id>": bias in [-100, 100], ...}, as OpenAI's.
void ParseLogitBias(Fields& f, ApiRequest& r) {
  const json::value* v = f.Get("logit_bias");
  if (!v) return;
  if (!v->is_object()) return f.TypeError("logit_bias", "an object mapping token ids to biases", *v);
  const json::object& o = v->get_object();
  if (o.size() > kMaxLogitBias) return f.Fail("logit_bias", fmt::format("at most {} logit_bias entries", kMaxLogitBias));
  for (const auto& kv : o) {
    const std::string_view key(kv.key().data(), kv.key().size());
    int64_t id = 0;
    bool digits = !key.empty() && key.size() <= 10;  // 10 digits fit an int64 (found by fuzz_openai_request)
    for (char ch : key.substr(0, digits ? key.size() : 0)) {
      if (ch < '0' || ch > '9') {
        digits = false;
        break;
      }
      id = id * 10 + (ch - '0');
    }
    if (!digits || id > std::numeric_limits<int32_t>::max()) {
      return f.Fail("logit_bias", fmt::format("logit_bias keys must be token ids (non-negative integers), got '{}'", key));
    }
    const json::value& b = kv.value();
    if (!b.is_number() || !(b.to_number<double>() >= -100 && b.to_number<double>() <= 100)) {
      return f.Fail("logit_bias", fmt::format("logit_bias['{}'] must be a number in [-100, 100]", key));
    }
    r.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(b.to_number<double>()));
  }
  // One entry per token (the last one given wins, as a JSON object's).
  std::stable_sort(r.logit_bias.begin(), r.logit_bias.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<int32_t, float>> unique;
  for (const auto& e : r.logit_bias) {
    if (!unique.empty() && unique.back().first == e.first) {
      unique.back() = e;
    } else {
      unique.push_back(e);
    }
  }
  r.logit_bias = std::move(unique);
}

// Fields common to both endpoints.
void ParseCommon(Fields& f, ApiRequest& r) {
  if (const json::value* v = f.Get("response_format")) {
    Result<ResponseFormat> rf = CompileResponseFormat(*v);
    if (!rf.ok()) {
      f.Fail("response_format", rf.status().message());
    } else {
      r.grammar = std::move(rf->grammar);
      r.grammar_spec = std::move(rf->spec);
    }
  }
  if (auto v = f.String("model")) r.model = *v;
  if (auto v = f.Number("temperature", 0, 2)) r.temperature = static_cast<float>(*v);
  if (auto v = f.Number("top_p", 0, 1)) {
    if (*v <= 0) f.Fail("top_p", "'top_p' must be in (0, 1]");
    r.top_p = static_cast<float>(*v);
  }
  if (auto v = f.Int("top_k", -1, 1 << 20)) r.top_k = static_cast<int32_t>(std::max<int64_t>(*v, 0));
  if (auto v = f.Number("min_p", 0, 1)) r.min_p = static_cast<float>(*v);
  if (auto v = f.Number("presence_penalty", -2, 2)) r.presence_penalty = static_cast<float>(*v);
  if (auto v = f.Number("frequency_penalty", -2, 2)) r.frequency_penalty = static_cast<float>(*v);
  if (auto v = f.Number("repetition_penalty", 0, 10)) {
    if (*v <= 0) f.Fail("repetition_penalty", "'repetition_penalty' must be in (0, 10]");
    r.repetition_penalty = static_cast<float>(*v);
  }
  if (const json::value* v = f.Get("seed")) {
    if (v->is_int64()) {
      r.seed = static_cast<uint64_t>(v->get_int64());
    } else if (v->is_uint64()) {
      f.Fail("seed", fmt::format("'seed' must be in [{}, {}], got {}", std::numeric_limits<int64_t>::min(),
                                 std::numeric_limits<int64_t>::max(), v->get_uint64()));
    } else {
      f.TypeError("seed", "an integer", *v);
    }
  }
  if (const json::value* v = f.Get("stop")) {
    if (v->is_string()) {
      r.stop.emplace_back(v->get_string());
    } else if (v->is_array()) {
      for (const json::value& s : v->get_array()) {
        if (!s.is_string()) {
          f.Fail("stop", "'stop' must be a string or an array of strings");
          break;
        }
        r.stop.emplace_back(s.get_string());
      }
    } else {
      f.TypeError("stop", "a string or an array of strings", *v);
    }
    if (r.stop.size() > kMaxStops) f.Fail("stop", fmt::format("at most {} stop sequences", kMaxStops));
    for (const auto& s : r.stop) {
      if (s.empty()) f.Fail("stop", "stop sequences must not be empty");
    }
  }
  if (auto v = f.Int("n", 1, kMaxN)) r.n = static_cast<int32_t>(*v);
  ParseLogitBias(f, r);
  if (auto v = f.Bool("stream")) r.stream = *v;
  if (const json::value* v = f.Get("stream_options")) {
    if (!v->is_object()) {
      f.TypeError("stream_options", "an object", *v);
    } else {
      Fields so(v->get_object());
      if (auto u = so.Bool("include_usage")) r.include_usage = *u;
      if (so.error()) f.Fail("stream_options", so.error()->message);
    }
    if (!r.stream) f.Fail("stream_options", "'stream_options' is only allowed when 'stream' is true");
  }
  if (auto v = f.Bool("ignore_eos")) r.ignore_eos = *v;
  if (auto v = f.Bool("skip_special_tokens")) r.skip_special_tokens = *v;
  if (auto v = f.String("user")) r.user = *v;
}

// Returns the body's top-level object, or sets `err`.
const json::object* ParseBody(std::string_view body, json::value& holder, std::optional<ApiError>& err) {
  auto parsed = ParseJson(body, "request body");
  if (!parsed.ok()) {
    err = ApiError::ForStatus(400, parsed.status().message());
    return nullptr;
  }
  holder = std::move(parsed).value();
  if (!holder.is_object()) {
    err = ApiError::ForStatus(400, "the request body must be a JSON object");
    return nullptr;
  }
  return &holder.get_object();
}

// One token-id array, or false.
bool ReadTokenArray(const json::array& a, PromptInput& p) {
  p.is_tokens = true;
  for (const json::value& t : a) {
    if (!t.is_int64() || t.get_int64() < 0 || t.get_int64() > std::numeric_limits<int32_t>::max()) return false;
    p.tokens.push_back(static_cast<int32_t>(t.get_int64()));
  }
  return true;
}

void ParsePrompt(Fields& f, ApiRequest& r) {
  const json::value* v = f.Get("prompt");
  constexpr const char* kShape = "'prompt' must be a string, an array of strings, an array of token ids or an array of those";
  if (!v) return f.Fail("prompt", "'prompt' is required");
  if (v->is_string()) {
    r.prompts.push_back({std::string(v->get_string()), {}, false});
  } else if (v->is_array()) {
    const json::array& a = v->get_array();
    if (a.empty()) return f.Fail("prompt", "'prompt' must not be empty");
    if (a[0].is_int64()) {
      PromptInput p;
      if (!ReadTokenArray(a, p)) return f.Fail("prompt", kShape);
      r.prompts.push_back(std::move(p));
    } else {
      for (const json::value& e : a) {
        PromptInput p;
        if (e.is_string()) {
          p.text = std::string(e.get_string());
        } else if (!e.is_array() || !ReadTokenArray(e.get_array(), p)) {
          return f.Fail("prompt", kShape);
        }
        r.prompts.push_back(std::move(p));
      }
    }
  } else {
    return f.TypeError("prompt", "a string or an array", *v);
  }
  if (r.prompts.size() > kMaxPrompts) f.Fail("prompt", fmt::format("at most {} prompts per request", kMaxPrompts));
}

// "content": a string, or an array of {"type": "text", "text": ...} parts (joined by "\n").
bool ReadContent(const json::value& v, std::string& out, std::string& why) {
  if (v.is_string()) {
    out = std::string(v.get_string());
    return true;
  }
  if (!v.is_array()) {
    why = "must be a string or an array of content parts";
    return false;
  }
  bool first = true;
  for (const json::value& part : v.get_array()) {
    const json::object* o = part.if_object();
    const json::value* type = o ? o->if_contains("type") : nullptr;
    const json::value* text = o ? o->if_contains("text") : nullptr;
    if (!type || !type->is_string() || type->get_string() != "text" || !text || !text->is_string()) {
      why = "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported";
      return false;
    }
    if (!first) out += "\n";
    out += text->get_string();
    first = false;
  }
  return true;
}

void ParseMessages(Fields& f, ApiRequest& r) {
  const json::value* v = f.Get("messages");
  if (!v) return f.Fail("messages", "'messages' is required");
  if (!v->is_array()) return f.TypeError("messages", "an array", *v);
  const json::array& a = v->get_array();
  if (a.empty()) return f.Fail("messages", "'messages' must not be empty");
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string where = fmt::format("messages[{}]", i);
    if (!a[i].is_object()) return f.Fail(where, where + " must be an object");
    Fields m(a[i].get_object());
    model::ChatMessage msg;
    auto role = m.String("role");
    if (m.error()) return f.Fail(where + ".role", m.error()->message);
    if (!role) return f.Fail(where + ".role", where + ".role is required");
    if (*role == "developer") role = "system";
    if (*role != "system" && *role != "user" && *role != "assistant" && *role != "tool") {
      return f.Fail(where + ".role", fmt::format("{}.role '{}' is not one of system, developer, user, assistant, tool",
                                                 where, *role));
    }
    msg.role = *role;
    if (const json::value* c = m.Get("content")) {
      std::string text, why;
      if (!ReadContent(*c, text, why)) return f.Fail(where + ".content", where + ".content " + why);
      msg.content = std::move(text);
    } else if (msg.role != "assistant") {
      return f.Fail(where + ".content", where + ".content is required");
    }
    if (auto name = m.String("name")) msg.name = *name;
    if (auto id = m.String("tool_call_id")) msg.tool_call_id = *id;
    if (m.error()) return f.Fail(where, m.error()->message);
    r.messages.push_back(std::move(msg));
  }
}

ParseResult Finish(Fields& f, ApiRequest r) {
  if (f.error()) return *f.error();
  return r;
}

}  // namespace

ParseResult ParseCompletionRequest(std::string_view body) {
  json::value holder;
  std::optional<ApiError> err;
  const json::object* obj = ParseBody(body, holder, err);
  if (!obj) return *err;
  Fields f(*obj);
  ApiRequest r;
  r.kind = ApiKind::kCompletion;
  ParsePrompt(f, r);
  ParseCommon(f, r);
  if (auto v = f.Int("max_tokens", 0, std::numeric_limits<int64_t>::max())) r.max_tokens = *v;
  if (const json::value* v = f.Get("logprobs")) {
    if (v->is_bool()) {
      f.TypeError("logprobs", "an integer in [0, 20]", *v);
    } else if (auto k = f.Int("logprobs", 0, 20)) {
      r.logprobs = true;
      r.top_logprobs = static_cast<int32_t>(*k);
    }
  }
  if (auto v = f.Bool("echo")) r.echo = *v;
  // max_tokens 0 asks for the prompt alone: only with echo (its log-probs).
  if (r.max_tokens == 0 && !r.echo) f.Fail("max_tokens", "'max_tokens' must be at least 1 (0 only with 'echo': true)");
  if (f.Get("suffix")) f.Fail("suffix", "'suffix' is not supported");
  return Finish(f, std::move(r));
}

ParseResult ParseChatRequest(std::string_view body) {
  json::value holder;
  std::optional<ApiError> err;
  const json::object* obj = ParseBody(body, holder, err);
  if (!obj) return *err;
  Fields f(*obj);
  ApiRequest r;
  r.kind = ApiKind::kChat;
  ParseMessages(f, r);
  ParseCommon(f, r);
  // max_completion_tokens supersedes the deprecated max_tokens.
  if (auto v = f.Int("max_tokens", 1, std::numeric_limits<int64_t>::max())) r.max_tokens = *v;
  if (auto v = f.Int("max_completion_tokens", 1, std::numeric_limits<int64_t>::max())) r.max_tokens = *v;
  if (auto v = f.Bool("logprobs")) r.logprobs = *v;
  if (auto v = f.Int("top_logprobs", 0, 20)) {
    r.top_logprobs = static_cast<int32_t>(*v);
    if (!r.logprobs && *v > 0) f.Fail("top_logprobs", "'top_logprobs' requires 'logprobs': true");
  }
  std::string param;
  Result<ToolRequest> tools = ParseTools(*obj, &param);
  if (!tools.ok()) {
    f.Fail(param, tools.status().message());
  } else {
    r.tools = std::move(tools).value();
    if (r.tools.forced()) {
      if (r.grammar) f.Fail("tool_choice", "a forced 'tool_choice' and a JSON 'response_format' cannot be combined");
      Result<ResponseFormat> forced = ForcedCallFormat(r.tools);
      if (!forced.ok()) {
        f.Fail("tools", forced.status().message());
      } else {
        r.grammar = std::move(forced->grammar);
        r.grammar_spec = std::move(forced->spec);
      }
    }
  }
  return Finish(f, std::move(r));
}

}  // namespace crescent::server
