// OpenAiService routing without a model: loading, failed and draining states,
// authentication, 404/405, and /metrics, through a recording HttpExchange.
#include "server/openai_service.h"

#include <gtest/gtest.h>

namespace crescent::server {
namespace {

class RecordingExchange final : public HttpExchange {
 public:
  void Respond(HttpResponse r) override { response = std::move(r); }
  void StartStream(int status, std::string) override { response.status = status; }
  void Write(std::string data) override { response.body += data; }
  void End() override {}
  void Post(std::function<void()> fn) override { fn(); }
  void OnDisconnect(std::function<void()>) override {}
  HttpResponse response{0, "", "", {}, false};
};

HttpResponse Call(OpenAiService& s, std::string method, std::string path, std::string auth = "") {
  auto ex = std::make_shared<RecordingExchange>();
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.authorization = std::move(auth);
  r.body = R"({"messages":[{"role":"user","content":"x"}]})";
  s.Handle(std::move(r), ex);
  return ex->response;
}

TEST(OpenAiService, LoadingAnswers503ButServesMetrics) {
  OpenAiService s({"m", ""});
  EXPECT_EQ(Call(s, "GET", "/health").status, 503);
  HttpResponse chat = Call(s, "POST", "/v1/chat/completions");
  EXPECT_EQ(chat.status, 503);
  EXPECT_NE(chat.body.find("loading"), std::string::npos);
  EXPECT_EQ(Call(s, "GET", "/v1/models").status, 503);
  HttpResponse m = Call(s, "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("crescent_http_requests_total"), std::string::npos);
}

TEST(OpenAiService, FailedAndDrainingAnswer503) {
  OpenAiService failed({"m", ""});
  failed.SetLoadFailed("no such folder");
  HttpResponse r = Call(failed, "POST", "/v1/completions");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("no such folder"), std::string::npos);
  OpenAiService draining({"m", ""});
  draining.SetDraining();
  EXPECT_EQ(Call(draining, "GET", "/health").status, 503);
  EXPECT_NE(Call(draining, "POST", "/v1/completions").body.find("shutting down"), std::string::npos);
}

TEST(OpenAiService, RoutesMethodsAndAuth) {
  OpenAiService s({"m", "secret"});
  EXPECT_EQ(Call(s, "GET", "/nope").status, 404);
  EXPECT_EQ(Call(s, "POST", "/v1/models", "Bearer secret").status, 405);
  HttpResponse r = Call(s, "GET", "/v1/chat/completions", "Bearer secret");
  EXPECT_EQ(r.status, 405);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].second, "POST");
  EXPECT_EQ(Call(s, "POST", "/v1/chat/completions").status, 401);
  EXPECT_EQ(Call(s, "POST", "/v1/chat/completions", "Bearer wrong").status, 401);
  EXPECT_EQ(Call(s, "POST", "/v1/chat/completions", "Bearer secret").status, 503);  // authorized, still loading
  EXPECT_EQ(Call(s, "GET", "/health").status, 503);                                   // no key needed
  EXPECT_EQ(Call(s, "POST", "/health").status, 405);
}

}  // namespace
}  // namespace crescent::server
