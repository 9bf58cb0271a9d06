// The OpenAI API's completion and chat requests as native types, and their
// parsers: JSON stops here (STYLE.md rule 10). Everything the engine or the
// response formatting needs is a plain field; unknown JSON fields are ignored,
// as OpenAI clients send many.
//
// Parsing checks types and ranges (a wrong type, a negative max_tokens, an
// unknown role, n out of [1, 128], ...) and reports the first problem as an
// ApiError (400) naming the field in `param`. Limits that need the model
// (context length) are checked later, when the prompt is tokenized.
// Values; thread-compatible.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "model/chat_template.h"
#include "server/api_error.h"
#include "server/tool_calls.h"

namespace crescent::engine {
class JsonGrammar;
}

namespace crescent::server {

enum class ApiKind { kCompletion, kChat };

// A completion prompt: text, or token ids.
struct PromptInput {
  std::string text;
  std::vector<int32_t> tokens;
  bool is_tokens = false;
};

struct ApiRequest {
  ApiKind kind = ApiKind::kCompletion;
  std::string model;                        // "" when absent
  std::vector<PromptInput> prompts;         // completions: one or more
  std::vector<model::ChatMessage> messages; // chat
  std::optional<int64_t> max_tokens;        // absent: 16 for completions, the rest of the context for chat
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;                        // 0 (or -1 in the request) = off
  float min_p = 0.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;
  std::optional<uint64_t> seed;             // a signed 64-bit value in the request, as OpenAI's
  std::vector<std::pair<int32_t, float>> logit_bias;  // sorted by token id, one entry each; ids checked against the vocabulary later
  std::vector<std::string> stop;
  int32_t n = 1;
  bool logprobs = false;                    // report log-probs
  int32_t top_logprobs = 0;                 // alternatives per token
  bool echo = false;                        // completions: the prompt is returned before the completion
  bool stream = false;
  bool include_usage = false;               // stream_options.include_usage
  bool ignore_eos = false;                  // vLLM extension
  bool skip_special_tokens = true;          // vLLM extension
  std::string user;
  // response_format (response_format.h): the compiled grammar (null: text) and its spec.
  std::shared_ptr<const engine::JsonGrammar> grammar;
  std::string grammar_spec;
  ToolRequest tools;  // chat: tools, tool_choice (tool_calls.h); a forced call sets the grammar above
};

// A parsed request, or the 400 to answer.
using ParseResult = std::variant<ApiRequest, ApiError>;

ParseResult ParseCompletionRequest(std::string_view body);
ParseResult ParseChatRequest(std::string_view body);

}  // namespace crescent::server
