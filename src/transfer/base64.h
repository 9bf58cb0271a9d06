// Standard base64 (RFC 4648, with padding), as the etcd JSON gateway wants
// for keys and values. Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace crescent::transfer {

std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);

}  // namespace crescent::transfer
