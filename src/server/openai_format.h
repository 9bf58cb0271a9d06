// OpenAI response bodies and server-sent events, from native results.
//
//   non-streaming: {"id","object":"text_completion"|"chat.completion","created",
//                   "model","choices":[...],"usage":{...,"prompt_tokens_details":
//                   {"cached_tokens"}}}
//   streaming:     data: {"object":"text_completion"|"chat.completion.chunk",...}\n\n
//                  ... one event per delta; a chat choice opens with
//                  {"delta":{"role":"assistant","content":""}} and closes with an
//                  empty delta and its finish_reason; with include_usage every chunk
//                  carries "usage":null and a last chunk has "choices":[] and usage;
//                  then  data: [DONE]\n\n
//
// Log-probs: completions as {"tokens","token_logprobs","top_logprobs","text_offset"}
// (a sample whose logprob is NaN, an echoed prompt's first token, reports null),
// chat as {"content":[{"token","logprob","bytes","top_logprobs":[...]}]}; token
// strings come from the tokenizer (which may be null: ids are shown instead).
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/request.h"
#include "server/api_request.h"

namespace crescent::model {
class Tokenizer;
}

namespace crescent::server {

struct ResponseMeta {
  ApiKind kind = ApiKind::kCompletion;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  const model::Tokenizer* tokenizer = nullptr;
};

struct ChoiceResult {
  int32_t index = 0;
  std::string text;
  std::vector<engine::SampledToken> samples;
  std::string finish_reason;  // "stop", "length", "abort", "tool_calls"
  // Chat with tools (tool_calls.h): the calls, and whether content is null.
  std::vector<model::ChatToolCall> tool_calls;
  bool content_null = false;
};

std::string FormatResponse(const ResponseMeta& meta, std::span<const ChoiceResult> choices,
                           const engine::Usage& usage);

// One streaming chunk's JSON for choice `index`. `finish_reason` "" = still
// running; `text_offset` is where this delta starts in the choice's text
// (completions log-probs). `role_delta` opens a chat choice.
std::string FormatChunk(const ResponseMeta& meta, int32_t index, std::string_view text,
                        std::span<const engine::SampledToken> samples, std::string_view finish_reason,
                        bool role_delta, bool usage_null, int64_t text_offset);
std::string FormatUsageChunk(const ResponseMeta& meta, const engine::Usage& usage);
// A chat chunk whose delta holds tool calls (whole: id, name and arguments).
std::string FormatToolCallsChunk(const ResponseMeta& meta, int32_t index, std::span<const model::ChatToolCall> calls,
                                 bool usage_null);

// "data: <json>\n\n"
std::string SseEvent(std::string_view json);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// GET /v1/models and /v1/models/{id}. `max_model_len`: the longest context a
// request can get (the model's limit, or the KV pool's when that is smaller).
std::string FormatModelList(const std::string& model, int64_t created, int64_t max_model_len);
std::string FormatModel(const std::string& model, int64_t created, int64_t max_model_len);

}  // namespace crescent::server
