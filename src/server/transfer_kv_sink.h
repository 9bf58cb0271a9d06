// TransferKvSink: a prefill instance's KvLayerSink over the transfer engine
// (docs/disaggregation.md): as each layer of each prefill chunk is written,
// its pages go as WRITEs into the pages a decode instance reserved for the
// request (its KV pool, registered there as one segment), while the next
// layers compute. Only tokens [held_tokens, written_tokens) of the
// reservation are sent (the decode instance holds the rest).
//
//   OnLayer     submits the layer's K and V pages that are now complete
//               (each page once: two writes of one page could land out of
//               order), one batch per call; never waits
//   OnFinished  (ok) the last, partial page of every layer; then
//               the commit's checksums over the final source pages
//   Wait        blocks until every write ended (each within the transfer
//               engine's timeout, whatever the peer does); OK when all were
//               done: only then may the commit be sent
//   Idle        no write still holds the source pages (UCX released them):
//               the engine unpins them then
//
// Fault injection: CRESCENT_FAULT_KV_WRITE_DELAY_MS=N delays each batch by a
// random 0..N ms between its lease check and its submission (tests only).
// REQUIRES: the engine's KV pool is registered with `transfer` (as a buffer
// or a segment) for the local side of the writes; the target's geometry is
// this pool's shape with the target's page count (the fingerprints agree).
// Thread-safety: OnLayer/OnFinished on the engine's step thread; Wait, Idle
// and the accessors from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <limits>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/kv_connector.h"
#include "engine/kv_reservations.h"
#include "transfer/transfer_engine.h"
#include "base/thread_annotations.h"

namespace crescent::server {

struct KvTarget {
  transfer::SegmentId segment = 0;  // the decode instance's KV pool
  int64_t num_pages = 0;            // its pool's page count (for offsets)
  engine::KvReservation reservation;
};

class TransferKvSink final : public engine::KvLayerSink {
 public:
  TransferKvSink(transfer::TransferEngine* transfer, const engine::KvCacheShape& shape, KvTarget target,
                 int64_t pages_per_checksum);
  ~TransferKvSink() override;  // waits for UCX to release every write

  void OnLayer(int64_t layer, int64_t first_token, int64_t count, std::span<const int32_t> pages,
               engine::KvPageAccess& kv) override;
  void OnFinished(bool ok, std::span<const int32_t> pages, engine::KvPageAccess& kv) override;
  bool Idle() const override;

  Status Wait() const;
  // No write is submitted once MonotonicClock passes `ns` (the prefill
  // instance's view of the reservation's lease: after it, the decode
  // instance may hand the pages on); 0 fences at once. Default: no limit.
  void SetIssueBy(int64_t ns) { issue_by_ns_.store(ns); }
  // Valid after OnFinished: the sums a commit carries; false if the request
  // ended without its first token.
  std::vector<uint64_t> checksums() const;
  bool finished_ok() const;
  int64_t bytes_submitted() const;

 private:
  // Submits layer `layer`'s pages [sent, end_page) (those beyond held).
  void Send(int64_t layer, int64_t end_page, std::span<const int32_t> pages, engine::KvPageAccess& kv);

  transfer::TransferEngine* transfer_;
  const engine::KvCacheShape shape_;
  const KvTarget target_;
  const int64_t pages_per_checksum_;

  std::atomic<int64_t> issue_by_ns_{std::numeric_limits<int64_t>::max()};
  std::vector<int64_t> sent_pages_;  // step thread: per layer, the pages [0, n) sent (or held)
  mutable Mutex mu_;
  std::deque<transfer::TransferBatch> batches_ GUARDED_BY(mu_);  // never shrinks while the sink lives
  Status submit_error_ GUARDED_BY(mu_);
  std::vector<uint64_t> sums_ GUARDED_BY(mu_);
  bool finished_ok_ GUARDED_BY(mu_) = false;
  int64_t bytes_ GUARDED_BY(mu_) = 0;
};

}  // namespace crescent::server
