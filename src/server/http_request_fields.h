// The fields crescent takes from one parsed HTTP request (Beast's message):
// the HttpRequest the API layer sees, plus what the connection itself uses
// (CORS origin and preflight headers, keep-alive). A pure function, so the
// fuzzer (fuzz/fuzz_http_request.cc) runs the same code the server does.
// Values echoed into responses (the origin, the requested headers) come from
// Beast's parser, which refuses CR and LF inside a field value: they cannot
// split a response header (fuzzed).
// Thread-safety: a function of its argument.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>

#include "server/http_types.h"

namespace crescent::server {

struct HttpRequestFields {
  HttpRequest request;
  std::string origin;              // Origin, "" if none
  std::string preflight_method;    // Access-Control-Request-Method
  std::string preflight_headers;   // Access-Control-Request-Headers
  bool keep_alive = true;
};

// Moves the body out of `msg`.
HttpRequestFields TakeRequestFields(boost::beast::http::request<boost::beast::http::string_body>& msg);

}  // namespace crescent::server
