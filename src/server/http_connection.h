// HttpConnection: one accepted TCP connection speaking HTTP/1.1 with keep-alive.
//
//   read request (Beast parser; header, body and idle limits; one deadline)
//     ──> handler(request, this as HttpExchange)
//           while the handler works, a "watch" read waits on the socket: EOF or a
//           reset means the client left (OnDisconnect fires, e.g. to cancel engine
//           requests); bytes that arrive are kept for the next request (pipelining)
//     <── Respond(...) or StartStream/Write.../End (chunked), written in order,
//         bursts coalesced into one write
//   ──> next request, or close (Connection: close, an error, server draining)
//
// CORS: a request whose Origin is in `allowed_origins` ("*" allows any) gets
// Access-Control-Allow-Origin (that origin) and Vary: Origin on its answer,
// streamed or not. A preflight (OPTIONS with Access-Control-Request-Method) is
// answered here, before the handler and so without an API key: 204 with the
// allowed methods and headers for an allowed origin, 403 for another. Other
// OPTIONS requests get 204 with Allow. With no allowed origins (the default)
// no CORS header is ever sent: browsers keep other origins out.
//
// Malformed input never throws past here: a parse error answers 400, a body over
// the limit 413, a header over the limit 431, each followed by a lingering close
// (shut down sending, drain what the client still sends for a moment) so the
// client reads the answer instead of a reset. A client that is too slow to send a
// request (or to read its response) is disconnected at the deadline.
//
// Ownership: shared_ptr; pending operations, the exchange holders and the
// ConnectionSet keep it alive. Thread-safety: the HttpExchange methods and
// CloseWhenIdle may be called from any thread (they post to the strand);
// everything else runs on the connection's strand.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/http_types.h"
#include "base/thread_annotations.h"

namespace crescent::server {

struct HttpOptions {
  size_t max_body_bytes = 4u << 20;
  size_t max_header_bytes = 16u << 10;
  double read_timeout_s = 15;   // to receive one whole request, and idle keep-alive
  double write_timeout_s = 60;  // for one write to drain (a client that stops reading)
  // Open connections at most; one past it is answered 503 and closed at once
  // (each connection holds a socket, its buffers and a strand).
  size_t max_connections = 4096;
  std::vector<std::string> allowed_origins;  // CORS; "*" = any; empty = same-origin only
  HttpHandler handler;
  std::function<void(int)> on_status;  // each response's status (may be empty)
};

class HttpConnection;

// The live connections of a server, so draining can reach them.
// Thread-safety: internally locked.
class ConnectionSet {
 public:
  void Add(HttpConnection* c, std::weak_ptr<HttpConnection> w);
  void Remove(HttpConnection* c);
  size_t size() const;
  void CloseAllWhenIdle();

 private:
  mutable Mutex mu_;
  std::unordered_map<HttpConnection*, std::weak_ptr<HttpConnection>> conns_ GUARDED_BY(mu_);
};

class HttpConnection final : public HttpExchange, public std::enable_shared_from_this<HttpConnection> {
 public:
  using Socket = boost::asio::ip::tcp::socket;  // its executor is a strand

  HttpConnection(Socket socket, std::shared_ptr<const HttpOptions> options, std::shared_ptr<ConnectionSet> set);
  ~HttpConnection() override;

  void Start();
  // Finishes the request in flight (with Connection: close), then closes; closes
  // now when idle.
  void CloseWhenIdle();

  void Respond(HttpResponse response) override;
  void StartStream(int status, std::string content_type) override;
  void Write(std::string data) override;
  void End() override;
  void Post(std::function<void()> fn) override;
  void OnDisconnect(std::function<void()> fn) override;

 private:
  void ReadRequest();
  void OnHeader(boost::beast::error_code ec);
  void OnRead(boost::beast::error_code ec);
  void Dispatch();
  void StartWatch();
  void OnWatch(boost::beast::error_code ec, size_t n);
  void SendError(int status, const std::string& message);
  bool OriginAllowed(const std::string& origin) const;
  void AnswerOptions(bool preflight, const std::string& origin, const std::string& request_headers);
  void Enqueue(std::string bytes, bool last);
  void Flush();
  void OnWritten(boost::beast::error_code ec);
  void FinishExchange();
  void Linger();
  void Drain();
  void CloseNow();
  void ArmTimer(boost::asio::steady_timer& t, double seconds);
  std::string HeaderBlock(int status, const std::string& content_type, const std::string& length_or_chunked,
                          const std::vector<std::pair<std::string, std::string>>& extra);

  Socket socket_;
  std::shared_ptr<const HttpOptions> options_;
  boost::asio::any_io_executor strand_;
  std::shared_ptr<ConnectionSet> set_;
  boost::asio::steady_timer read_timer_, write_timer_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;

  // Strand-only state.
  bool in_flight_ = false;      // a request is being answered
  bool responded_ = false;      // the last byte of the answer is queued
  bool keep_alive_ = true;
  bool draining_ = false;       // CloseWhenIdle was called
  bool closed_ = false;
  bool streaming_ = false;
  bool watching_ = false;       // the watch read is pending
  bool writing_ = false;
  bool lingering_ = false;
  std::string cors_origin_;     // the request's Origin when allowed ("" = no CORS headers)
  std::string out_;             // queued bytes not yet handed to a write
  std::string writing_buf_;     // bytes of the write in progress
  std::function<void()> on_disconnect_;
};

}  // namespace crescent::server
