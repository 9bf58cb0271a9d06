// TransferBatch: a caller's handle on a group of submitted entries, each with
// its own status (pending, done, failed with a reason) and latency.
//
// Ownership: move-only. The entries' progress is shared with the engine's
// workers through BatchState; the destructor waits until no worker can still
// touch the caller's memory for this batch (every entry ends within the
// engine's timeout, so this never hangs on a dead peer).
// Thread-safety: status(), Wait() and Poll() may be called from any thread;
// Submit (on the engine) for one batch from one thread at a time.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "transfer/transfer_types.h"

namespace crescent::transfer {

// Shared between a TransferBatch and the workers running its entries.
// Lock order: BatchState::mutex_ is a leaf (taken after any worker or engine lock).
class BatchState {
 public:
  explicit BatchState(size_t capacity) : entries_(capacity) {}

  size_t capacity() const { return entries_.size(); }
  size_t size() const;

  // Appends `n` pending entries, each split into `parts[i]` work items; returns
  // the first index. REQUIRES: size() + n <= capacity(), every parts[i] >= 1.
  size_t Append(const std::vector<int>& parts, int64_t submit_ns);
  // One work item of entry `index` ended with `s` (OK or the reason).
  void FinishPart(size_t index, const Status& s, int64_t now_ns);

  EntryStatus status(size_t index) const;
  int64_t latency_ns(size_t index) const;  // -1 while pending
  int64_t done_ns(size_t index) const;     // MonotonicClock time it ended; -1 while pending
  bool AllFinished() const;
  void WaitAll() const;

 private:
  struct Entry {
    int parts_left = 0;
    EntryState state = EntryState::kPending;
    Status error;
    int64_t submit_ns = 0;
    int64_t done_ns = -1;
  };
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::vector<Entry> entries_;  // GUARDED_BY(mutex_); [capacity]
  size_t size_ = 0;             // GUARDED_BY(mutex_)
  size_t pending_ = 0;          // GUARDED_BY(mutex_)
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
  // Blocks until no entry is pending. OK when all are done; otherwise the
  // first failed entry's reason, prefixed "entry <i>", and the failure count.
  Status Wait() const;

  // For the engine.
  const std::shared_ptr<BatchState>& state() const { return state_; }

 private:
  std::shared_ptr<BatchState> state_;
};

}  // namespace crescent::transfer
