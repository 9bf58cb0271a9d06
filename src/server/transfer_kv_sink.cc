#include "server/transfer_kv_sink.h"

#include <algorithm>

namespace crescent::server {

TransferKvSink::TransferKvSink(transfer::TransferEngine* transfer, const engine::KvCacheShape& shape, KvTarget target,
                               int64_t pages_per_checksum)
    : transfer_(transfer), shape_(shape), target_(std::move(target)), pages_per_checksum_(pages_per_checksum) {}

TransferKvSink::~TransferKvSink() {
  std::lock_guard<std::mutex> lock(mu_);
  batches_.clear();  // each batch's destructor waits until UCX released its memory
}

void TransferKvSink::OnLayer(int64_t layer, int64_t first_token, int64_t count, std::span<const int32_t> pages,
                             engine::KvPageAccess& kv) {
  const engine::KvReservation& r = target_.reservation;
  const int64_t pt = shape_.page_tokens;
  const int64_t b = std::max(first_token, r.held_tokens), e = std::min(first_token + count, r.written_tokens);
  if (b >= e) return;
  std::vector<transfer::TransferRequest> reqs;
  for (int64_t i = b / pt; i * pt < e; ++i) {
    if (i >= static_cast<int64_t>(pages.size()) || i >= static_cast<int64_t>(r.pages.size())) break;
    const int32_t src = pages[static_cast<size_t>(i)], dst = r.pages[static_cast<size_t>(i)];
    for (bool value : {false, true}) {
      std::span<std::byte> from = value ? kv.V(layer, src) : kv.K(layer, src);
      reqs.push_back({transfer::OpKind::kWrite, from.data(), target_.segment,
                      engine::KvPageOffset(shape_, target_.num_pages, layer, value, dst), from.size()});
    }
  }
  transfer::TransferBatch batch = transfer_->NewBatch(reqs.size());
  Status s = transfer_->Submit(batch, reqs);
  std::lock_guard<std::mutex> lock(mu_);
  if (!s.ok()) {
    if (submit_error_.ok()) submit_error_ = s;
    return;
  }
  for (const auto& q : reqs) bytes_ += static_cast<int64_t>(q.length);
  batches_.push_back(std::move(batch));
}

void TransferKvSink::OnFinished(bool ok, std::span<const int32_t> pages, engine::KvPageAccess& kv) {
  std::vector<uint64_t> sums;
  if (ok) {
    sums = engine::KvCommitChecksums(kv, shape_, pages, target_.reservation.held_tokens,
                                     target_.reservation.written_tokens, pages_per_checksum_);
  }
  std::lock_guard<std::mutex> lock(mu_);
  sums_ = std::move(sums);
  finished_ok_ = ok;
}

bool TransferKvSink::Idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& b : batches_) {
    if (!b.Released()) return false;
  }
  return true;
}

Status TransferKvSink::Wait() const {
  std::vector<const transfer::TransferBatch*> batches;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!submit_error_.ok()) return submit_error_;
    for (const auto& b : batches_) batches.push_back(&b);  // a deque: stable addresses
  }
  Status first;
  for (const auto* b : batches) {  // without the lock: the step thread polls Idle meanwhile
    Status s = b->Wait();
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

std::vector<uint64_t> TransferKvSink::checksums() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sums_;
}

bool TransferKvSink::finished_ok() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finished_ok_;
}

int64_t TransferKvSink::bytes_submitted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

}  // namespace crescent::server
