#include "server/api_request.h"

#include <gtest/gtest.h>

namespace crescent::server {
namespace {

ApiRequest Ok(const ParseResult& r) {
  if (const auto* e = std::get_if<ApiError>(&r)) ADD_FAILURE() << e->ToJson();
  return std::holds_alternative<ApiRequest>(r) ? std::get<ApiRequest>(r) : ApiRequest{};
}

ApiError Err(const ParseResult& r) {
  if (std::holds_alternative<ApiRequest>(r)) {
    ADD_FAILURE() << "parsed, expected an error";
    return {};
  }
  return std::get<ApiError>(r);
}

TEST(ApiRequest, CompletionFields) {
  ApiRequest r = Ok(ParseCompletionRequest(
      R"({"model":"m","prompt":"hi","max_tokens":5,"temperature":0.5,"top_p":0.9,"top_k":-1,"min_p":0.1,)"
      R"("seed":42,"stop":"\n","n":3,"presence_penalty":1,"frequency_penalty":-1,"repetition_penalty":1.2,)"
      R"("logprobs":2,"stream":true,"stream_options":{"include_usage":true},"user":"u","unknown":{"x":1}})"));
  EXPECT_EQ(r.kind, ApiKind::kCompletion);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "hi");
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_FLOAT_EQ(r.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.top_p, 0.9f);
  EXPECT_EQ(r.top_k, 0);
  EXPECT_FLOAT_EQ(r.min_p, 0.1f);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(r.n, 3);
  EXPECT_FLOAT_EQ(r.presence_penalty, 1.0f);
  EXPECT_FLOAT_EQ(r.frequency_penalty, -1.0f);
  EXPECT_FLOAT_EQ(r.repetition_penalty, 1.2f);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.user, "u");
}

TEST(ApiRequest, PromptShapes) {
  EXPECT_EQ(Ok(ParseCompletionRequest(R"({"prompt":[1,2,3]})")).prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));
  auto many = Ok(ParseCompletionRequest(R"({"prompt":["a",[4,5]]})"));
  ASSERT_EQ(many.prompts.size(), 2u);
  EXPECT_EQ(many.prompts[0].text, "a");
  EXPECT_TRUE(many.prompts[1].is_tokens);
  EXPECT_EQ(Err(ParseCompletionRequest(R"({"prompt":[]})")).param, "prompt");
  EXPECT_EQ(Err(ParseCompletionRequest(R"({"prompt":[1,-2]})")).param, "prompt");
  EXPECT_EQ(Err(ParseCompletionRequest(R"({"prompt":[{"a":1}]})")).param, "prompt");
  EXPECT_EQ(Err(ParseCompletionRequest(R"({"prompt":7})")).param, "prompt");
  EXPECT_EQ(Err(ParseCompletionRequest(R"({"max_tokens":3})")).param, "prompt");
}

TEST(ApiRequest, ChatMessages) {
  ApiRequest r = Ok(ParseChatRequest(
      R"({"messages":[{"role":"developer","content":"be brief"},)"
      R"({"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},)"
      R"({"role":"assistant","content":null}],"max_completion_tokens":9,"max_tokens":3,"logprobs":true,"top_logprobs":4})"));
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "a\nb");
  EXPECT_FALSE(r.messages[2].content.has_value());
  EXPECT_EQ(r.max_tokens, 9);  // max_completion_tokens wins
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 4);
}

TEST(ApiRequest, ChatErrorsNameTheField) {
  EXPECT_EQ(Err(ParseChatRequest(R"({"messages":[]})")).param, "messages");
  EXPECT_EQ(Err(ParseChatRequest(R"({})")).param, "messages");
  EXPECT_EQ(Err(ParseChatRequest(R"({"messages":"hi"})")).param, "messages");
  EXPECT_EQ(Err(ParseChatRequest(R"({"messages":[{"role":"wizard","content":"x"}]})")).param, "messages[0].role");
  EXPECT_EQ(Err(ParseChatRequest(R"({"messages":[{"role":5,"content":"x"}]})")).param, "messages[0].role");
  EXPECT_EQ(Err(ParseChatRequest(R"({"messages":[{"role":"user"}]})")).param, "messages[0].content");
  EXPECT_EQ(Err(ParseChatRequest(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})")).param,
            "messages[0].content");
  EXPECT_EQ(Err(ParseChatRequest(R"({"messages":[1]})")).param, "messages[0]");
  EXPECT_EQ(Err(ParseChatRequest(R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":3})")).param,
            "top_logprobs");
}

TEST(ApiRequest, RangesAndTypes) {
  const std::string m = R"("messages":[{"role":"user","content":"x"}])";
  auto param = [&](const std::string& extra) { return Err(ParseChatRequest("{" + m + "," + extra + "}")).param; };
  EXPECT_EQ(param(R"("max_tokens":-1)"), "max_tokens");
  EXPECT_EQ(param(R"("max_tokens":0)"), "max_tokens");
  EXPECT_EQ(param(R"("max_tokens":"10")"), "max_tokens");
  EXPECT_EQ(param(R"("max_tokens":1.5)"), "max_tokens");
  EXPECT_EQ(param(R"("temperature":2.5)"), "temperature");
  EXPECT_EQ(param(R"("temperature":"hot")"), "temperature");
  EXPECT_EQ(param(R"("top_p":0)"), "top_p");
  EXPECT_EQ(param(R"("n":0)"), "n");
  EXPECT_EQ(param(R"("n":1000)"), "n");
  EXPECT_EQ(param(R"("stop":["a",1])"), "stop");
  EXPECT_EQ(param(R"("stop":"")"), "stop");
  EXPECT_EQ(param(R"("seed":"x")"), "seed");
  EXPECT_EQ(param(R"("stream":"yes")"), "stream");
  EXPECT_EQ(param(R"("stream_options":{"include_usage":true})"), "stream_options");  // without stream
  EXPECT_EQ(param(R"("presence_penalty":3)"), "presence_penalty");
  EXPECT_EQ(param(R"("tools":[{"type":"function"}])"), "tools");
  // A huge integer is in range for the parser (the context check comes later),
  // and a float with an integral value is accepted.
  EXPECT_EQ(Ok(ParseChatRequest("{" + m + R"(,"max_tokens":1000000000000})")).max_tokens, 1000000000000);
  EXPECT_EQ(Ok(ParseChatRequest("{" + m + R"(,"max_tokens":16.0})")).max_tokens, 16);
  // seed is a signed 64-bit integer, as OpenAI's.
  EXPECT_EQ(Ok(ParseChatRequest("{" + m + R"(,"seed":-1})")).seed, 18446744073709551615ull);
  EXPECT_EQ(Ok(ParseChatRequest("{" + m + R"(,"seed":9223372036854775807})")).seed, 9223372036854775807ull);
  EXPECT_EQ(param(R"("seed":9223372036854775808)"), "seed");
  EXPECT_EQ(param(R"("seed":18446744073709551615)"), "seed");
  EXPECT_EQ(param(R"("seed":1.5)"), "seed");
  // null means absent.
  EXPECT_FALSE(Ok(ParseChatRequest("{" + m + R"(,"max_tokens":null,"stop":null})")).max_tokens.has_value());
}

TEST(ApiRequest, LogitBias) {
  const std::string m = R"("messages":[{"role":"user","content":"x"}])";
  ApiRequest r = Ok(ParseChatRequest("{" + m + R"(,"logit_bias":{"7":-100,"3":2.5,"0":100}})"));
  ASSERT_EQ(r.logit_bias.size(), 3u);
  EXPECT_EQ(r.logit_bias[0], (std::pair<int32_t, float>{0, 100.0f}));
  EXPECT_EQ(r.logit_bias[1], (std::pair<int32_t, float>{3, 2.5f}));
  EXPECT_EQ(r.logit_bias[2], (std::pair<int32_t, float>{7, -100.0f}));
  // A key of many digits is a 400, not an integer overflow (fuzz_openai_request found it;
  // fuzz/corpus/fuzz_openai_request/regress_logit_bias_long_key.json).
  EXPECT_EQ(Err(ParseChatRequest("{" + m + R"(,"logit_bias":{"0000400000000000000000000000000000000000000000005":-100}})")).param,
            "logit_bias");
  EXPECT_TRUE(Ok(ParseCompletionRequest(R"({"prompt":"x","logit_bias":{}})")).logit_bias.empty());
  EXPECT_EQ(Ok(ParseCompletionRequest(R"({"prompt":"x","logit_bias":{"5":1}})")).logit_bias.size(), 1u);
  for (const char* bad : {R"({"not_a_token_id":50})", R"({"-1":1})", R"({"1.5":1})", R"({"":1})",
                          R"({"99999999999":1})", R"({"5":101})", R"({"5":-100.5})", R"({"5":"x"})", R"({"5":null})",
                          R"([1,2])", R"("x")"}) {
    ApiError e = Err(ParseChatRequest("{" + m + R"(,"logit_bias":)" + bad + "}"));
    EXPECT_EQ(e.status, 400) << bad;
    EXPECT_EQ(e.param, "logit_bias") << bad;
  }
}

TEST(ApiRequest, ResponseFormat) {
  const std::string m = R"("messages":[{"role":"user","content":"x"}])";
  auto chat = [&](const std::string& rf) { return ParseChatRequest("{" + m + R"(,"response_format":)" + rf + "}"); };
  auto error = [&](const std::string& rf) {
    ApiError e = Err(chat(rf));
    EXPECT_EQ(e.param, "response_format") << rf;
    return e.message;
  };
  EXPECT_EQ(Ok(chat(R"({"type":"text"})")).grammar, nullptr);
  ApiRequest o = Ok(chat(R"({"type":"json_object"})"));
  ASSERT_NE(o.grammar, nullptr);
  EXPECT_EQ(o.grammar_spec, R"({"type":"json_object"})");
  const std::string person = R"({"type":"json_schema","json_schema":{"name":"p","strict":true,"schema":{
      "type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer","minimum":0},
      "tags":{"type":"array","items":{"enum":["a","b"]}},"pet":{"$ref":"#/$defs/Pet"},
      "nick":{"anyOf":[{"type":"string"},{"type":"null"}]}},
      "required":["name","age"],"additionalProperties":false,
      "$defs":{"Pet":{"type":"object","properties":{"kind":{"const":"cat"},"friends":{"type":"array","items":{"$ref":"#/$defs/Pet"}}}}}}}})";
  ApiRequest p = Ok(chat(person));
  ASSERT_NE(p.grammar, nullptr);
  EXPECT_EQ(Ok(chat(person)).grammar, p.grammar) << "the same schema shares one grammar (and its masks)";
  // What cannot be honoured is refused, naming it.
  EXPECT_NE(error(R"({"type":"sound"})").find("'sound' is not supported"), std::string::npos);
  EXPECT_NE(error(R"({"type":"json_schema"})").find("json_schema"), std::string::npos);
  EXPECT_NE(error(R"({"type":"json_schema","json_schema":{"schema":{"type":"strin"}}})").find("'strin'"), std::string::npos);
  EXPECT_NE(error(R"({"type":"json_schema","json_schema":{"schema":{"type":"string","pattern":"^a"}}})").find("'pattern'"),
            std::string::npos);
  EXPECT_NE(error(R"({"type":"json_schema","json_schema":{"schema":{"properties":{"d":{"type":"string","format":"date"}}}}})")
                .find("schema.properties.d"),
            std::string::npos);
  EXPECT_NE(error(R"({"type":"json_schema","json_schema":{"schema":{"$ref":"#/$defs/Nope"}}})").find("Nope"), std::string::npos);
  EXPECT_NE(error(R"({"type":"json_schema","json_schema":{"schema":{"type":"object","properties":{},"required":["x"]}}})")
                .find("'x'"),
            std::string::npos);
  error(R"({"type":"json_schema","json_schema":{"schema":{"type":"integer","minimum":5,"maximum":1}}})");
  error(R"({"type":"json_schema","json_schema":{"schema":{"type":"object","properties":{"me":{"$ref":"#"}},"required":["me"]}}})");
  error(R"("json_object")");
  error(R"({"type":"tool_calls","tools":[],"parallel_tool_calls":true})");  // the split's own spec, not a client's
  EXPECT_NE(error(R"({"type":"json_schema","json_schema":{"schema":{"anyOf":[{"type":"string"}],"minLength":3}}})").find("'minLength'"),
            std::string::npos);  // a condition beside anyOf would be dropped: refused
  EXPECT_NE(error(R"({"type":"json_schema","json_schema":{"schema":{"$ref":"#/$defs/A","maxLength":3,"$defs":{"A":{"type":"string"}}}}})")
                .find("'$ref' beside"),
            std::string::npos);
  EXPECT_NE(error(R"({"type":"json_schema","json_schema":{"schema":{"type":"integer","minimum":true}}})").find("'minimum'"),
            std::string::npos);
  // enum with a type beside it: the values of that type.
  ASSERT_NE(Ok(chat(R"({"type":"json_schema","json_schema":{"schema":{"type":"string","enum":["a",1]}}})")).grammar, nullptr);
  error(R"({"type":"json_schema","json_schema":{"schema":{"type":"string","enum":[1,2]}}})");
  error(R"({"type":"json_schema","json_schema":{"schema":false}})");
}

TEST(ApiRequest, MalformedBodies) {
  for (const std::string& body : std::vector<std::string>{"", "{", "[1]", "\"x\"", "{\"messages\": [}", std::string(100000, '[')}) {
    ApiError e = Err(ParseChatRequest(body));
    EXPECT_EQ(e.status, 400) << body.substr(0, 20);
    EXPECT_EQ(e.type, "invalid_request_error");
  }
  std::string bad_utf8 = "{\"prompt\":\"a\xff\xfe\"}";
  EXPECT_EQ(Err(ParseCompletionRequest(bad_utf8)).status, 400);
}

}  // namespace
}  // namespace crescent::server
