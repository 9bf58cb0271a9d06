// Sequence: one request's state inside the engine, as the scheduler sees it.
// There is no "prefill phase" or "decode phase" (vLLM v1): a sequence has tokens
// (prompt, then generated ones) and num_computed of them have K/V in its pages;
// each step computes some of the rest, and when none are left it samples one more.
//
//   tokens:  [ prompt ............ | generated ... ]
//            [ computed (in pages) ) [ to compute )
//
// Owned by the Engine; the Scheduler holds pointers. Step thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "base/hash.h"
#include "engine/kv_cache.h"
#include "engine/kv_connector.h"

namespace crescent::engine {

struct Sequence {
  uint64_t id = 0;
  std::vector<int32_t> tokens;
  int64_t prompt_len = 0;
  int64_t max_tokens = 0;
  int64_t num_computed = 0;
  SequenceKv kv;
  // Keys of the full pages of `tokens`, in order (computed as pages fill).
  std::vector<Hash128> page_keys;
  // Prompt tokens served from the prefix cache or a connector at first admission.
  int64_t cached_prompt_tokens = 0;
  bool admitted_once = false;
  // Its prefix came from (or failed to come from) the KvConnector: its pages
  // hold kv.num_tokens tokens ready for admission; no second load.
  bool external_prefix_ready = false;
  bool external_tried = false;
  int64_t external_retry_free = -1;  // free pages when a load found no room
  int64_t max_external = -1;         // EngineRequest::max_external_prefix_tokens
  bool no_prefix_reuse = false;      // compute every token (prompt log-probs need each position's logits)
  int64_t num_preemptions = 0;
  KvLayerSink* kv_sink = nullptr;   // a prefill instance's request: its sink (owned by the engine's request)
  bool cached_prefix_sent = false;  // the sink was told of its cached prefix

  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t num_generated() const { return num_tokens() - prompt_len; }
};

}  // namespace crescent::engine
