// A JSON Schema (the input) compiled into a grammar, then the grammar run
// and masked over a small vocabulary: a grammar or a clear error, and a
// matcher that never crashes, whatever the schema and the text.
#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/json.h"
#include "engine/grammar_mask.h"
#include "engine/json_grammar.h"
#include "server/response_format.h"

namespace {
const crescent::engine::TokenTable& Table() {
  static const auto* t = [] {
    std::vector<std::string> v;
    for (int c = 0x20; c < 0x7f; ++c) v.push_back(std::string(1, static_cast<char>(c)));
    for (const char* s : {"{\"", "\":", "\",\"", "\"}", "true", "null", "12", "  ", "\n", "},{", "\\u00", "\xC3\xA9", "-0."}) {
      v.push_back(s);
    }
    return crescent::engine::TokenTable::FromTexts(v).release();
  }();
  return *t;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // The schema is the input up to a NUL; what follows is text for the grammar.
  const size_t cut = text.find('\0');
  crescent::Result<boost::json::value> schema = crescent::ParseJson(text.substr(0, cut), "schema");
  if (!schema.ok()) return 0;
  boost::json::value rf = boost::json::object{{"type", "json_schema"}, {"json_schema", boost::json::object{{"schema", *schema}}}};
  crescent::Result<crescent::server::ResponseFormat> f = crescent::server::CompileResponseFormat(rf);
  if (!f.ok() || !f->grammar) return 0;
  const crescent::engine::JsonGrammar& g = *f->grammar;
  crescent::engine::JsonState s = g.Start();
  (void)crescent::engine::ComputeMask(g, Table(), s, 8);
  if (cut != std::string_view::npos) {
    g.FeedBytes(&s, text.substr(cut + 1, 512));
    if (!s.dead()) {
      (void)g.MinBytesToComplete(s);
      (void)g.Complete(s);
      (void)crescent::engine::ComputeMask(g, Table(), s, -1);
    }
  }
  return 0;
}
