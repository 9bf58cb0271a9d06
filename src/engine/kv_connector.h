// KvConnector: the seam between the engine and KV that lives outside it — the
// shared KVCache store, or another instance in a prefill/decode split (DESIGN.md,
// "Engine step"). The scheduler calls it at fixed points and never knows which
// implementation is behind it:
//
//   before scheduling a waiting request:  n = ExternalPrefixTokens(prompt, local_hit)
//     (tokens beyond the local prefix-cache hit that exist outside, in whole chunks)
//   after allocating pages for them:      LoadPrefix(..., pages)  -> K/V written in place
//   when a full chunk of a sequence is computed:  SaveChunk(...)
//   when a prefill finishes on a prefill instance: SendKv(...) to its decode peer
//
// Pages are addressed through a KvPageAccess: (layer, page) -> K and V bytes in
// the layout of DESIGN.md, so an implementation copies bytes, never tokens.
// Thread-safety: called only from the engine's step thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>

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
  Hash128 key;                     // names the whole prefix up to the chunk's end
  int64_t chunk_start = 0;         // position of the chunk's first token
  int64_t first_token = 0;         // first token covered by `pages` (page aligned)
  std::span<const int32_t> pages;  // pages for [first_token, chunk end), token order
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
  // Writes K/V of `chunks` into their pages. On error the engine recomputes them.
  virtual Status LoadPrefix(std::span<const KvChunkRef> chunks, KvPageAccess& pages) = 0;
  // Offers a computed chunk (the store may keep a copy).
  virtual void SaveChunk(const KvChunkRef& chunk, KvPageAccess& pages) = 0;
  // Sends a finished prefill's KV to `peer` (prefill/decode split).
  virtual Status SendKv(const std::string& peer, std::span<const KvChunkRef> chunks, KvPageAccess& pages) = 0;
};

}  // namespace crescent::engine
