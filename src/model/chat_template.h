// ChatTemplate: renders a model's chat template (tokenizer_config.json's
// "chat_template", Jinja) into the prompt text, byte-identical to what
// transformers.js / @huggingface/jinja produce for the same conversation.
//
//   ChatTemplate t = ChatTemplate::Create(tokenizer.chat_template()).value();
//   ChatTemplateInputs in;  in.bos_token = tokenizer.bos_token();  ...
//   std::string prompt = t.Render(messages, in).value();
//   std::vector<int32_t> ids = tokenizer.Encode(prompt, /*add_special_tokens=*/false);
//
// A model without a template (tokenizer.chat_template() empty, e.g. Llama 2) should
// be refused by the caller: Create("") is valid and renders "".
// Create parses the template and checks every filter and test it uses, so a
// template with a construct the interpreter does not support fails when the model
// loads ("unsupported statement {% include %}", "unsupported filter 'wordwrap'").
// Render fails (InvalidArgument) when the template raises (raise_exception, e.g.
// Gemma's "roles must alternate") or hits a type error.
// Ownership: copies share the immutable parsed template.
// Thread-safety: Render may be called from many threads at once.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace crescent::model {

struct ChatToolCall {
  std::string id;
  std::string type = "function";
  std::string name;
  std::string arguments;  // JSON text, as OpenAI clients send it
};

struct ChatMessage {
  std::string role;                      // system, user, assistant, tool
  std::optional<std::string> content;    // nullopt renders as none (tool-call-only turns)
  std::optional<std::string> reasoning_content;
  std::vector<ChatToolCall> tool_calls;  // assistant
  std::string tool_call_id;              // tool
  std::string name;                      // tool (function name)
};

struct ChatTemplateInputs {
  bool add_generation_prompt = true;
  std::string bos_token, eos_token;
  std::vector<std::string> tools_json;  // each one JSON object (a function schema)
  std::string extra_json;               // optional JSON object of extra variables
};

class ChatTemplate {
 public:
  static Result<ChatTemplate> Create(std::string_view source);

  Result<std::string> Render(std::span<const ChatMessage> messages, const ChatTemplateInputs& inputs) const;
  // Renders with every variable taken from one JSON object, e.g.
  // {"messages": [...], "add_generation_prompt": true, "bos_token": "<s>"}.
  Result<std::string> RenderJson(std::string_view context_json) const;

 private:
  struct Program;
  std::shared_ptr<const Program> program_;
};

}  // namespace crescent::model
