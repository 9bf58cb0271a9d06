// InProcessKvConnector: a KvConnector whose "outside" is a map in this process —
// several engines in one process sharing it behave like instances sharing the
// KVCache pool (and SendKv like a prefill instance handing KV to a decode one).
// It is what tests use; the KV store and the transfer engine plug in behind the
// same interface later.
//
// A stored chunk is chunk_tokens() tokens of K/V for all layers, laid out
// layer-major as DESIGN.md's store objects: layer 0 K, layer 0 V, layer 1 K, ...
// (each side is the chunk's pages back to back).
// Thread-safe (one mutex): engines on different threads may share one.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/kv_connector.h"

namespace crescent::engine {

class InProcessKvConnector final : public KvConnector {
 public:
  // REQUIRES: chunk_tokens a multiple of the engines' page_tokens.
  InProcessKvConnector(int64_t chunk_tokens, int64_t page_tokens);

  int64_t chunk_tokens() const override { return chunk_tokens_; }
  int64_t ExternalPrefixTokens(std::span<const int32_t> tokens, std::span<const Hash128> chunk_keys,
                               int64_t local_hit_tokens) override;
  Status LoadPrefix(std::span<const KvChunkRef> chunks, KvPageAccess& pages) override;
  void SaveChunk(const KvChunkRef& chunk, KvPageAccess& pages) override;
  Status SendKv(const std::string& peer, std::span<const KvChunkRef> chunks, KvPageAccess& pages) override;

  int64_t num_chunks() const;
  int64_t loads() const;  // chunks handed out by LoadPrefix

 private:
  const int64_t chunk_tokens_, page_tokens_;
  mutable std::mutex mu_;
  std::unordered_map<Hash128, std::vector<std::byte>, Hash128Hasher> chunks_;
  int64_t loads_ = 0;
};

}  // namespace crescent::engine
