// A small blocking HTTP/1.1 client for the benchmarks that speak to any
// OpenAI-compatible endpoint (`crescent bench trace`, `bench pd`): one request
// per connection, a deadline on every read, Server-Sent Events delivered as
// they arrive, and an Abort that any thread may call to end a request at once.
//
// Errors: a failure to connect, a broken or timed-out connection are a
// Status (Unavailable / DeadlineExceeded); an HTTP error status is a normal
// result (status and body). Never throws.
// Thread-safety: one HttpCall per request; Abort() from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "base/status.h"

namespace crescent::cli {

struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string prefix;  // a path before /v1/..., without the trailing '/' ("" mostly)
};

// "http://host[:port][/prefix]"; https is refused (not supported here).
Result<HttpUrl> ParseHttpUrl(std::string_view url);

struct HttpReply {
  int status = 0;
  std::string body;  // the whole body; for a stream answered 200, empty
  bool stream_done = false;  // a stream: its "data: [DONE]" arrived
};

class HttpCall {
 public:
  HttpCall() = default;
  HttpCall(const HttpCall&) = delete;
  HttpCall& operator=(const HttpCall&) = delete;

  // GET or POST (when `body` is not empty: JSON). With `on_event`, a 200
  // answer is read as Server-Sent Events: `on_event` gets each event's data
  // (the text after "data: ") as it arrives, [DONE] excepted. `timeout_s`
  // bounds connecting and each read (the gap between two events), not the
  // whole request.
  Result<HttpReply> Run(const HttpUrl& url, std::string_view method, const std::string& path, const std::string& body,
                        const std::string& api_key, double timeout_s,
                        const std::function<void(std::string_view)>& on_event = {});
  // Ends a Run in progress (or the next one) at once: it returns Cancelled.
  void Abort();

 private:
  std::mutex mu_;
  int fd_ = -1;           // GUARDED_BY(mu_): the connection of the Run in progress
  bool aborted_ = false;  // GUARDED_BY(mu_)
};

}  // namespace crescent::cli
