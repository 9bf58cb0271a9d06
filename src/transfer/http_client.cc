#include "transfer/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <charconv>
#include <chrono>

namespace crescent::transfer {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

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

Result<std::string> HttpPost(const HttpEndpoint& endpoint, std::string_view target, std::string_view body,
                             int64_t timeout_ms) {
  std::string where = "http://" + endpoint.host + ":" + std::to_string(endpoint.port) + std::string(target);
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::milliseconds(timeout_ms));
    auto results = resolver.resolve(endpoint.host, std::to_string(endpoint.port));
    stream.connect(results);
    http::request<http::string_body> req{http::verb::post, std::string(target), 11};
    req.set(http::field::host, endpoint.host);
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    beast::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);  // best effort
    if (res.result() != http::status::ok) {
      return Internal(where + ": HTTP " + std::to_string(res.result_int()) + ": " + res.body());
    }
    return std::move(res.body());
  } catch (const boost::system::system_error& e) {
    return Unavailable(where + ": " + e.code().message());
  } catch (const std::exception& e) {
    return Unavailable(where + ": " + e.what());
  }
}

}  // namespace crescent::transfer
