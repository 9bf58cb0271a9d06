#include "store/grpc_status.h"

namespace crescent::store {

grpc::Status ToGrpc(const Status& s) {
  using G = grpc::StatusCode;
  G code = G::UNKNOWN;
  switch (s.code()) {
    case StatusCode::kOk: return grpc::Status::OK;
    case StatusCode::kInvalidArgument: code = G::INVALID_ARGUMENT; break;
    case StatusCode::kNotFound: code = G::NOT_FOUND; break;
    case StatusCode::kOutOfRange: code = G::OUT_OF_RANGE; break;
    case StatusCode::kResourceExhausted: code = G::RESOURCE_EXHAUSTED; break;
    case StatusCode::kUnavailable: code = G::UNAVAILABLE; break;
    case StatusCode::kDeadlineExceeded: code = G::DEADLINE_EXCEEDED; break;
    case StatusCode::kCancelled: code = G::CANCELLED; break;
    case StatusCode::kFailedPrecondition: code = G::FAILED_PRECONDITION; break;
    case StatusCode::kDataLoss: code = G::DATA_LOSS; break;
    case StatusCode::kUnimplemented: code = G::UNIMPLEMENTED; break;
    case StatusCode::kInternal: code = G::INTERNAL; break;
  }
  return grpc::Status(code, s.message());
}

Status FromGrpc(const grpc::Status& s, std::string_view what) {
  using G = grpc::StatusCode;
  StatusCode code = StatusCode::kInternal;
  switch (s.error_code()) {
    case G::OK: return Status::Ok();
    case G::INVALID_ARGUMENT: code = StatusCode::kInvalidArgument; break;
    case G::NOT_FOUND: code = StatusCode::kNotFound; break;
    case G::OUT_OF_RANGE: code = StatusCode::kOutOfRange; break;
    case G::RESOURCE_EXHAUSTED: code = StatusCode::kResourceExhausted; break;
    case G::UNAVAILABLE: code = StatusCode::kUnavailable; break;
    case G::DEADLINE_EXCEEDED: code = StatusCode::kDeadlineExceeded; break;
    case G::CANCELLED: code = StatusCode::kCancelled; break;
    case G::FAILED_PRECONDITION: code = StatusCode::kFailedPrecondition; break;
    case G::DATA_LOSS: code = StatusCode::kDataLoss; break;
    case G::UNIMPLEMENTED: code = StatusCode::kUnimplemented; break;
    default: break;
  }
  return Status(code, std::string(what) + ": " + s.error_message());
}

}  // namespace crescent::store
