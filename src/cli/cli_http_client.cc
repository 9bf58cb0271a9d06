#include "cli/cli_http_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace crescent::cli {
namespace {

namespace http = boost::beast::http;
using boost::system::error_code;

// A connected socket as a Beast SyncReadStream whose reads wait at most
// `timeout_ms` (asio's own sync reads would wait forever).
class FdStream {
 public:
  FdStream(int fd, int timeout_ms) : fd_(fd), timeout_ms_(timeout_ms) {}
  template <class Buffers>
  size_t read_some(const Buffers& buffers, error_code& ec) {
    ec = {};
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::mutable_buffer b = *it;
      if (b.size() == 0) continue;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, timeout_ms_);
      if (r == 0) {
        ec = boost::asio::error::timed_out;
        return 0;
      }
      if (r < 0) {
        ec = error_code(errno, boost::system::system_category());
        return 0;
      }
      const ssize_t n = ::recv(fd_, b.data(), b.size(), 0);
      if (n == 0) ec = boost::asio::error::eof;
      if (n < 0) ec = error_code(errno, boost::system::system_category());
      return n > 0 ? static_cast<size_t>(n) : 0;
    }
    return 0;
  }
  template <class Buffers>
  size_t read_some(const Buffers& buffers) {
    error_code ec;
    const size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  int fd_;
  int timeout_ms_;
};

Status SendAll(int fd, std::string_view data, int timeout_ms) {
  while (!data.empty()) {
    pollfd p{fd, POLLOUT, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r == 0) return DeadlineExceeded("sending the request timed out");
    if (r < 0) return Unavailable(std::string("send: ") + std::strerror(errno));
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) return Unavailable(std::string("send: ") + std::strerror(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// A socket connected to host:port within timeout_ms; `publish(fd)` is called
// on each socket before it connects (false: aborted) so that Abort can end
// the connect too, and `publish(-1)` when one is given up.
Result<int> Connect(const HttpUrl& url, int timeout_ms, const std::function<bool(int)>& publish) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(url.port);
  if (int e = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found); e != 0) {
    return Unavailable(fmt::format("cannot resolve {}: {}", url.host, gai_strerror(e)));
  }
  std::string last = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    if (!publish(fd)) {
      publish(-1);
      ::close(fd);
      ::freeaddrinfo(found);
      return Cancelled("aborted");
    }
    int r = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      r = ::poll(&p, 1, timeout_ms);
      int err = 0;
      socklen_t len = sizeof(err);
      if (r == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
        r = 0;
      } else {
        errno = r == 0 ? ETIMEDOUT : (err ? err : errno);
        r = -1;
      }
    }
    if (r == 0) {
      ::freeaddrinfo(found);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return fd;
    }
    last = std::strerror(errno);
    publish(-1);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return Unavailable(fmt::format("cannot connect to {}:{}: {}", url.host, url.port, last));
}

}  // namespace

Result<HttpUrl> ParseHttpUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.starts_with("https://")) return InvalidArgument("https is not supported; use http://");
  if (!url.starts_with(kScheme)) return InvalidArgument(fmt::format("not an http:// URL: '{}'", url));
  url.remove_prefix(kScheme.size());
  HttpUrl out;
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) {
    out.prefix = std::string(url.substr(slash));
    while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
  }
  std::string_view host = authority;
  if (authority.starts_with('[')) {  // [::1]:8000
    const size_t end = authority.find(']');
    if (end == std::string_view::npos) return InvalidArgument(fmt::format("bad host in URL '{}'", authority));
    host = authority.substr(1, end - 1);
    authority.remove_prefix(end + 1);
  } else {
    const size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    authority = colon == std::string_view::npos ? std::string_view() : authority.substr(colon);
  }
  if (authority.starts_with(':')) {
    authority.remove_prefix(1);
    unsigned port = 0;
    auto [p, ec] = std::from_chars(authority.data(), authority.data() + authority.size(), port);
    if (ec != std::errc() || p != authority.data() + authority.size() || port == 0 || port > 65535) {
      return InvalidArgument(fmt::format("bad port in URL: '{}'", authority));
    }
    out.port = static_cast<uint16_t>(port);
  } else if (!authority.empty()) {
    return InvalidArgument(fmt::format("bad URL authority: '{}'", authority));
  }
  if (host.empty()) return InvalidArgument("no host in the URL");
  out.host = std::string(host);
  return out;
}

void HttpCall::Abort() {
  std::lock_guard<std::mutex> l(mu_);
  aborted_ = true;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);  // the blocked poll/recv returns at once
}

Result<HttpReply> HttpCall::Run(const HttpUrl& url, std::string_view method, const std::string& path,
                                const std::string& body, const std::string& api_key, double timeout_s,
                                const std::function<void(std::string_view)>& on_event) {
  const int timeout_ms = static_cast<int>(std::clamp(timeout_s * 1000, 1.0, 2e9));
  auto publish = [&](int fd) {
    std::lock_guard<std::mutex> l(mu_);
    fd_ = fd;
    return !aborted_;
  };
  Result<int> connected = Connect(url, timeout_ms, publish);
  if (!connected.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    fd_ = -1;
    return aborted_ ? Cancelled("aborted") : connected.status();
  }
  const int fd = *connected;
  auto close_fd = [&] {
    std::lock_guard<std::mutex> l(mu_);
    ::close(fd_);
    fd_ = -1;
  };
  auto aborted = [&] {
    std::lock_guard<std::mutex> l(mu_);
    return aborted_;
  };
  std::string req = fmt::format("{} {}{} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nAccept: {}\r\n", method,
                                url.prefix, path, url.host, url.port, on_event ? "text/event-stream" : "application/json");
  if (!api_key.empty()) req += "Authorization: Bearer " + api_key + "\r\n";
  if (!body.empty()) req += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", body.size());
  req += "\r\n";
  req += body;
  if (Status s = SendAll(fd, req, timeout_ms); !s.ok()) {
    close_fd();
    return aborted() ? Cancelled("aborted") : s;
  }
  FdStream stream(fd, timeout_ms);
  boost::beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  error_code ec;
  auto fail = [&](std::string_view what) -> Status {
    close_fd();
    if (aborted()) return Cancelled("aborted");
    if (ec == boost::asio::error::timed_out) {
      return DeadlineExceeded(fmt::format("{}: no data for {:.0f} s", what, timeout_s));
    }
    return Unavailable(fmt::format("{}: {}", what, ec.message()));
  };
  http::read_header(stream, buf, parser, ec);
  if (ec) return fail("reading the response");
  HttpReply reply;
  reply.status = parser.get().result_int();
  const bool events = on_event && reply.status == 200;
  std::string pending;  // an event stream's incomplete line
  char chunk[16384];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    http::read_some(stream, buf, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return fail(events ? "the event stream broke" : "reading the body");
    const size_t n = sizeof(chunk) - parser.get().body().size;
    if (!events) {
      reply.body.append(chunk, n);
      continue;
    }
    pending.append(chunk, n);
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(pending.data() + start, nl - start);
      if (line.ends_with('\r')) line.remove_suffix(1);
      if (!line.starts_with("data:")) continue;
      line.remove_prefix(5);
      if (line.starts_with(' ')) line.remove_prefix(1);
      if (line == "[DONE]") {
        reply.stream_done = true;
        continue;
      }
      on_event(line);
    }
    pending.erase(0, start);
  }
  close_fd();
  if (aborted()) return Cancelled("aborted");  // a body read to EOF may have been cut by Abort
  return reply;
}

}  // namespace crescent::cli
