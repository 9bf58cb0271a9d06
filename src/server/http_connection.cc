#include "server/http_connection.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <fmt/format.h>

#include <array>
#include <chrono>

#include "base/logging.h"
#include "server/api_error.h"
#include "server/http_request_fields.h"
#include "base/thread_annotations.h"

namespace crescent::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

const char* HttpReason(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 403: return "Forbidden";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

void ConnectionSet::Add(HttpConnection* c, std::weak_ptr<HttpConnection> w) {
  MutexLock lock(mu_);
  conns_[c] = std::move(w);
}

void ConnectionSet::Remove(HttpConnection* c) {
  MutexLock lock(mu_);
  conns_.erase(c);
}

size_t ConnectionSet::size() const {
  MutexLock lock(mu_);
  return conns_.size();
}

void ConnectionSet::CloseAllWhenIdle() {
  std::vector<std::shared_ptr<HttpConnection>> live;
  {
    MutexLock lock(mu_);
    for (auto& [c, w] : conns_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& c : live) c->CloseWhenIdle();
}

HttpConnection::HttpConnection(Socket socket, std::shared_ptr<const HttpOptions> options,
                               std::shared_ptr<ConnectionSet> set)
    : socket_(std::move(socket)),
      options_(std::move(options)),
      strand_(socket_.get_executor()),
      set_(std::move(set)),
      read_timer_(strand_),
      write_timer_(strand_) {}

HttpConnection::~HttpConnection() { set_->Remove(this); }

void HttpConnection::Start() {
  set_->Add(this, weak_from_this());
  beast::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);  // latency: answers are small
  asio::dispatch(strand_, [self = shared_from_this()] { self->ReadRequest(); });
}

void HttpConnection::ArmTimer(asio::steady_timer& t, double seconds) {
  t.expires_after(std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6)));
  t.async_wait([self = shared_from_this(), &t](beast::error_code ec) {
    if (ec || t.expiry() > asio::steady_timer::clock_type::now()) return;
    self->CloseNow();
  });
}

void HttpConnection::ReadRequest() {
  if (closed_) return;
  if (draining_) return CloseNow();
  parser_.emplace();
  parser_->body_limit(options_->max_body_bytes);
  parser_->header_limit(static_cast<uint32_t>(options_->max_header_bytes));
  ArmTimer(read_timer_, options_->read_timeout_s);
  http::async_read_header(socket_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
}

void HttpConnection::OnHeader(beast::error_code ec) {
  if (closed_) return;
  if (!ec) {
    const auto& req = parser_->get();
    auto expect = req.find(http::field::expect);
    if (expect != req.end() && beast::iequals(expect->value(), "100-continue")) {
      // Tiny and rare (curl, large bodies): written synchronously on the strand.
      static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::write(socket_, asio::buffer(kContinue, sizeof(kContinue) - 1), ec);
      if (ec) return CloseNow();
    }
    if (parser_->is_done()) return OnRead(ec);
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
    return;
  }
  OnRead(ec);
}

void HttpConnection::OnRead(beast::error_code ec) {
  if (closed_) return;
  read_timer_.cancel();
  if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::operation_aborted || ec == http::error::partial_message) {
    return CloseNow();  // the client left (or the deadline closed it) mid-request
  }
  if (ec == http::error::body_limit) {
    return SendError(413, fmt::format("the request body exceeds {} bytes", options_->max_body_bytes));
  }
  if (ec == http::error::header_limit) return SendError(431, "the request headers are too large");
  if (ec) return SendError(400, "malformed HTTP request: " + ec.message());
  Dispatch();
}

void HttpConnection::Dispatch() {
  HttpRequestFields f = TakeRequestFields(parser_->get());
  HttpRequest& req = f.request;
  const std::string& origin = f.origin;
  const std::string& preflight_method = f.preflight_method;
  const std::string& preflight_headers = f.preflight_headers;
  cors_origin_ = !origin.empty() && OriginAllowed(origin) ? origin : std::string();
  keep_alive_ = f.keep_alive;
  parser_.reset();
  in_flight_ = true;
  responded_ = false;
  streaming_ = false;
  StartWatch();
  if (req.method == "OPTIONS") return AnswerOptions(!preflight_method.empty(), origin, preflight_headers);
  options_->handler(std::move(req), shared_from_this());
}

bool HttpConnection::OriginAllowed(const std::string& origin) const {
  for (const std::string& o : options_->allowed_origins) {
    if (o == "*" || o == origin) return true;
  }
  return false;
}

void HttpConnection::AnswerOptions(bool preflight, const std::string& origin, const std::string& request_headers) {
  HttpResponse r;
  r.status = 204;
  r.content_type.clear();
  if (!preflight) {
    r.headers.emplace_back("Allow", "GET, POST, OPTIONS");
    return Respond(std::move(r));
  }
  if (cors_origin_.empty()) {
    r.status = 403;
    r.content_type = "application/json";
    r.body = ApiError::ForStatus(403, fmt::format("the origin '{}' is not allowed (crescent serve --allowed-origins)",
                                                  origin))
                 .ToJson();
    return Respond(std::move(r));
  }
  r.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
  r.headers.emplace_back("Access-Control-Allow-Headers",
                         request_headers.empty() ? "Authorization, Content-Type" : request_headers);
  r.headers.emplace_back("Access-Control-Max-Age", "600");
  Respond(std::move(r));
}

void HttpConnection::StartWatch() {
  // Keep pipelined bytes, but not without bound.
  if (watching_ || closed_ || buffer_.size() > options_->max_header_bytes + options_->max_body_bytes) return;
  watching_ = true;
  socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->OnWatch(ec, n);
  });
}

void HttpConnection::OnWatch(beast::error_code ec, size_t n) {
  watching_ = false;
  if (closed_) return;
  if (lingering_) {
    if (ec && ec != asio::error::operation_aborted) return CloseNow();
    buffer_.consume(buffer_.size());
    return Drain();
  }
  if (!ec) {
    buffer_.commit(n);
    if (in_flight_) return StartWatch();
    return ReadRequest();
  }
  if (ec == asio::error::operation_aborted) {
    if (!in_flight_) ReadRequest();
    return;
  }
  CloseNow();  // EOF or reset: the client is gone
}

void HttpConnection::SendError(int status, const std::string& message) {
  cors_origin_.clear();  // the request was not read: its Origin is unknown
  in_flight_ = true;
  responded_ = false;
  keep_alive_ = false;
  HttpResponse r;
  r.status = status;
  r.body = ApiError::ForStatus(status, message).ToJson();
  r.close = true;
  Respond(std::move(r));
}

std::string HttpConnection::HeaderBlock(int status, const std::string& content_type,
                                        const std::string& length_or_chunked,
                                        const std::vector<std::pair<std::string, std::string>>& extra) {
  std::string h = fmt::format("HTTP/1.1 {} {}\r\nServer: crescent\r\n", status, HttpReason(status));
  if (!content_type.empty()) h += "Content-Type: " + content_type + "\r\n";
  if (!length_or_chunked.empty()) h += length_or_chunked + "\r\n";
  h += keep_alive_ && !draining_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  if (!cors_origin_.empty()) h += "Access-Control-Allow-Origin: " + cors_origin_ + "\r\nVary: Origin\r\n";
  for (const auto& [k, v] : extra) h += k + ": " + v + "\r\n";
  h += "\r\n";
  return h;
}

void HttpConnection::Respond(HttpResponse response) {
  asio::dispatch(strand_, [self = shared_from_this(), r = std::move(response)]() mutable {
    if (self->closed_ || !self->in_flight_ || self->responded_ || self->streaming_) return;
    if (r.close) self->keep_alive_ = false;
    if (self->options_->on_status) self->options_->on_status(r.status);
    std::string bytes = self->HeaderBlock(r.status, r.content_type, r.status == 204 ? std::string() : fmt::format("Content-Length: {}", r.body.size()),
                                          r.headers);
    bytes += r.body;
    self->Enqueue(std::move(bytes), true);
  });
}

void HttpConnection::StartStream(int status, std::string content_type) {
  asio::dispatch(strand_, [self = shared_from_this(), status, ct = std::move(content_type)] {
    if (self->closed_ || !self->in_flight_ || self->responded_ || self->streaming_) return;
    self->streaming_ = true;
    if (self->options_->on_status) self->options_->on_status(status);
    self->Enqueue(self->HeaderBlock(status, ct, "Transfer-Encoding: chunked", {{"Cache-Control", "no-cache"}}), false);
  });
}

void HttpConnection::Write(std::string data) {
  if (data.empty()) return;  // an empty chunk would end the stream
  asio::dispatch(strand_, [self = shared_from_this(), d = std::move(data)] {
    if (self->closed_ || !self->streaming_ || self->responded_) return;
    self->Enqueue(fmt::format("{:x}\r\n", d.size()) + d + "\r\n", false);
  });
}

void HttpConnection::End() {
  asio::dispatch(strand_, [self = shared_from_this()] {
    if (self->closed_ || !self->streaming_ || self->responded_) return;
    self->Enqueue("0\r\n\r\n", true);
  });
}

void HttpConnection::Post(std::function<void()> fn) { asio::post(strand_, std::move(fn)); }

void HttpConnection::OnDisconnect(std::function<void()> fn) {
  asio::dispatch(strand_, [self = shared_from_this(), f = std::move(fn)]() mutable {
    if (self->closed_) {
      f();
      return;
    }
    self->on_disconnect_ = std::move(f);
  });
}

void HttpConnection::CloseWhenIdle() {
  asio::post(strand_, [self = shared_from_this()] {
    self->draining_ = true;
    if (!self->in_flight_) self->CloseNow();
  });
}

void HttpConnection::Enqueue(std::string bytes, bool last) {
  out_ += bytes;
  if (last) responded_ = true;
  Flush();
}

void HttpConnection::Flush() {
  if (writing_ || closed_ || out_.empty()) return;
  writing_ = true;
  writing_buf_.swap(out_);
  out_.clear();
  ArmTimer(write_timer_, options_->write_timeout_s);
  asio::async_write(socket_, asio::buffer(writing_buf_),
                    [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWritten(ec); });
}

void HttpConnection::OnWritten(beast::error_code ec) {
  writing_ = false;
  write_timer_.cancel();
  if (closed_) return;
  if (ec) return CloseNow();
  writing_buf_.clear();
  if (!out_.empty()) return Flush();
  if (responded_ && in_flight_) FinishExchange();
}

void HttpConnection::FinishExchange() {
  in_flight_ = false;
  on_disconnect_ = nullptr;
  if (!keep_alive_ || draining_) return Linger();
  if (watching_) {
    beast::error_code ignored;
    socket_.cancel(ignored);  // OnWatch (operation_aborted) reads the next request
    return;
  }
  ReadRequest();
}

void HttpConnection::Linger() {
  // Half-close, then drain briefly so unread input does not turn into a reset
  // that destroys the answer before the client reads it.
  if (lingering_) return;
  lingering_ = true;
  beast::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  ArmTimer(read_timer_, 2.0);
  if (watching_) {
    socket_.cancel(ignored);  // OnWatch continues with Drain
    return;
  }
  Drain();
}

void HttpConnection::Drain() {
  struct Reader {
    std::shared_ptr<HttpConnection> self;
    std::shared_ptr<std::array<char, 16384>> scratch = std::make_shared<std::array<char, 16384>>();
    size_t total = 0;
    void operator()(beast::error_code ec = {}, size_t n = 0) {
      total += n;
      if (ec || self->closed_ || total > (64u << 20)) return self->CloseNow();
      auto buf = asio::buffer(*scratch);
      self->socket_.async_read_some(buf, std::move(*this));
    }
  };
  Reader{shared_from_this()}();
}

void HttpConnection::CloseNow() {
  if (closed_) return;
  closed_ = true;
  read_timer_.cancel();
  write_timer_.cancel();
  beast::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  if (in_flight_ && on_disconnect_) {
    auto f = std::move(on_disconnect_);
    on_disconnect_ = nullptr;
    f();
  }
}

}  // namespace crescent::server
