#include "server/transfer_kv_sink.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "base/clock.h"
#include "base/thread_annotations.h"

namespace crescent::server {
namespace {

// Fault injection for the fencing tests (never set in production): each
// batch of writes waits a random 0..N ms after its lease check before it is
// submitted, as a write slow to land would.
int64_t FaultWriteDelayMs() {
  static const int64_t ms = [] {
    const char* v = std::getenv("CRESCENT_FAULT_KV_WRITE_DELAY_MS");
    return v ? std::max<int64_t>(0, std::atoll(v)) : int64_t{0};
  }();
  return ms;
}

}  // namespace

TransferKvSink::TransferKvSink(transfer::TransferEngine* transfer, const engine::KvCacheShape& shape, KvTarget target,
                               int64_t pages_per_checksum)
    : transfer_(transfer), shape_(shape), target_(std::move(target)), pages_per_checksum_(pages_per_checksum) {}

TransferKvSink::~TransferKvSink() {
  MutexLock lock(mu_);
  batches_.clear();  // each batch's destructor waits until UCX released its memory
}

void TransferKvSink::Send(int64_t layer, int64_t end_page, std::span<const int32_t> pages, engine::KvPageAccess& kv) {
  const engine::KvReservation& r = target_.reservation;
  if (sent_pages_.empty()) sent_pages_.assign(static_cast<size_t>(kv.num_layers()), r.held_tokens / shape_.page_tokens);
  int64_t& from = sent_pages_[static_cast<size_t>(layer)];
  end_page = std::min({end_page, static_cast<int64_t>(pages.size()), static_cast<int64_t>(r.pages.size())});
  if (from >= end_page) return;
  if (MonotonicClock::Get().NowNanos() >= issue_by_ns_.load()) {  // the lease may have lapsed: never write
    MutexLock lock(mu_);
    if (submit_error_.ok()) submit_error_ = Unavailable("the decode instance's lease lapsed: writes stopped");
    return;
  }
  if (const int64_t max_ms = FaultWriteDelayMs(); max_ms > 0) {
    thread_local std::mt19937_64 rng(std::random_device{}());
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % static_cast<uint64_t>(max_ms + 1)));
  }
  std::vector<transfer::TransferRequest> reqs;
  for (int64_t i = from; i < end_page; ++i) {
    const int32_t src = pages[static_cast<size_t>(i)], dst = r.pages[static_cast<size_t>(i)];
    for (bool value : {false, true}) {
      std::span<std::byte> bytes = value ? kv.V(layer, src) : kv.K(layer, src);
      reqs.push_back({transfer::OpKind::kWrite, bytes.data(), target_.segment,
                      engine::KvPageOffset(shape_, target_.num_pages, layer, value, dst), bytes.size()});
    }
  }
  from = end_page;
  transfer::TransferBatch batch = transfer_->NewBatch(reqs.size());
  Status s = transfer_->Submit(batch, reqs);
  MutexLock lock(mu_);
  if (!s.ok()) {
    if (submit_error_.ok()) submit_error_ = s;
    return;
  }
  for (const auto& q : reqs) bytes_ += static_cast<int64_t>(q.length);
  batches_.push_back(std::move(batch));
}

void TransferKvSink::OnLayer(int64_t layer, int64_t first_token, int64_t count, std::span<const int32_t> pages,
                             engine::KvPageAccess& kv) {
  // Whole pages only: a page a later chunk still fills goes when it is full
  // (or at the end), so no page is written twice.
  const int64_t end = std::min(first_token + count, target_.reservation.written_tokens);
  Send(layer, end / shape_.page_tokens, pages, kv);
}

void TransferKvSink::OnFinished(bool ok, std::span<const int32_t> pages, engine::KvPageAccess& kv) {
  std::vector<uint64_t> sums;
  if (ok) {
    const int64_t pt = shape_.page_tokens;
    for (int64_t l = 0; l < kv.num_layers(); ++l) Send(l, (target_.reservation.written_tokens + pt - 1) / pt, pages, kv);
    sums = engine::KvCommitChecksums(kv, shape_, pages, target_.reservation.held_tokens,
                                     target_.reservation.written_tokens, pages_per_checksum_);
  }
  MutexLock lock(mu_);
  sums_ = std::move(sums);
  finished_ok_ = ok;
}

bool TransferKvSink::Idle() const {
  MutexLock lock(mu_);
  for (const auto& b : batches_) {
    if (!b.Released()) return false;
  }
  return true;
}

Status TransferKvSink::Wait() const {
  std::vector<const transfer::TransferBatch*> batches;
  Status first;
  {
    MutexLock lock(mu_);
    first = submit_error_;  // reported after every write submitted has ended
    for (const auto& b : batches_) batches.push_back(&b);  // a deque: stable addresses
  }
  for (const auto* b : batches) {  // without the lock: the step thread polls Idle meanwhile
    Status s = b->Wait();
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

std::vector<uint64_t> TransferKvSink::checksums() const {
  MutexLock lock(mu_);
  return sums_;
}

bool TransferKvSink::finished_ok() const {
  MutexLock lock(mu_);
  return finished_ok_;
}

int64_t TransferKvSink::bytes_submitted() const {
  MutexLock lock(mu_);
  return bytes_;
}

}  // namespace crescent::server
