// InProcessKvConnector: a KvConnector whose "outside" is an InProcessKvChunks
// map in this process: several engines, each with its own connector over one
// shared map, behave like instances sharing the KVCache pool. It is what the
// engine's tests use; the KV store plugs in behind the same interface.
//
// A stored chunk is chunk_tokens() tokens of K/V for all layers, laid out
// layer-major as DESIGN.md's store objects: layer 0 K, layer 0 V, layer 1 K, ...
// (each side is the chunk's pages back to back).
// Loads and saves run on the connector's own thread, in order; completions
// wait for PollCompletions. The destructor finishes the queued work.
// Thread-safety: KvConnector's methods from one (step) thread; the map is
// shared under its own mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/kv_connector.h"
#include "base/thread_annotations.h"

namespace crescent::engine {

class InProcessKvChunks {
 public:
  int64_t num_chunks() const;
  int64_t loads() const;  // chunks handed out by loads

 private:
  friend class InProcessKvConnector;
  mutable Mutex mu_;
  // Immutable once stored: copies run outside the lock.
  std::unordered_map<Hash128, std::shared_ptr<const std::vector<std::byte>>, Hash128Hasher> chunks_ GUARDED_BY(mu_);
  int64_t loads_ GUARDED_BY(mu_) = 0;
};

class InProcessKvConnector final : public KvConnector {
 public:
  // REQUIRES: chunk_tokens a multiple of the engines' page_tokens.
  InProcessKvConnector(std::shared_ptr<InProcessKvChunks> chunks, int64_t chunk_tokens, int64_t page_tokens);
  ~InProcessKvConnector() override;

  int64_t chunk_tokens() const override { return chunk_tokens_; }
  int64_t ExternalPrefixTokens(std::span<const int32_t> tokens, std::span<const Hash128> chunk_keys,
                               int64_t local_hit_tokens) override;
  void StartLoad(uint64_t id, std::vector<KvChunkRef> chunks, KvPageAccess& pages) override;
  void StartSave(uint64_t id, KvChunkRef chunk, KvPageAccess& pages) override;
  std::vector<KvCompletion> PollCompletions() override;

  InProcessKvChunks& chunks() { return *chunks_; }

 private:
  Status Load(const std::vector<KvChunkRef>& chunks, KvPageAccess& pages);
  Status Save(const KvChunkRef& chunk, KvPageAccess& pages);
  void Post(std::function<KvCompletion()> job);
  void Run();

  const std::shared_ptr<InProcessKvChunks> chunks_;
  const int64_t chunk_tokens_, page_tokens_;
  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<KvCompletion()>> jobs_ GUARDED_BY(mu_);
  std::vector<KvCompletion> done_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace crescent::engine
