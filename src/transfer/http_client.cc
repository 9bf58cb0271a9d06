#include "transfer/http_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <charconv>
#include <chrono>
#include <functional>
#include <optional>

namespace crescent::transfer {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

Result<HttpEndpoint> ParseHttpEndpoint(std::string_view text) {
  std::string_view t = text;
  if (t.starts_with("http://")) t.remove_prefix(7);
  while (t.ends_with("/")) t.remove_suffix(1);
  size_t colon = t.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgument("endpoint '" + std::string(text) + "': expected host:port");
  }
  HttpEndpoint e;
  e.host = std::string(t.substr(0, colon));
  if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']') e.host = e.host.substr(1, e.host.size() - 2);
  std::string_view port = t.substr(colon + 1);
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535) {
    return InvalidArgument("endpoint '" + std::string(text) + "': bad port");
  }
  e.port = static_cast<uint16_t>(p);
  return e;
}

namespace {

using Clock = std::chrono::steady_clock;

std::string Where(const HttpEndpoint& e, std::string_view target) {
  return "http://" + e.host + ":" + std::to_string(e.port) + std::string(target);
}

// One connection driven by its own io_context: every operation is started
// asynchronously and the context runs until it ends or the deadline passes,
// when the socket is closed and the handler drained (it then runs at once,
// with operation_aborted), so nothing outlives the call.
class Connection {
 public:
  Connection() : socket_(io_) {}
  ~Connection() { Close(); }

  tcp::socket& socket() { return socket_; }
  asio::io_context& io() { return io_; }

  void Close() {
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  // Runs `start(handler)` until the handler ran or `deadline` passed. Returns
  // the handler's error, or timed_out after `cancel` (default: closing the
  // socket) made the operation end.
  template <typename Start>
  error_code Run(Clock::time_point deadline, Start&& start, const std::function<void()>& cancel = {}) {
    std::optional<error_code> result;
    start([&result](error_code ec, auto&&...) { result = ec; });
    Drive(deadline, result);
    if (!result) {
      if (cancel) cancel();
      Close();
      io_.restart();
      io_.run();  // the aborted handler runs now
      return asio::error::timed_out;
    }
    return *result;
  }

  // Runs the context until `done` holds a value or `deadline` passes (or the
  // context runs out of work, which only a bug could cause).
  void Drive(Clock::time_point deadline, const std::optional<error_code>& done) {
    while (!done) {
      const auto now = Clock::now();
      if (now >= deadline) return;
      io_.restart();
      io_.run_for(deadline - now);
      if (!done && io_.stopped()) return;
    }
  }

  // Resolves and connects within the deadline; sets TCP keep-alive so a peer
  // that vanishes without a FIN is noticed on long-lived streams.
  error_code Connect(const HttpEndpoint& ep, Clock::time_point deadline) {
    error_code ec;
    std::vector<tcp::endpoint> targets;
    const asio::ip::address literal = asio::ip::make_address(ep.host, ec);
    if (!ec) {
      targets.emplace_back(literal, ep.port);  // an IP literal: no resolver thread, nothing to wait for
    } else {
      // A name: getaddrinfo cannot be interrupted, so a dead DNS server can
      // outlast the deadline (cancel only stops waiting for it afterwards).
      tcp::resolver resolver(io_);
      ec = Run(
          deadline,
          [&](auto handler) {
            resolver.async_resolve(ep.host, std::to_string(ep.port),
                                   [&targets, handler](error_code e, tcp::resolver::results_type r) mutable {
                                     for (const auto& x : r) targets.push_back(x.endpoint());
                                     handler(e);
                                   });
          },
          [&resolver] { resolver.cancel(); });
      if (ec) return ec;
    }
    ec = Run(deadline, [&](auto handler) {
      asio::async_connect(socket_, targets, [handler](error_code e, const tcp::endpoint&) mutable { handler(e); });
    });
    if (ec) return ec;
    socket_.set_option(tcp::no_delay(true), ec);
    socket_.set_option(asio::socket_base::keep_alive(true), ec);
    const int idle = 5, interval = 2, count = 3;
    setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
    return {};
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
};

Status Failure(std::string_view where, error_code ec, int64_t timeout_ms) {
  if (ec == asio::error::timed_out) {
    return Unavailable(std::string(where) + ": no answer within " + std::to_string(timeout_ms) + " ms");
  }
  return Unavailable(std::string(where) + ": " + ec.message());
}

http::request<http::string_body> MakeRequest(const HttpEndpoint& ep, std::string_view target, std::string_view body) {
  http::request<http::string_body> req{http::verb::post, std::string(target), 11};
  req.set(http::field::host, ep.host);
  req.set(http::field::content_type, "application/json");
  req.body() = std::string(body);
  req.prepare_payload();
  return req;
}

}  // namespace

Result<std::string> HttpPost(const HttpEndpoint& endpoint, std::string_view target, std::string_view body,
                             int64_t timeout_ms, HttpError* http_error) {
  const std::string where = Where(endpoint, target);
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  Connection c;
  error_code ec = c.Connect(endpoint, deadline);
  if (ec) return Failure(where, ec, timeout_ms);
  auto req = MakeRequest(endpoint, target, body);
  ec = c.Run(deadline, [&](auto handler) { http::async_write(c.socket(), req, handler); });
  if (ec) return Failure(where, ec, timeout_ms);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  ec = c.Run(deadline, [&](auto handler) { http::async_read(c.socket(), buffer, parser, handler); });
  if (ec) return Failure(where, ec, timeout_ms);
  http::response<http::string_body> res = parser.release();
  if (res.result() != http::status::ok) {
    if (http_error) *http_error = HttpError{static_cast<int>(res.result_int()), res.body()};
    return Internal(where + ": HTTP " + std::to_string(res.result_int()) + ": " + res.body());
  }
  return std::move(res.body());
}

struct HttpStream::Impl {
  std::string where;
  Connection conn;
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  char chunk[16 << 10];
  // A read started by one ReadSome and not yet ended (kept across a timeout,
  // so the parser never sees a cancelled read).
  bool pending = false;
  std::optional<error_code> result;
  std::atomic<bool> cancelled{false};
  bool broken = false;

  void StartRead() {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    result.reset();
    pending = true;
    http::async_read_some(conn.socket(), buffer, parser, [this](error_code ec, size_t) { result = ec; });
  }
};

HttpStream::HttpStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpStream::~HttpStream() {
  impl_->conn.Close();
  impl_->conn.io().restart();
  impl_->conn.io().run();  // drains a pending read's handler
}

Result<std::unique_ptr<HttpStream>> HttpStream::Open(const HttpEndpoint& endpoint, std::string_view target,
                                                     std::string_view body, int64_t timeout_ms) {
  auto impl = std::make_unique<Impl>();
  impl->where = Where(endpoint, target);
  impl->parser.body_limit(boost::none);
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  Connection& c = impl->conn;
  error_code ec = c.Connect(endpoint, deadline);
  if (ec) return Failure(impl->where, ec, timeout_ms);
  auto req = MakeRequest(endpoint, target, body);
  ec = c.Run(deadline, [&](auto handler) { http::async_write(c.socket(), req, handler); });
  if (ec) return Failure(impl->where, ec, timeout_ms);
  Impl* p = impl.get();
  ec = c.Run(deadline, [&](auto handler) { http::async_read_header(c.socket(), p->buffer, p->parser, handler); });
  if (ec) return Failure(impl->where, ec, timeout_ms);
  const int status = static_cast<int>(impl->parser.get().result_int());
  if (status != 200) {
    return Internal(impl->where + ": HTTP " + std::to_string(status));
  }
  return std::unique_ptr<HttpStream>(new HttpStream(std::move(impl)));
}

Result<std::string> HttpStream::ReadSome(int64_t timeout_ms) {
  Impl& s = *impl_;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (s.cancelled.load()) return Cancelled(s.where + ": stream cancelled");
    if (s.broken) return Unavailable(s.where + ": stream closed");
    if (s.parser.is_done()) {
      s.broken = true;
      return Unavailable(s.where + ": the server ended the stream");
    }
    if (!s.pending) s.StartRead();
    s.conn.Drive(deadline, s.result);
    if (!s.result) {
      if (s.cancelled.load()) continue;
      return DeadlineExceeded(s.where + ": nothing within " + std::to_string(timeout_ms) + " ms");
    }
    s.pending = false;
    const error_code ec = *s.result;
    const size_t got = sizeof(s.chunk) - s.parser.get().body().size;
    if (ec && ec != http::error::need_buffer) {
      s.broken = true;
      if (s.cancelled.load()) return Cancelled(s.where + ": stream cancelled");
      if (got > 0) return std::string(s.chunk, got);
      return Unavailable(s.where + ": " + ec.message());
    }
    if (got > 0) return std::string(s.chunk, got);
    if (Clock::now() >= deadline) {
      return DeadlineExceeded(s.where + ": nothing within " + std::to_string(timeout_ms) + " ms");
    }
  }
}

void HttpStream::Cancel() {
  impl_->cancelled.store(true);
  asio::post(impl_->conn.io(), [s = impl_.get()] { s->conn.Close(); });
}

}  // namespace crescent::transfer
