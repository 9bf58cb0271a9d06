#include "transfer/transfer_batch.h"

#include <string>

#include "base/check.h"
#include "base/thread_annotations.h"

namespace crescent::transfer {

size_t BatchState::size() const {
  MutexLock lock(mutex_);
  return size_;
}

size_t BatchState::Append(const std::vector<int>& parts, int64_t submit_ns) {
  MutexLock lock(mutex_);
  CHECK_LE(size_ + parts.size(), entries_.size());
  size_t first = size_;
  for (int p : parts) {
    CHECK_GE(p, 1);
    Entry& e = entries_[size_++];
    e.parts_left = p;
    e.parts_held = p;
    e.submit_ns = submit_ns;
    held_ += static_cast<size_t>(p);
  }
  pending_ += parts.size();
  return first;
}

void BatchState::FinishPart(size_t index, const Status& s, int64_t now_ns) {
  MutexLock lock(mutex_);
  CHECK_LT(index, size_);
  Entry& e = entries_[index];
  CHECK_GT(e.parts_left, 0);
  if (!s.ok() && e.error.ok()) e.error = s;
  if (--e.parts_left > 0) return;
  e.state = e.error.ok() ? EntryState::kDone : EntryState::kFailed;
  e.done_ns = now_ns;
  if (--pending_ == 0) cv_.NotifyAll();
}

void BatchState::ReleasePart(size_t index) {
  MutexLock lock(mutex_);
  CHECK_LT(index, size_);
  Entry& e = entries_[index];
  CHECK_GT(e.parts_held, 0);
  CHECK_LT(e.parts_left, e.parts_held) << "released before it ended";
  --e.parts_held;
  if (--held_ == 0) cv_.NotifyAll();
}

EntryStatus BatchState::status(size_t index) const {
  MutexLock lock(mutex_);
  CHECK_LT(index, size_);
  return {entries_[index].state, entries_[index].error};
}

int64_t BatchState::latency_ns(size_t index) const {
  MutexLock lock(mutex_);
  CHECK_LT(index, size_);
  const Entry& e = entries_[index];
  return e.done_ns < 0 ? -1 : e.done_ns - e.submit_ns;
}

int64_t BatchState::done_ns(size_t index) const {
  MutexLock lock(mutex_);
  CHECK_LT(index, size_);
  return entries_[index].done_ns;
}

bool BatchState::AllFinished() const {
  MutexLock lock(mutex_);
  return pending_ == 0;
}

void BatchState::WaitAll() const {
  MutexLock lock(mutex_);
  cv_.Wait(mutex_, [&]() REQUIRES(mutex_) { return pending_ == 0; });
}

bool BatchState::AllReleased() const {
  MutexLock lock(mutex_);
  return held_ == 0;
}

void BatchState::WaitReleased() const {
  MutexLock lock(mutex_);
  cv_.Wait(mutex_, [&]() REQUIRES(mutex_) { return held_ == 0; });
}

TransferBatch::~TransferBatch() {
  if (state_) state_->WaitReleased();
}

TransferBatch& TransferBatch::operator=(TransferBatch&& o) noexcept {
  if (this != &o) {
    if (state_) state_->WaitReleased();
    state_ = std::move(o.state_);
  }
  return *this;
}

Status TransferBatch::Wait() const {
  if (!state_) return Status::Ok();
  state_->WaitAll();
  size_t failed = 0;
  Status first;
  for (size_t i = 0; i < state_->size(); ++i) {
    EntryStatus st = state_->status(i);
    if (st.state != EntryState::kFailed) continue;
    if (failed++ == 0) first = st.error.WithContext("entry " + std::to_string(i));
  }
  if (failed == 0) return Status::Ok();
  return Status(first.code(), first.message() + " (" + std::to_string(failed) + " of " +
                                  std::to_string(state_->size()) + " entries failed)");
}

}  // namespace crescent::transfer
