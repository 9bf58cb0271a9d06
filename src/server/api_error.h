// ApiError: OpenAI's error object and its HTTP status.
//
//   {"error": {"message": "...", "type": "invalid_request_error",
//              "param": "max_tokens" | null, "code": "..." | null}}
//
//   400 invalid_request_error        401 authentication_error (invalid_api_key)
//   404 not_found_error (model_not_found / route)   405 invalid_request_error
//   413 invalid_request_error (request_too_large)   429 rate_limit_error
//   503 service_unavailable_error    500 server_error
//
// FromStatus maps crescent's Status vocabulary onto these (InvalidArgument and
// OutOfRange 400, NotFound 404, ResourceExhausted 429, Unavailable 503, ...).
// Values; thread-compatible.
#pragma once

#include <string>

#include "base/status.h"

namespace crescent::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type;
  std::string param;  // "" renders as null
  std::string code;   // "" renders as null

  // The conventional type and code for an HTTP status.
  static ApiError ForStatus(int status, std::string message, std::string param = "");
  static ApiError FromStatus(const Status& s, std::string param = "");
  static ApiError ModelNotFound(const std::string& model);

  std::string ToJson() const;
};

}  // namespace crescent::server
