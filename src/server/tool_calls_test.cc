#include "server/tool_calls.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "engine/json_grammar.h"

namespace crescent::server {
namespace {

namespace json = boost::json;

const char* kWeather = R"({"type":"function","function":{"name":"get_weather","description":"Weather in a city",
  "parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"enum":["c","f"]}},"required":["city"]}}})";
const char* kTime = R"({"type":"function","function":{"name":"get_time"}})";

ToolRequest Parse(const std::string& extra, std::string* param = nullptr) {
  std::string p;
  const json::value body = json::parse(std::string("{\"tools\":[") + kWeather + "," + kTime + "]" + extra + "}");
  Result<ToolRequest> t = ParseTools(body.as_object(), param ? param : &p);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? *t : ToolRequest{};
}

std::string ParamOf(const std::string& body) {
  std::string p;
  Result<ToolRequest> t = ParseTools(json::parse(body).as_object(), &p);
  EXPECT_FALSE(t.ok()) << body;
  return p;
}

TEST(ToolCallsTest, ParsesToolsAndChoices) {
  ToolRequest t = Parse("");
  ASSERT_EQ(t.tools.size(), 2u);
  EXPECT_EQ(t.choice, ToolChoice::kAuto);  // the default with tools
  EXPECT_EQ(t.tools[1].name, "get_time");
  EXPECT_TRUE(json::parse(t.tools[0].json).as_object().contains("function"));
  EXPECT_EQ(Parse(R"(,"tool_choice":"none")").choice, ToolChoice::kNone);
  EXPECT_EQ(Parse(R"(,"tool_choice":"required","parallel_tool_calls":false)").parallel, false);
  ToolRequest named = Parse(R"(,"tool_choice":{"type":"function","function":{"name":"get_weather"}})");
  EXPECT_EQ(named.choice, ToolChoice::kNamed);
  EXPECT_EQ(named.named, "get_weather");
  EXPECT_EQ(ParamOf(R"({"tool_choice":"auto"})"), "tool_choice");  // no tools
  EXPECT_EQ(ParamOf(R"({"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":"maybe"})"), "tool_choice");
  EXPECT_EQ(ParamOf(R"({"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"b"}}})"),
            "tool_choice");
  EXPECT_EQ(ParamOf(R"({"tools":[{"type":"retrieval"}]})"), "tools");
  EXPECT_EQ(ParamOf(R"({"tools":[{"type":"function","function":{"name":"has space"}}]})"), "tools");
  EXPECT_EQ(ParamOf(R"({"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"a"}}]})"), "tools");
  EXPECT_EQ(ParamOf(R"({"tools":[{"type":"function","function":{"name":"a","parameters":3}}]})"), "tools");
  EXPECT_EQ(ParamOf(R"({"tools":[{"type":"function","function":{"name":"a"}}],"parallel_tool_calls":"yes"})"), "parallel_tool_calls");
}

bool Accepts(const ResponseFormat& f, std::string_view text) {
  engine::JsonState s = f.grammar->Start();
  f.grammar->FeedBytes(&s, text);
  return !s.dead() && f.grammar->Complete(s);
}

TEST(ToolCallsTest, ForcedCallsAreGrammars) {
  Result<ResponseFormat> required = ForcedCallFormat(Parse(R"(,"tool_choice":"required")"));
  ASSERT_TRUE(required.ok()) << required.status().ToString();
  EXPECT_TRUE(Accepts(*required, R"([{"name":"get_weather","arguments":{"city":"Oslo","unit":"c"}},{"name":"get_time","arguments":{}}])"));
  EXPECT_FALSE(Accepts(*required, R"([])"));                                           // at least one call
  EXPECT_FALSE(Accepts(*required, R"([{"name":"get_weather","arguments":{}}])"));      // city is required
  EXPECT_FALSE(Accepts(*required, R"([{"name":"get_time","arguments":{"x":1}}])"));    // no arguments
  EXPECT_FALSE(Accepts(*required, R"([{"name":"launch","arguments":{}}])"));           // not declared
  Result<ResponseFormat> one = ForcedCallFormat(Parse(R"(,"tool_choice":"required","parallel_tool_calls":false)"));
  EXPECT_FALSE(Accepts(*one, R"([{"name":"get_time","arguments":{}},{"name":"get_time","arguments":{}}])"));
  // Parameters with their own $defs: each function's schema is its own document.
  std::string p;
  const json::value defs = json::parse(R"({"tools":[
    {"type":"function","function":{"name":"a","parameters":{"type":"object","properties":{"x":{"$ref":"#/$defs/X"}},"required":["x"],
      "$defs":{"X":{"enum":[1,2]}}}}},
    {"type":"function","function":{"name":"b","parameters":{"type":"object","properties":{"x":{"$ref":"#/$defs/X"}},"required":["x"],
      "$defs":{"X":{"type":"boolean"}}}}}],"tool_choice":"required"})");
  Result<ResponseFormat> both = ForcedCallFormat(*ParseTools(defs.as_object(), &p));
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_TRUE(Accepts(*both, R"([{"name":"a","arguments":{"x":2}},{"name":"b","arguments":{"x":true}}])"));
  EXPECT_FALSE(Accepts(*both, R"([{"name":"a","arguments":{"x":true}}])"));
  Result<ResponseFormat> again = CompileResponseFormatSpec(both->spec);  // as a prefill or decode instance compiles it
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->grammar, both->grammar);
  Result<ResponseFormat> named = ForcedCallFormat(Parse(R"(,"tool_choice":{"type":"function","function":{"name":"get_weather"}})"));
  EXPECT_TRUE(Accepts(*named, R"({"city":"Lima"})"));
  EXPECT_FALSE(Accepts(*named, R"({"unit":"c"})"));
}

TEST(ToolCallsTest, OutputsParseIntoCalls) {
  const ToolRequest automatic = Parse("");
  // Hermes / Qwen: one or more <tool_call> blocks.
  ToolOutput h = ParseToolOutput(automatic, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>\n"
                                            "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>");
  ASSERT_EQ(h.calls.size(), 2u);
  EXPECT_FALSE(h.content.has_value());
  EXPECT_EQ(h.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(h.calls[0].arguments), json::parse(R"({"city":"Rome"})"));
  EXPECT_TRUE(h.calls[0].id.starts_with("call_"));
  EXPECT_NE(h.calls[0].id, h.calls[1].id);
  // Llama 3: the whole message, "parameters", with or without the python tag.
  for (const char* text : {R"({"name": "get_weather", "parameters": {"city": "Paris"}})",
                           R"(<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}})"}) {
    ToolOutput l = ParseToolOutput(automatic, text);
    ASSERT_EQ(l.calls.size(), 1u) << text;
    EXPECT_EQ(json::parse(l.calls[0].arguments), json::parse(R"({"city":"Paris"})"));
  }
  // Not calls: plain text, an undeclared name, text around a block, a broken block.
  for (const char* text : {"It is sunny.", R"({"name":"launch","parameters":{}})", R"(Sure: {"name":"get_time"})",
                           "<tool_call>{\"name\":\"get_time\"}</tool_call> and more", "<tool_call>{broken</tool_call>",
                           R"({"city": "Oslo"})"}) {
    ToolOutput p = ParseToolOutput(automatic, text);
    EXPECT_TRUE(p.calls.empty()) << text;
    EXPECT_EQ(p.content, std::string(text));
  }
  EXPECT_TRUE(ParseToolOutput(Parse(R"(,"tool_choice":"none")"), R"({"name":"get_time","parameters":{}})").calls.empty());
  // Forced: the grammar's output.
  ToolOutput r = ParseToolOutput(Parse(R"(,"tool_choice":"required")"),
                                 R"([{"name":"get_time","arguments":{}},{"name":"get_weather","arguments":{"city":"Bonn"}}])");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[1].arguments, R"({"city":"Bonn"})");
  ToolOutput n = ParseToolOutput(Parse(R"(,"tool_choice":{"type":"function","function":{"name":"get_weather"}})"), R"({"city":"Kyiv"})");
  ASSERT_EQ(n.calls.size(), 1u);
  EXPECT_EQ(n.calls[0].name, "get_weather");
  EXPECT_EQ(n.calls[0].arguments, R"({"city":"Kyiv"})");
  // Streaming in auto mode: held while it may still be a call.
  for (const char* held : {"", "  ", "<tool", "<tool_call>{\"na", "{", "<|python"}) EXPECT_TRUE(MayBeToolCall(held)) << held;
  for (const char* plain : {"Hello", " The", "<b>"}) EXPECT_FALSE(MayBeToolCall(plain)) << plain;
}

}  // namespace
}  // namespace crescent::server
