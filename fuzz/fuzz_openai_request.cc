// The OpenAI request parsers (completions and chat) on any bytes: a parsed
// request or a 400, never a crash; a request's structured-output grammar is
// then run over the same bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "engine/json_grammar.h"
#include "server/api_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (auto parse : {&crescent::server::ParseChatRequest, &crescent::server::ParseCompletionRequest}) {
    crescent::server::ParseResult r = parse(body);
    if (auto* req = std::get_if<crescent::server::ApiRequest>(&r); req && req->grammar) {
      crescent::engine::JsonState s = req->grammar->Start();
      req->grammar->FeedBytes(&s, body.substr(0, 256));
      if (!s.dead()) (void)req->grammar->MinBytesToComplete(s);
    }
  }
  return 0;
}
