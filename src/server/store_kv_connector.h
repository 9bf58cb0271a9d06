// StoreKvConnector: the engine's KvConnector over the KV store (src/store/),
// so the store is the engine's second and third tier (DRAM, SSD) and, with a
// shared master, the pool several instances share.
//
// A chunk is one store object of chunk_tokens() tokens of every layer, laid
// out layer-major as DESIGN.md says (layer 0 K pages, layer 0 V pages, layer
// 1 K, ...), named by the engine's chunk key (the key of its last page: the
// whole prefix and the model), with the previous chunk as its parent.
//   ExternalPrefixTokens  one BatchExists over the prompt's chunk keys (the
//                         store master: in-process for the all-in-one server)
//   StartLoad             on the workers (a long prefix split in contiguous
//                         runs, one per worker; the last to end completes
//                         the load with the first failure): BatchGet of the chunks straight into
//                         the pages (a scatter list: one copy from a local
//                         DRAM or SSD copy, checksums verified by the client
//                         in the same pass); a missing or bad chunk fails the
//                         load (the engine recomputes)
//   StartSave             on a worker: a gather of the pages into staging,
//                         then a Put (a key already stored moves no bytes)
// Loads run before saves when both wait. Every job ends within the store
// client's own bounds (its master and transfer timeouts), so the engine never
// waits forever for a completion.
// Thread-safety: KvConnector's methods from the engine's step thread; the
// store client is shared and thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "engine/kv_connector.h"
#include "store/client.h"
#include "base/thread_annotations.h"

namespace crescent::server {

struct StoreKvConnectorOptions {
  int64_t chunk_tokens = 256;
  int64_t page_tokens = 16;
  int64_t num_layers = 0;
  int64_t page_bytes_per_layer = 0;  // K (= V) bytes of one page of one layer
  int64_t chunks_per_get = 8;        // a load's BatchGet size
  int workers = 2;
  // After a call to the store fails as unreachable, lookups and saves are
  // skipped (compute instead; saves counted as failed) for this long, so a
  // dead or silent master costs each request nothing more.
  int64_t retry_after_ms = 5000;
  // Saves waiting beyond this fail at once (their pages are pinned while they wait).
  int64_t max_queued_saves = 64;
  // Called with each successful load's seconds (a metrics histogram), from
  // any worker, concurrently: it must be thread-safe.
  std::function<void(double)> observe_load_seconds;
};

struct StoreKvCounters {
  std::atomic<int64_t> lookups{0}, lookup_failures{0};
  std::atomic<int64_t> chunks_loaded{0}, bytes_loaded{0}, load_failures{0};
  std::atomic<int64_t> chunks_saved{0}, bytes_saved{0}, save_failures{0};
  std::atomic<int64_t> load_us_total{0};
  // Prompt tokens of successful loads, by where the store read them (store::ReadFrom).
  std::array<std::atomic<int64_t>, 5> tokens_from{};
  static_assert(static_cast<size_t>(store::ReadFrom::kRemoteSsd) == 4, "tokens_from has one slot per ReadFrom");
};

class StoreKvConnector final : public engine::KvConnector {
 public:
  // `client` must outlive the connector.
  static Result<std::unique_ptr<StoreKvConnector>> Create(StoreKvConnectorOptions options, store::Client* client);
  ~StoreKvConnector() override;  // finishes queued jobs first

  int64_t chunk_tokens() const override { return options_.chunk_tokens; }
  int64_t ExternalPrefixTokens(std::span<const int32_t> tokens, std::span<const Hash128> chunk_keys,
                               int64_t local_hit_tokens) override;
  void StartLoad(uint64_t id, std::vector<engine::KvChunkRef> chunks, engine::KvPageAccess& pages) override;
  void StartSave(uint64_t id, engine::KvChunkRef chunk, engine::KvPageAccess& pages) override;
  std::vector<engine::KvCompletion> PollCompletions() override;

  uint64_t chunk_bytes() const { return chunk_bytes_; }
  const StoreKvCounters& counters() const { return counters_; }

 private:
  StoreKvConnector(StoreKvConnectorOptions options, store::Client* client);
  // What a load (all its parts) brought, added to the counters only when it
  // succeeded as a whole.
  struct LoadTally {
    int64_t chunks = 0, bytes = 0;
    std::array<int64_t, 5> tokens_from{};
  };
  Status Load(std::span<const engine::KvChunkRef> chunks, engine::KvPageAccess& pages, LoadTally& tally);
  Status Save(const engine::KvChunkRef& chunk, engine::KvPageAccess& pages, std::byte* staging);
  void Run(bool takes_saves);
  bool StoreAway() const;        // within retry_after_ms of an unreachable store
  void NoteFailure(const Status& s);

  const StoreKvConnectorOptions options_;
  store::Client* client_;
  uint64_t chunk_bytes_ = 0;
  std::byte* staging_ = nullptr;  // one chunk, for the saves (worker 0), registered with the client
  StoreKvCounters counters_;
  std::atomic<int64_t> away_until_ns_{0};

  Mutex mu_;
  CondVar cv_;
  // A job returns its completion, or nothing (one part of a split load).
  std::deque<std::function<std::optional<engine::KvCompletion>()>> loads_, saves_ GUARDED_BY(mu_);
  std::vector<engine::KvCompletion> done_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace crescent::server
