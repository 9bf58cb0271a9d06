// TransferBatch: a caller's handle on a group of submitted entries, each with
// its own status (pending, done, failed with a reason) and latency.
//
// Ownership: move-only. The entries' progress is shared with the engine's
// workers through BatchState. Two moments per entry:
//   * it ends (done, or failed with a reason): at the latest at its deadline,
//     engine timeout after submission, whatever the peer does; Wait() and
//     Poll() report this;
//   * UCX released it: no UCX request of the entry is alive, so nothing can
//     still read or write the caller's memory. A timed-out entry's requests
//     are cancelled by force-closing their endpoint, which returns them at
//     once; at the latest, the engine's destruction releases everything.
// The destructor (and move assignment) waits for the second, so freeing the
// memory after the batch is gone is always safe, even after a timeout.
// Thread-safety: status(), Wait() and Poll() may be called from any thread;
// Submit (on the engine) for one batch from one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/thread_annotations.h"
#include "transfer/transfer_types.h"

namespace crescent::transfer {

// Shared between a TransferBatch and the workers running its entries.
// Lock order: BatchState::mutex_ is a leaf (taken after any worker or engine lock).
class BatchState {
 public:
  explicit BatchState(size_t capacity) : capacity_(capacity), entries_(capacity) {}

  size_t capacity() const { return capacity_; }
  size_t size() const;

  // Appends `n` pending entries, each split into `parts[i]` work items; returns
  // the first index. REQUIRES: size() + n <= capacity(), every parts[i] >= 1.
  size_t Append(const std::vector<int>& parts, int64_t submit_ns);
  // One work item of entry `index` ended with `s` (OK or the reason).
  void FinishPart(size_t index, const Status& s, int64_t now_ns);
  // UCX holds no request of that work item any more. REQUIRES: once per item,
  // at or after its FinishPart.
  void ReleasePart(size_t index);

  EntryStatus status(size_t index) const;
  int64_t latency_ns(size_t index) const;  // -1 while pending
  int64_t done_ns(size_t index) const;     // MonotonicClock time it ended; -1 while pending
  bool AllFinished() const;
  void WaitAll() const;
  bool AllReleased() const;
  void WaitReleased() const;

 private:
  struct Entry {
    int parts_left = 0;
    int parts_held = 0;  // not yet released by UCX
    EntryState state = EntryState::kPending;
    Status error;
    int64_t submit_ns = 0;
    int64_t done_ns = -1;
  };
  const size_t capacity_;
  mutable Mutex mutex_;
  mutable CondVar cv_;
  std::vector<Entry> entries_ GUARDED_BY(mutex_);  // [capacity]
  size_t size_ GUARDED_BY(mutex_) = 0;
  size_t pending_ GUARDED_BY(mutex_) = 0;  // entries not ended
  size_t held_ GUARDED_BY(mutex_) = 0;  // work items not released
};

class TransferBatch {
 public:
  TransferBatch() = default;
  explicit TransferBatch(size_t capacity) : state_(std::make_shared<BatchState>(capacity)) {}
  ~TransferBatch();
  TransferBatch(TransferBatch&&) noexcept = default;
  TransferBatch& operator=(TransferBatch&& o) noexcept;
  TransferBatch(const TransferBatch&) = delete;
  TransferBatch& operator=(const TransferBatch&) = delete;

  size_t size() const { return state_ ? state_->size() : 0; }
  size_t capacity() const { return state_ ? state_->capacity() : 0; }
  // REQUIRES: index < size()
  EntryStatus status(size_t index) const { return state_->status(index); }
  int64_t latency_ns(size_t index) const { return state_->latency_ns(index); }
  int64_t done_ns(size_t index) const { return state_->done_ns(index); }
  // True when no entry is pending.
  bool Poll() const { return !state_ || state_->AllFinished(); }
  // True when UCX holds none of this batch's memory (what the destructor waits for).
  bool Released() const { return !state_ || state_->AllReleased(); }
  // Blocks until no entry is pending. OK when all are done; otherwise the
  // first failed entry's reason, prefixed "entry <i>", and the failure count.
  Status Wait() const;

  // For the engine.
  const std::shared_ptr<BatchState>& state() const { return state_; }

 private:
  std::shared_ptr<BatchState> state_;
};

}  // namespace crescent::transfer
