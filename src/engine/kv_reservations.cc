#include "engine/kv_reservations.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>

namespace crescent::engine {

uint64_t KvTokensChecksum(KvPageAccess& kv, const KvCacheShape& shape, std::span<const int32_t> page_ids,
                          int64_t num_tokens) {
  const int64_t pt = shape.page_tokens;
  const size_t row = static_cast<size_t>(shape.head_dim) * DTypeSize(shape.dtype);
  Hasher128 h;
  for (int64_t l = 0; l < kv.num_layers(); ++l) {
    for (int side = 0; side < 2; ++side) {
      for (size_t i = 0; i < page_ids.size(); ++i) {
        const int64_t rows = std::clamp<int64_t>(num_tokens - static_cast<int64_t>(i) * pt, 0, pt);
        if (rows == 0) break;
        std::span<std::byte> page = side == 0 ? kv.K(l, page_ids[i]) : kv.V(l, page_ids[i]);
        for (int64_t head = 0; head < shape.kv_heads; ++head) {  // [kv_heads][page_tokens][head_dim]
          h.Update(page.data() + static_cast<size_t>(head * pt) * row, static_cast<size_t>(rows) * row);
        }
      }
    }
  }
  return h.Finish().lo;
}

std::vector<uint64_t> KvCommitChecksums(KvPageAccess& kv, const KvCacheShape& shape, std::span<const int32_t> pages,
                                        int64_t first_token, int64_t end_token, int64_t pages_per_checksum) {
  const int64_t pt = shape.page_tokens;
  const int64_t group = std::max<int64_t>(1, pages_per_checksum) * pt;
  std::vector<uint64_t> sums;
  for (int64_t at = first_token; at < end_token; at += group) {
    const int64_t n = std::min(group, end_token - at);
    const size_t first_page = static_cast<size_t>(at / pt), count = static_cast<size_t>((n + pt - 1) / pt);
    if (first_page + count > pages.size()) break;  // a bug of the caller: no sum, the commit fails
    sums.push_back(KvTokensChecksum(kv, shape, pages.subspan(first_page, count), n));
  }
  return sums;
}

KvReservations::KvReservations(KvPagePool* pool, KvReservationOptions options) : pool_(pool), options_(options) {
  options_.pages_per_checksum = std::max<int64_t>(1, options_.pages_per_checksum);
  if (options_.epoch == 0) options_.epoch = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
}

KvReservations::~KvReservations() {
  for (auto& [id, r] : live_) {
    for (int32_t p : r.pages) pool_->Unref(p);
  }
  for (Fenced& f : quarantine_) {
    for (int32_t p : f.pages) pool_->Unref(p);
  }
}

Result<KvReservation> KvReservations::Reserve(std::span<const Hash128> page_keys, int64_t written, int64_t tokens,
                                              int64_t now_ms) {
  const int64_t pt = pool_->shape().page_tokens;
  if (tokens <= 0 || written <= 0 || written > tokens) return InvalidArgument("a reservation of no tokens");
  Tick(now_ms);  // pages whose fence passed are free again
  const int64_t total = (tokens + pt - 1) / pt;
  if (total > pool_->num_pages()) {
    // Never fits (not "no room now"): the caller must not wait for room.
    return InvalidArgument(fmt::format("{} tokens need {} pages of KV; the decode instance's whole pool has {}", tokens,
                                       total, pool_->num_pages()));
  }
  KvReservation r;
  // The leading pages this instance already holds: shared, never written.
  for (const Hash128& key : page_keys) {
    if (static_cast<int64_t>(r.pages.size()) * pt + pt > written) break;  // only whole pages of the prompt
    const int32_t p = pool_->Lookup(key);
    if (p < 0) break;
    pool_->Ref(p);
    r.pages.push_back(p);
  }
  const int64_t held = static_cast<int64_t>(r.pages.size());
  if (pool_->num_free_pages() < total - held) {
    for (int32_t p : r.pages) pool_->Unref(p);
    return ResourceExhausted(fmt::format("{} free KV pages for a reservation of {} ({} quarantined)",
                                         pool_->num_free_pages(), total - held, stats_.quarantined_pages));
  }
  for (int64_t i = held; i < total; ++i) r.pages.push_back(pool_->Allocate());
  r.held_tokens = held * pt;
  r.written_tokens = written;
  r.id = next_id_++;
  r.generation = options_.epoch + r.id * 0x9E3779B97F4A7C15ull;  // unique within the process, epoch-salted
  r.lease_end_ms = now_ms + options_.lease_ms;
  for (size_t i = static_cast<size_t>(held); i < r.pages.size(); ++i) writable_[r.pages[i]] = r.id;
  stats_.reserved++;
  live_.emplace(r.id, r);
  return r;
}

Status KvReservations::Extend(uint64_t id, uint64_t generation, int64_t now_ms) {
  Tick(now_ms);
  auto it = live_.find(id);
  if (it == live_.end()) return NotFound(fmt::format("no live KV reservation {}", id));
  if (it->second.generation != generation) return FailedPrecondition("a KV reservation of another generation");
  it->second.lease_end_ms = now_ms + options_.lease_ms;
  return Status::Ok();
}

std::vector<uint64_t> KvReservations::ExpectedChecksums(const KvReservation& r) {
  return KvCommitChecksums(*pool_, pool_->shape(), r.pages, r.held_tokens, r.written_tokens,
                           options_.pages_per_checksum);
}

Result<KvReservation> KvReservations::Commit(uint64_t id, uint64_t generation, std::span<const uint64_t> checksums,
                                             int64_t now_ms) {
  Tick(now_ms);  // a lease that ended is quarantined first: its commit finds nothing
  auto it = live_.find(id);
  if (it == live_.end()) {
    stats_.refused_commits++;
    return NotFound(fmt::format("no live KV reservation {} (ended or never made)", id));
  }
  if (it->second.generation != generation) {  // not its owner: the reservation stays
    stats_.refused_commits++;
    return FailedPrecondition(fmt::format("a commit of generation {:x} for reservation {} of generation {:x}",
                                          generation, id, it->second.generation));
  }
  KvReservation r = std::move(it->second);
  live_.erase(it);
  const std::vector<uint64_t> want = ExpectedChecksums(r);
  if (!std::equal(want.begin(), want.end(), checksums.begin(), checksums.end())) {
    stats_.checksum_failures++;
    Quarantine(std::move(r), now_ms);
    return DataLoss(fmt::format("the KV written for reservation {} does not match its checksums", id));
  }
  for (size_t i = static_cast<size_t>(r.held_tokens / pool_->shape().page_tokens); i < r.pages.size(); ++i) {
    writable_.erase(r.pages[i]);
  }
  stats_.committed++;
  return r;
}

void KvReservations::Cancel(uint64_t id, int64_t now_ms) {
  auto it = live_.find(id);
  if (it == live_.end()) return;
  KvReservation r = std::move(it->second);
  live_.erase(it);
  stats_.cancelled++;
  Quarantine(std::move(r), now_ms);
}

void KvReservations::Quarantine(KvReservation r, int64_t now_ms) {
  const size_t held = static_cast<size_t>(r.held_tokens / pool_->shape().page_tokens);
  for (size_t i = 0; i < held; ++i) pool_->Unref(r.pages[i]);  // never written by the peer
  Fenced f;
  f.until_ms = std::max(now_ms, r.lease_end_ms) + options_.quarantine_ms;
  for (size_t i = held; i < r.pages.size(); ++i) {
    writable_.erase(r.pages[i]);
    f.pages.push_back(r.pages[i]);
  }
  stats_.quarantined_pages += static_cast<int64_t>(f.pages.size());
  quarantine_.push_back(std::move(f));
}

void KvReservations::Tick(int64_t now_ms) {
  for (auto it = live_.begin(); it != live_.end();) {
    if (now_ms > it->second.lease_end_ms) {
      KvReservation r = std::move(it->second);
      it = live_.erase(it);
      stats_.expired++;
      Quarantine(std::move(r), now_ms);
    } else {
      ++it;
    }
  }
  for (auto it = quarantine_.begin(); it != quarantine_.end();) {
    if (now_ms >= it->until_ms) {
      for (int32_t p : it->pages) pool_->Unref(p);
      stats_.quarantined_pages -= static_cast<int64_t>(it->pages.size());
      stats_.freed_after_quarantine += static_cast<int64_t>(it->pages.size());
      it = quarantine_.erase(it);
    } else {
      ++it;
    }
  }
}

bool KvReservations::Writable(int32_t page) const { return writable_.contains(page); }

}  // namespace crescent::engine
