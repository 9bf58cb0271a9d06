// A minimal HTTP/1.1 client (Boost.Beast) for the etcd v3 JSON gateway.
//
// HttpPost: one POST on a connection of its own, with a deadline on the whole
// exchange (connect, write, read): the operations are asynchronous and run
// for at most the deadline, then the socket is closed. IP literals need no
// name resolution; a host name is resolved with getaddrinfo, which a dead DNS
// server can stretch past the deadline (etcd endpoints are IP literals here). A peer that
// accepts and never answers, stops mid-response or trickles bytes gives
// Unavailable within timeout_ms (plus scheduling noise), never a hang.
//
// HttpStream: a POST whose response body arrives over time (etcd's watch
// stream). Open() has a deadline on the exchange up to the response header;
// each ReadSome() has its own deadline; Cancel() from any thread makes a
// blocked ReadSome() return Cancelled at once.
//
// Thread-safety: HttpPost is a stateless function. An HttpStream is used by
// one thread, except Cancel(), which any thread may call.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace crescent::transfer {

struct HttpEndpoint {
  std::string host;  // an IP literal or a name resolvable locally
  uint16_t port = 0;
};

// Parses "host:port" or "http://host:port".
Result<HttpEndpoint> ParseHttpEndpoint(std::string_view text);

// A response with a status other than 200: its status and body.
struct HttpError {
  int status = 0;
  std::string body;
};

// POSTs `body` (JSON) to http://host:port<target>. Returns the response body
// when the status is 200; Unavailable when the server cannot be reached or the
// deadline passes; for another status, `http_error` (when given) receives it
// and the Status is Internal with the status and body.
Result<std::string> HttpPost(const HttpEndpoint& endpoint, std::string_view target, std::string_view body,
                             int64_t timeout_ms, HttpError* http_error = nullptr);

class HttpStream {
 public:
  // POSTs `body` and reads the response header within timeout_ms; a status
  // other than 200 is Internal (naming the status).
  static Result<std::unique_ptr<HttpStream>> Open(const HttpEndpoint& endpoint, std::string_view target,
                                                  std::string_view body, int64_t timeout_ms);
  ~HttpStream();
  HttpStream(const HttpStream&) = delete;
  HttpStream& operator=(const HttpStream&) = delete;

  // The next bytes of the body (never empty on success). DeadlineExceeded when
  // nothing arrives within timeout_ms (the stream stays usable), Unavailable
  // when the server closed it or it broke, Cancelled after Cancel().
  Result<std::string> ReadSome(int64_t timeout_ms);
  // Any thread: ends a ReadSome() in progress and every later one.
  void Cancel();

 private:
  struct Impl;
  explicit HttpStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace crescent::transfer
