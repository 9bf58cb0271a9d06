// Status <-> grpc::Status, one code for one code, message kept. Used by the
// store's gRPC servers and clients (and by the cluster's control plane).
// Pure functions; thread-safe.
#pragma once

#include <grpcpp/support/status.h>

#include "base/status.h"

namespace crescent::store {

grpc::Status ToGrpc(const Status& s);
Status FromGrpc(const grpc::Status& s, std::string_view what);

}  // namespace crescent::store
