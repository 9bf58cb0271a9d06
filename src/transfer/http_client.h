// A minimal blocking HTTP/1.1 client (Boost.Beast) for the etcd v3 JSON
// gateway: one POST per connection, a deadline on the whole exchange.
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
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

// POSTs `body` (JSON) to http://host:port<target>. Returns the response body
// when the status is 200; Unavailable when the server cannot be reached or
// the deadline passes; Internal with the status and body otherwise.
Result<std::string> HttpPost(const HttpEndpoint& endpoint, std::string_view target, std::string_view body,
                             int64_t timeout_ms);

}  // namespace crescent::transfer
