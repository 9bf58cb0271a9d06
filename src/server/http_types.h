// Native HTTP request/response types and the HttpExchange seam between the
// transport (http_connection.cc) and the API layer (openai_service.cc).
//
// A handler gets one HttpRequest and one shared HttpExchange, and answers
// exactly once: Respond(...) for a whole response, or StartStream / Write / End
// for a streamed one (chunked transfer encoding, e.g. server-sent events).
// Ownership: the exchange keeps its connection alive while anyone holds it.
// Thread-safety: every HttpExchange method may be called from any thread; work
// is posted to the connection's strand. Post(fn) runs fn on that strand, which
// is where the API layer keeps per-request state without locks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace crescent::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // target without the query string
  std::string authorization;
  std::string content_type;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  bool close = false;  // close the connection after sending
};

// "OK", "Bad Request", ... for the statuses this server sends.
const char* HttpReason(int status);

class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual void Respond(HttpResponse response) = 0;
  virtual void StartStream(int status, std::string content_type) = 0;
  virtual void Write(std::string data) = 0;
  virtual void End() = 0;
  // Runs `fn` on the connection's strand (also after the client left).
  virtual void Post(std::function<void()> fn) = 0;
  // `fn` runs once, on the strand, if the client disconnects before End/Respond
  // completes. Set it before starting work that should be cancelled.
  virtual void OnDisconnect(std::function<void()> fn) = 0;
};

using HttpHandler = std::function<void(HttpRequest, std::shared_ptr<HttpExchange>)>;

}  // namespace crescent::server
