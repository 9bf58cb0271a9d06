// WeightsContentHash: XXH3-128 over every tensor of a model (name, dtype,
// shape, bytes, in name order), so two checkpoints share it only when their
// weights are the same, however they are sharded. Computed once and cached
// beside the model in `.crescent-weights-hash`, keyed by the weight files'
// names, sizes and modification times (a folder that cannot be written is
// hashed at every load).
#pragma once

#include <string>

#include "base/hash.h"
#include "base/status.h"
#include "model/safetensors.h"

namespace crescent::model {

Result<Hash128> WeightsContentHash(const std::string& dir, const WeightFiles& files);

}  // namespace crescent::model
