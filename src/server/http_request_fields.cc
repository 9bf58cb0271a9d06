#include "server/http_request_fields.h"

#include <string_view>
#include <utility>

namespace crescent::server {

namespace http = boost::beast::http;

HttpRequestFields TakeRequestFields(http::request<http::string_body>& msg) {
  HttpRequestFields f;
  HttpRequest& req = f.request;
  req.method = std::string(msg.method_string());
  std::string_view target(msg.target().data(), msg.target().size());
  req.path = std::string(target.substr(0, target.find('?')));
  auto field = [&msg](http::field name) {
    auto it = msg.find(name);
    return it == msg.end() ? std::string() : std::string(it->value());
  };
  req.authorization = field(http::field::authorization);
  req.content_type = field(http::field::content_type);
  f.origin = field(http::field::origin);
  f.preflight_method = field(http::field::access_control_request_method);
  f.preflight_headers = field(http::field::access_control_request_headers);
  req.body = std::move(msg.body());
  f.keep_alive = msg.keep_alive();
  return f;
}

}  // namespace crescent::server
