// Tool calling (OpenAI's tools, tool_choice, parallel_tool_calls): the
// request's functions, what tool_choice makes of the output, and the output
// parsed back into tool calls.
//
//   "none"      the functions are shown to the chat template; the output is text
//   "auto"      (the default with tools) the model's choice: an output that
//               begins with a call in the template's format is parsed into
//               tool_calls: Hermes/Qwen's <tool_call>{"name","arguments"}</tool_call>
//               (one or more), or Llama 3's {"name","parameters"} as the whole
//               message (with or without <|python_tag|>); a call that names no
//               declared function, or does not parse, stays text; text first
//               and a call after it stays text
//   "required"  a grammar forces [{"name": a declared function, "arguments":
//               a value of its parameters' schema}, ...] (one element with
//               parallel_tool_calls false); finish_reason "tool_calls"
//   {"type":"function","function":{"name":N}}
//               a grammar forces a value of N's parameters' schema, returned
//               as one call of N; finish_reason "stop" (as OpenAI's)
// The forced grammars are response_format's (response_format.h), so they
// cross a prefill/decode split as its spec does. Errors name their field.
// Values; thread-compatible.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "model/chat_template.h"
#include "server/response_format.h"

namespace boost::json {
class object;
}

namespace crescent::server {

struct ToolSpec {
  std::string name;
  std::string json;        // {"type":"function","function":{...}}: what the chat template sees
  std::string parameters;  // its parameters' JSON Schema, as JSON text ({} when absent: no arguments)
};

enum class ToolChoice { kNone, kAuto, kRequired, kNamed };

struct ToolRequest {
  std::vector<ToolSpec> tools;
  ToolChoice choice = ToolChoice::kNone;
  std::string named;     // kNamed: the function
  bool parallel = true;  // parallel_tool_calls
  bool forced() const { return choice == ToolChoice::kRequired || choice == ToolChoice::kNamed; }
  bool parses() const { return choice != ToolChoice::kNone && !tools.empty(); }
};

// From a chat request's body. On error, *param is the field to name.
Result<ToolRequest> ParseTools(const boost::json::object& body, std::string* param);

// The grammar that forces the call (t.forced()).
Result<ResponseFormat> ForcedCallFormat(const ToolRequest& t);

struct ToolOutput {
  std::optional<std::string> content;  // nullopt: the message is calls only
  std::vector<model::ChatToolCall> calls;
};

// The generated text read as t.choice says (ids are fresh "call_..." ones).
ToolOutput ParseToolOutput(const ToolRequest& t, std::string_view text);

// Auto mode while streaming: whether `text` so far (from the start of the
// output) may still turn out to be a call (hold it back) or is plain text.
bool MayBeToolCall(std::string_view text);

}  // namespace crescent::server
