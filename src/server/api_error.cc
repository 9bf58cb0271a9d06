#include "server/api_error.h"

#include <boost/json.hpp>

namespace crescent::server {

namespace json = boost::json;

ApiError ApiError::ForStatus(int status, std::string message, std::string param) {
  ApiError e;
  e.status = status;
  e.message = std::move(message);
  e.param = std::move(param);
  switch (status) {
    case 400: e.type = "invalid_request_error"; break;
    case 401: e.type = "authentication_error"; e.code = "invalid_api_key"; break;
    case 404: e.type = "not_found_error"; break;
    case 405: e.type = "invalid_request_error"; e.code = "method_not_allowed"; break;
    case 408: e.type = "invalid_request_error"; e.code = "request_timeout"; break;
    case 413: e.type = "invalid_request_error"; e.code = "request_too_large"; break;
    case 415: e.type = "invalid_request_error"; e.code = "unsupported_media_type"; break;
    case 429: e.type = "rate_limit_error"; e.code = "rate_limit_exceeded"; break;
    case 431: e.type = "invalid_request_error"; e.code = "headers_too_large"; break;
    case 503: e.type = "service_unavailable_error"; e.code = "service_unavailable"; break;
    default: e.type = status >= 500 ? "server_error" : "invalid_request_error"; break;
  }
  return e;
}

ApiError ApiError::FromStatus(const Status& s, std::string param) {
  int status = 500;
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kUnimplemented:
    case StatusCode::kFailedPrecondition: status = 400; break;
    case StatusCode::kNotFound: status = 404; break;
    case StatusCode::kResourceExhausted: status = 429; break;
    case StatusCode::kUnavailable:
    case StatusCode::kCancelled: status = 503; break;
    case StatusCode::kDeadlineExceeded: status = 408; break;
    default: status = 500; break;
  }
  return ForStatus(status, s.message(), std::move(param));
}

ApiError ApiError::ModelNotFound(const std::string& model) {
  ApiError e = ForStatus(404, "The model '" + model + "' does not exist", "model");
  e.code = "model_not_found";
  return e;
}

std::string ApiError::ToJson() const {
  json::object err;
  err["message"] = message;
  err["type"] = type;
  err["param"] = param.empty() ? json::value(nullptr) : json::value(param);
  err["code"] = code.empty() ? json::value(nullptr) : json::value(code);
  json::object out;
  out["error"] = std::move(err);
  return json::serialize(out);
}

}  // namespace crescent::server
