#include "server/openai_format.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>

#include "model/tokenizer.h"

namespace crescent::server {

namespace json = boost::json;

namespace {

// JSON has no -inf; a token of zero probability reports this instead (as vLLM).
double SafeLogprob(float lp) { return std::max(static_cast<double>(lp), -9999.0); }

std::string TokenText(const ResponseMeta& meta, int32_t id) {
  if (!meta.tokenizer) return "token_id:" + std::to_string(id);
  const int32_t ids[1] = {id};
  return meta.tokenizer->Decode(ids, /*skip_special_tokens=*/false);
}

json::array Bytes(const std::string& s) {
  json::array a;
  for (unsigned char c : s) a.push_back(c);
  return a;
}

json::value UsageJson(const engine::Usage& u) {
  json::object o;
  o["prompt_tokens"] = u.prompt_tokens;
  o["completion_tokens"] = u.completion_tokens;
  o["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  o["prompt_tokens_details"] = json::object{{"cached_tokens", u.cached_tokens}};
  return o;
}

json::value CompletionLogprobs(const ResponseMeta& meta, std::span<const engine::SampledToken> samples,
                               int64_t text_offset) {
  json::array tokens, lps, tops, offsets;
  for (const auto& s : samples) {
    std::string t = TokenText(meta, s.token);
    offsets.push_back(text_offset);
    text_offset += static_cast<int64_t>(t.size());
    tokens.push_back(json::string(t));
    if (std::isnan(s.logprob)) {  // an echoed prompt's first token: nothing to condition on
      lps.push_back(nullptr);
      tops.push_back(nullptr);
      continue;
    }
    lps.push_back(SafeLogprob(s.logprob));
    // The `logprobs` best and the sampled token (up to logprobs + 1 entries, as
    // OpenAI documents; with logprobs 0 the sampled token alone, as vLLM).
    json::object top;
    bool sampled_listed = false;
    for (const auto& [id, lp] : s.top) {
      top[TokenText(meta, id)] = SafeLogprob(lp);
      sampled_listed = sampled_listed || id == s.token;
    }
    if (!sampled_listed) top[t] = SafeLogprob(s.logprob);
    tops.push_back(std::move(top));
  }
  json::object o;
  o["tokens"] = std::move(tokens);
  o["token_logprobs"] = std::move(lps);
  o["top_logprobs"] = std::move(tops);
  o["text_offset"] = std::move(offsets);
  return o;
}

json::value ChatLogprobs(const ResponseMeta& meta, std::span<const engine::SampledToken> samples) {
  json::array content;
  for (const auto& s : samples) {
    std::string t = TokenText(meta, s.token);
    json::array top;
    const size_t k = std::min<size_t>(s.top.size(), static_cast<size_t>(meta.top_logprobs));
    for (size_t i = 0; i < k; ++i) {
      std::string tt = TokenText(meta, s.top[i].first);
      top.push_back(json::object{{"token", tt}, {"logprob", SafeLogprob(s.top[i].second)}, {"bytes", Bytes(tt)}});
    }
    content.push_back(json::object{
        {"token", t}, {"logprob", SafeLogprob(s.logprob)}, {"bytes", Bytes(t)}, {"top_logprobs", std::move(top)}});
  }
  return json::object{{"content", std::move(content)}};
}

json::object Envelope(const ResponseMeta& meta, const char* object) {
  json::object o;
  o["id"] = meta.id;
  o["object"] = object;
  o["created"] = meta.created;
  o["model"] = meta.model;
  return o;
}

json::array ToolCallsJson(std::span<const model::ChatToolCall> calls, bool indexed) {
  json::array a;
  for (size_t i = 0; i < calls.size(); ++i) {
    json::object c{{"id", calls[i].id},
                   {"type", "function"},
                   {"function", json::object{{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (indexed) c["index"] = i;
    a.push_back(std::move(c));
  }
  return a;
}

}  // namespace

std::string FormatResponse(const ResponseMeta& meta, std::span<const ChoiceResult> choices,
                           const engine::Usage& usage) {
  const bool chat = meta.kind == ApiKind::kChat;
  json::object o = Envelope(meta, chat ? "chat.completion" : "text_completion");
  json::array arr;
  for (const ChoiceResult& c : choices) {
    json::object ch;
    ch["index"] = c.index;
    if (chat) {
      json::object message{{"role", "assistant"}, {"content", c.content_null ? json::value(nullptr) : json::value(c.text)}};
      if (!c.tool_calls.empty()) message["tool_calls"] = ToolCallsJson(c.tool_calls, false);
      ch["message"] = std::move(message);
      ch["logprobs"] = meta.logprobs ? ChatLogprobs(meta, c.samples) : json::value(nullptr);
    } else {
      ch["text"] = c.text;
      ch["logprobs"] = meta.logprobs ? CompletionLogprobs(meta, c.samples, 0) : json::value(nullptr);
    }
    ch["finish_reason"] = c.finish_reason;
    arr.push_back(std::move(ch));
  }
  o["choices"] = std::move(arr);
  o["usage"] = UsageJson(usage);
  if (chat) o["system_fingerprint"] = nullptr;
  return json::serialize(o);
}

std::string FormatChunk(const ResponseMeta& meta, int32_t index, std::string_view text,
                        std::span<const engine::SampledToken> samples, std::string_view finish_reason,
                        bool role_delta, bool usage_null, int64_t text_offset) {
  const bool chat = meta.kind == ApiKind::kChat;
  json::object o = Envelope(meta, chat ? "chat.completion.chunk" : "text_completion");
  json::object ch;
  ch["index"] = index;
  if (chat) {
    json::object delta;
    if (role_delta) delta["role"] = "assistant";
    if (role_delta || !text.empty()) delta["content"] = json::string(text.data(), text.size());
    ch["delta"] = std::move(delta);
    ch["logprobs"] = meta.logprobs && !samples.empty() ? ChatLogprobs(meta, samples) : json::value(nullptr);
  } else {
    ch["text"] = json::string(text.data(), text.size());
    ch["logprobs"] =
        meta.logprobs && !samples.empty() ? CompletionLogprobs(meta, samples, text_offset) : json::value(nullptr);
  }
  ch["finish_reason"] =
      finish_reason.empty() ? json::value(nullptr) : json::value(json::string(finish_reason.data(), finish_reason.size()));
  o["choices"] = json::array{std::move(ch)};
  if (usage_null) o["usage"] = nullptr;
  return json::serialize(o);
}

std::string FormatToolCallsChunk(const ResponseMeta& meta, int32_t index, std::span<const model::ChatToolCall> calls,
                                 bool usage_null) {
  json::object o = Envelope(meta, "chat.completion.chunk");
  json::object ch{{"index", index}, {"delta", json::object{{"tool_calls", ToolCallsJson(calls, true)}}}, {"logprobs", nullptr},
                  {"finish_reason", nullptr}};
  o["choices"] = json::array{std::move(ch)};
  if (usage_null) o["usage"] = nullptr;
  return json::serialize(o);
}

std::string FormatUsageChunk(const ResponseMeta& meta, const engine::Usage& usage) {
  json::object o = Envelope(meta, meta.kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion");
  o["choices"] = json::array();
  o["usage"] = UsageJson(usage);
  return json::serialize(o);
}

std::string SseEvent(std::string_view json) {
  std::string out;
  out.reserve(json.size() + 8);
  out += "data: ";
  out += json;
  out += "\n\n";
  return out;
}

namespace {
json::object ModelObject(const std::string& model, int64_t created, int64_t max_model_len) {
  return json::object{{"id", model},
                 {"object", "model"},
                 {"created", created},
                 {"owned_by", "crescent"},
                 {"root", model},
                 {"parent", nullptr},
                 {"max_model_len", max_model_len}};
}
}  // namespace

std::string FormatModel(const std::string& model, int64_t created, int64_t max_model_len) {
  return json::serialize(ModelObject(model, created, max_model_len));
}

std::string FormatModelList(const std::string& model, int64_t created, int64_t max_model_len) {
  return json::serialize(
      json::object{{"object", "list"}, {"data", json::array{ModelObject(model, created, max_model_len)}}});
}

}  // namespace crescent::server
