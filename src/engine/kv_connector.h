// KvConnector: the seam between the engine and KV that lives outside it — the
// shared KVCache store, or another instance in a prefill/decode split (DESIGN.md,
// "Engine step"). It is asynchronous (as vLLM v1's connector): the scheduler
// plans on the step thread, the connector moves bytes on its own threads, and
// the scheduler collects what ended at the next step boundary, so a slow load
// or save never stalls the sequences that are decoding:
//
//   admitting a waiting sequence:  n = ExternalPrefixTokens(tokens, keys, local_hit)
//     (whole chunks beyond the local prefix-cache hit that exist outside;
//      a lookup, never a transfer)
//   pages reserved for them:       StartLoad(id, chunks, pages)   returns at once;
//     the sequence waits in its own state while the others run
//   a full chunk computed:         StartSave(id, chunk, pages)    returns at once;
//     the chunk's pages stay pinned (referenced) until the save has ended
//   every step:                    PollCompletions()  -> the loads and saves that
//     ended since the last call, each ok or failed with a reason
//
// Ownership of pages: from StartLoad (StartSave) until its completion has been
// returned by PollCompletions, the connector's threads write (read) the listed
// pages through `pages`; the scheduler neither frees, reuses nor computes into
// them meanwhile. Every started load and save must complete (ok, failed or
// timed out) in bounded time: the engine waits for them before its KV pool
// goes away. A failed load is recomputed; a failed save is counted and dropped.
//
// Pages are addressed through a KvPageAccess: (layer, page) -> K and V bytes in
// the layout of DESIGN.md, so an implementation copies bytes, never tokens.
// Thread-safety: the methods are called from the engine's step thread only;
// KvPageAccess::K/V may be called from any thread (they compute addresses).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/hash.h"
#include "base/status.h"

namespace crescent::engine {

// Raw access to one page's K and V of one layer.
class KvPageAccess {
 public:
  virtual ~KvPageAccess() = default;
  virtual int64_t num_layers() const = 0;
  virtual int64_t page_bytes_per_layer() const = 0;  // bytes of K (= bytes of V) of one page, one layer
  virtual std::span<std::byte> K(int64_t layer, int32_t page) = 0;
  virtual std::span<std::byte> V(int64_t layer, int32_t page) = 0;
};

// A chunk of `chunk_tokens()` tokens; `pages` hold its tokens from first_token on
// (a chunk may start before first_token when its head is already cached locally;
// those pages are not listed and must not be written).
struct KvChunkRef {
  Hash128 key;                 // names the whole prefix up to the chunk's end
  Hash128 parent;              // the previous chunk's key (zero for the first chunk)
  int64_t chunk_start = 0;     // position of the chunk's first token
  int64_t first_token = 0;     // first token covered by `pages` (page aligned)
  std::vector<int32_t> pages;  // pages for [first_token, chunk end), token order
};

enum class KvOp { kLoad, kSave };

struct KvCompletion {
  KvOp op = KvOp::kLoad;
  uint64_t id = 0;  // as given to StartLoad / StartSave
  Status status;
};

// The prefill side of a prefill/decode split (DESIGN.md "The KV path of one
// request"): a request submitted with a sink reports its K/V as they become
// final, layer by layer, so the sink can push them to a decode instance while
// the following layers compute.
//   OnLayer     step thread: layer `layer` of tokens [first, first + count)
//               is final in `pages` (the sequence's block table, page i
//               holding tokens [i * page_tokens, ...)); tokens the prefix
//               cache supplied are reported before the first computed ones.
//               Quick: start the writes, do not wait for them.
//   OnFinished  step thread, once, when the request ends (its pages final):
//               e.g. the checksums a commit carries; `ok` false when it ended
//               without its first token (cancelled, failed).
//   Idle        any thread: no write the sink started still reads the pages.
// The engine keeps the request's pages pinned after it ends until Idle() is
// true (polled every step; at shutdown it waits), so no page is reused while
// a write may still read it. Every write must end in bounded time.
class KvLayerSink {
 public:
  virtual ~KvLayerSink() = default;
  virtual void OnLayer(int64_t layer, int64_t first_token, int64_t count, std::span<const int32_t> pages,
                       KvPageAccess& kv) = 0;
  virtual void OnFinished(bool ok, std::span<const int32_t> pages, KvPageAccess& kv) = 0;
  virtual bool Idle() const = 0;
};

class KvConnector {
 public:
  virtual ~KvConnector() = default;
  // Chunk size in tokens: a multiple of the engine's page_tokens.
  virtual int64_t chunk_tokens() const = 0;
  // How many tokens of `tokens`, counted from 0 and ending on a chunk boundary,
  // exist outside (>= local_hit_tokens, or 0 for none). `chunk_keys[i]` names the
  // prefix ending with chunk i (one key per whole chunk of `tokens`).
  virtual int64_t ExternalPrefixTokens(std::span<const int32_t> tokens, std::span<const Hash128> chunk_keys,
                                       int64_t local_hit_tokens) = 0;
  // Starts writing K/V of `chunks` into their pages; `id` names the load in
  // its completion. Returns at once.
  virtual void StartLoad(uint64_t id, std::vector<KvChunkRef> chunks, KvPageAccess& pages) = 0;
  // Starts offering a computed chunk (the store may keep a copy); `chunk.pages`
  // cover the whole chunk. Returns at once.
  virtual void StartSave(uint64_t id, KvChunkRef chunk, KvPageAccess& pages) = 0;
  // The loads and saves that ended since the last call.
  virtual std::vector<KvCompletion> PollCompletions() = 0;
};

}  // namespace crescent::engine
