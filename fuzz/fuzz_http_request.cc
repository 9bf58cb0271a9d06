// Bytes from a client (the input): parsed as the server does (Beast's request
// parser with crescent's header and body limits, the bytes arriving in two
// pieces split where the first byte says), pipelined requests one after
// another, each turned into crescent's fields (TakeRequestFields). Never a
// crash; a parse error or a limit ends the connection as the server does; a
// value the server echoes into a response header never holds CR or LF.
#include <boost/beast/core/buffers_prefix.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "server/http_connection.h"
#include "server/http_request_fields.h"

namespace http = boost::beast::http;

namespace {

void NoLineBreak(const std::string& s) {
  if (s.find_first_of("\r\n") != std::string::npos) std::abort();  // would split a response header
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const crescent::server::HttpOptions limits;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t split = bytes.empty() ? 0 : data[0] % (bytes.size() + 1);
  std::string pending;  // what has arrived and is not consumed yet
  size_t fed = 0;
  for (int request = 0; request < 16; ++request) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(limits.max_body_bytes);
    parser.header_limit(static_cast<uint32_t>(limits.max_header_bytes));
    parser.eager(true);
    bool failed = false;
    while (!parser.is_done()) {
      boost::beast::error_code ec;
      const size_t used = pending.empty() ? 0 : parser.put(boost::asio::buffer(pending), ec);
      pending.erase(0, used);
      if (ec == http::error::need_more || (!ec && used == 0)) {
        if (fed == bytes.size()) {  // the client stopped sending
          if (fed > 0) {
            boost::beast::error_code eof;
            parser.put_eof(eof);
            if (!eof && parser.is_done()) break;
          }
          failed = true;
          break;
        }
        const size_t until = fed < split ? split : bytes.size();
        pending.append(bytes.substr(fed, until - fed));
        fed = until;
        continue;
      }
      if (ec) {  // 400, 413 or 431 and the connection closes
        failed = true;
        break;
      }
    }
    if (failed || !parser.is_done()) return 0;
    crescent::server::HttpRequestFields f = crescent::server::TakeRequestFields(parser.get());
    NoLineBreak(f.origin);
    NoLineBreak(f.preflight_headers);
    if (!f.keep_alive) return 0;
  }
  return 0;
}
