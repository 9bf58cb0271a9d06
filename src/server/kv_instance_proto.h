// Conversions between the engine's request types and proto/instance.proto's,
// shared by the instance service and the front's client (one mapping).
#pragma once

#include "engine/request.h"
#include "proto/instance.pb.h"

namespace crescent::server {

proto::GenParams ToProto(const engine::RequestParams& p);
engine::RequestParams FromProto(const proto::GenParams& p);
proto::Sample ToProto(const engine::SampledToken& s);
engine::SampledToken FromProto(const proto::Sample& s);
engine::FinishReason FinishReasonFromName(const std::string& name);

}  // namespace crescent::server
