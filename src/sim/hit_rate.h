// Figure 9 of the Mooncake paper: the prefix cache hit rate of a trace replayed
// in request order through one LRU cache of a given capacity, and the
// theoretical maximum (infinite capacity). A hit is a leading run of blocks
// already cached, min(blocks * block_tokens, input) tokens of the request.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>

#include "sim/trace.h"

namespace crescent::sim {

// Reused tokens / input tokens. capacity_tokens < 0 means unbounded.
double LruHitRate(const Trace& trace, int64_t capacity_tokens, int64_t block_tokens = 512);
double MaxHitRate(const Trace& trace, int64_t block_tokens = 512);

}  // namespace crescent::sim
