#include "server/openai_format.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "server/api_error.h"

namespace crescent::server {
namespace {

namespace json = boost::json;

ResponseMeta Meta(ApiKind kind) {
  ResponseMeta m;
  m.kind = kind;
  m.id = kind == ApiKind::kChat ? "chatcmpl-1" : "cmpl-1";
  m.created = 1700000000;
  m.model = "m";
  return m;
}

engine::SampledToken Tok(int32_t id, float lp, std::vector<std::pair<int32_t, float>> top = {}) {
  engine::SampledToken s;
  s.token = id;
  s.logprob = lp;
  s.top = std::move(top);
  return s;
}

TEST(OpenAiFormat, ChatResponse) {
  ChoiceResult c;
  c.index = 0;
  c.text = "hello";
  c.finish_reason = "stop";
  engine::Usage u{7, 3, 4};
  json::value v = json::parse(FormatResponse(Meta(ApiKind::kChat), {&c, 1}, u));
  EXPECT_EQ(v.at("object"), "chat.completion");
  EXPECT_EQ(v.at("id"), "chatcmpl-1");
  EXPECT_EQ(v.at("created"), 1700000000);
  const auto& ch = v.at("choices").at(0);
  EXPECT_EQ(ch.at("message").at("role"), "assistant");
  EXPECT_EQ(ch.at("message").at("content"), "hello");
  EXPECT_EQ(ch.at("finish_reason"), "stop");
  EXPECT_TRUE(ch.at("logprobs").is_null());
  EXPECT_EQ(v.at("usage").at("prompt_tokens"), 7);
  EXPECT_EQ(v.at("usage").at("completion_tokens"), 3);
  EXPECT_EQ(v.at("usage").at("total_tokens"), 10);
  EXPECT_EQ(v.at("usage").at("prompt_tokens_details").at("cached_tokens"), 4);
}

TEST(OpenAiFormat, CompletionLogprobsWithoutTokenizerUseIds) {
  ResponseMeta m = Meta(ApiKind::kCompletion);
  m.logprobs = true;
  m.top_logprobs = 2;
  ChoiceResult c;
  c.text = "ab";
  c.finish_reason = "length";
  c.samples = {Tok(5, -0.5f, {{5, -0.5f}, {6, -1.5f}}), Tok(9, -std::numeric_limits<float>::infinity(), {})};
  json::value v = json::parse(FormatResponse(m, {&c, 1}, {}));
  const auto& lp = v.at("choices").at(0).at("logprobs");
  EXPECT_EQ(lp.at("tokens").at(0), "token_id:5");
  EXPECT_DOUBLE_EQ(lp.at("token_logprobs").at(0).as_double(), -0.5);
  EXPECT_DOUBLE_EQ(lp.at("token_logprobs").at(1).as_double(), -9999.0);  // no -inf in JSON
  EXPECT_EQ(lp.at("top_logprobs").at(0).as_object().size(), 2u);
  EXPECT_EQ(lp.at("text_offset").at(1), 10);  // "token_id:5" is 10 bytes
}

TEST(OpenAiFormat, ChatChunks) {
  ResponseMeta m = Meta(ApiKind::kChat);
  json::value open = json::parse(FormatChunk(m, 0, "", {}, "", true, true, 0));
  EXPECT_EQ(open.at("object"), "chat.completion.chunk");
  EXPECT_EQ(open.at("choices").at(0).at("delta").at("role"), "assistant");
  EXPECT_EQ(open.at("choices").at(0).at("delta").at("content"), "");
  EXPECT_TRUE(open.at("choices").at(0).at("finish_reason").is_null());
  EXPECT_TRUE(open.at("usage").is_null());
  json::value mid = json::parse(FormatChunk(m, 1, "xy", {}, "", false, false, 0));
  EXPECT_EQ(mid.at("choices").at(0).at("index"), 1);
  EXPECT_EQ(mid.at("choices").at(0).at("delta").at("content"), "xy");
  EXPECT_FALSE(mid.as_object().contains("usage"));
  json::value end = json::parse(FormatChunk(m, 0, "", {}, "length", false, false, 0));
  EXPECT_TRUE(end.at("choices").at(0).at("delta").as_object().empty());
  EXPECT_EQ(end.at("choices").at(0).at("finish_reason"), "length");
  json::value usage = json::parse(FormatUsageChunk(m, engine::Usage{2, 3, 0}));
  EXPECT_TRUE(usage.at("choices").as_array().empty());
  EXPECT_EQ(usage.at("usage").at("total_tokens"), 5);
}

TEST(OpenAiFormat, CompletionChunk) {
  json::value v = json::parse(FormatChunk(Meta(ApiKind::kCompletion), 0, "t", {}, "", false, false, 0));
  EXPECT_EQ(v.at("object"), "text_completion");
  EXPECT_EQ(v.at("choices").at(0).at("text"), "t");
  EXPECT_TRUE(v.at("choices").at(0).at("logprobs").is_null());
}

TEST(OpenAiFormat, SseFraming) {
  EXPECT_EQ(SseEvent("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
  // Text with newlines stays on one data line (JSON escapes it).
  std::string chunk = FormatChunk(Meta(ApiKind::kCompletion), 0, "a\n\nb", {}, "", false, false, 0);
  EXPECT_EQ(chunk.find('\n'), std::string::npos);
}

TEST(OpenAiFormat, ModelList) {
  json::value v = json::parse(FormatModelList("m", 5, 4096));
  EXPECT_EQ(v.at("object"), "list");
  EXPECT_EQ(v.at("data").at(0).at("id"), "m");
  EXPECT_EQ(v.at("data").at(0).at("object"), "model");
  EXPECT_EQ(v.at("data").at(0).at("max_model_len"), 4096);
}

TEST(ApiErrorTest, StatusMappingAndShape) {
  EXPECT_EQ(ApiError::FromStatus(InvalidArgument("x")).status, 400);
  EXPECT_EQ(ApiError::FromStatus(ResourceExhausted("x")).status, 429);
  EXPECT_EQ(ApiError::FromStatus(ResourceExhausted("x")).type, "rate_limit_error");
  EXPECT_EQ(ApiError::FromStatus(Unavailable("x")).status, 503);
  EXPECT_EQ(ApiError::FromStatus(NotFound("x")).status, 404);
  EXPECT_EQ(ApiError::FromStatus(Internal("x")).status, 500);
  EXPECT_EQ(ApiError::ForStatus(401, "k").code, "invalid_api_key");
  EXPECT_EQ(ApiError::ForStatus(413, "big").code, "request_too_large");
  json::value v = json::parse(ApiError::ForStatus(400, "bad \"x\"", "max_tokens").ToJson());
  EXPECT_EQ(v.at("error").at("message"), "bad \"x\"");
  EXPECT_EQ(v.at("error").at("type"), "invalid_request_error");
  EXPECT_EQ(v.at("error").at("param"), "max_tokens");
  EXPECT_TRUE(v.at("error").at("code").is_null());
  json::value nf = json::parse(ApiError::ModelNotFound("gpt").ToJson());
  EXPECT_EQ(nf.at("error").at("code"), "model_not_found");
}

}  // namespace
}  // namespace crescent::server
