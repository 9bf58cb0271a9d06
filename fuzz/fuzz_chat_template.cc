// Chat templates (the input) parsed and rendered with a fixed conversation
// (tools included): a rendering or an error, never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "model/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  crescent::Result<crescent::model::ChatTemplate> t = crescent::model::ChatTemplate::Create(source);
  if (!t.ok()) return 0;
  std::vector<crescent::model::ChatMessage> messages(3);
  messages[0].role = "system";
  messages[0].content = "Be brief.";
  messages[1].role = "user";
  messages[1].content = "What is 2+2?";
  messages[2].role = "assistant";
  messages[2].tool_calls.push_back({"call_1", "function", "add", R"({"a":2,"b":2})"});
  crescent::model::ChatTemplateInputs in;
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.tools_json = {R"({"type":"function","function":{"name":"add","parameters":{"type":"object"}}})"};
  (void)t->Render(messages, in);
  return 0;
}
