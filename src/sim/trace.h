// Mooncake request traces (Mooncake's released conversation_trace.jsonl and
// synthetic_trace.jsonl, or traces from `crescent make-trace`): one JSON object a line,
// {"timestamp": ms, "input_length": n, "output_length": m, "hash_ids": [...]},
// where hash_ids name 512-token prefix blocks (equal ids = same prefix).
//
// A Trace owns its requests and one flat array of block keys; a request's keys
// are a span into it. Parse errors name the file and line. Requests are kept in
// timestamp order (a stable sort; the released traces are already sorted).
// Values; thread-compatible.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "conductor/cluster_view.h"

namespace crescent::sim {

using conductor::BlockKey;

struct TraceRequest {
  int64_t timestamp_ms = 0;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  uint32_t keys_begin = 0;  // into Trace::keys
  uint32_t keys_count = 0;
};

struct Trace {
  std::vector<TraceRequest> requests;
  std::vector<BlockKey> keys;

  std::span<const BlockKey> Keys(const TraceRequest& r) const { return {keys.data() + r.keys_begin, r.keys_count}; }
  // The first `n` requests (all when n == 0 or n >= size).
  Trace Prefix(size_t n) const;
};

// `name` prefixes error messages ("<name>:<line>: ...").
Result<Trace> ParseTrace(std::string_view text, std::string_view name);
Result<Trace> LoadTrace(const std::string& path);
// The trace as JSON lines in the same format (ParseTrace reads it back).
std::string FormatTrace(const Trace& trace);

}  // namespace crescent::sim
