// KvReservations: the decode instance's side of the prefill/decode KV path
// (DESIGN.md "The KV path of one request"): pages that a prefill instance
// writes into from another process, fenced so that no write of a peer can
// ever land in a page that someone else owns by then.
//
//   Reserve(page_keys, written, tokens, now)  pages for `tokens` tokens (prompt +
//       max_tokens): the leading pages whose keys the prefix cache holds are
//       shared (`held_tokens`, never written by the peer), the rest are fresh
//       pages the peer may write; with an id, a generation and a lease.
//   Extend(id, generation, now)      the lease runs `lease_ms` more (a long
//       prefill); refused once the lease has ended.
//   Commit(id, generation, sums, now)  the peer says every write has
//       completed: the generation must be this reservation's, the lease
//       running, and `sums` (KvCommitChecksums of the written tokens)
//       must match the pages; then the pages are the caller's (it admits the
//       sequence). Any failure ends the reservation (quarantined).
//   Cancel(id)                        ends a reservation (quarantined).
//   Tick(now)                         reservations past their lease end
//       (quarantined); quarantined pages whose fence passed are freed.
//
// The fence: the fresh pages of a reservation that ends without a commit go
// back to the pool no earlier than lease_end + quarantine_ms. A peer issues
// no write after the lease end (as it knows it, from the front's clock, so
// never later than ours by more than the skew `quarantine_ms` allows for) and
// every write it issued lands or fails within its transfer timeout; so
// `quarantine_ms` >= the transfer timeout + the skew means no write can land
// after the pages are free. A committed reservation has no writes in flight
// (the peer commits after its last write completed). Generations are unique
// within a process and start from a per-process random epoch, so a commit
// meant for a reservation of a previous run (or an old one) is refused.
//
// Thread-compatible: the engine's step thread owns the pool and calls this.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "engine/kv_cache.h"

namespace crescent::engine {

struct KvReservationOptions {
  int64_t lease_ms = 10'000;
  int64_t quarantine_ms = 15'000;  // >= the peer's transfer timeout + clock skew
  int64_t pages_per_checksum = 16; // written pages per checksum in a commit (the peer must use the same)
  uint64_t epoch = 0;              // 0: random (tests pass a fixed one)
};

struct KvReservation {
  uint64_t id = 0;
  uint64_t generation = 0;
  std::vector<int32_t> pages;  // token order, covering the reserved tokens
  int64_t held_tokens = 0;     // leading tokens already here: pages[0 .. held/page_tokens)
  int64_t written_tokens = 0;  // the peer writes tokens [held_tokens, written_tokens) (the prompt)
  int64_t lease_end_ms = 0;
};

struct KvReservationStats {
  int64_t reserved = 0, committed = 0, cancelled = 0, expired = 0;
  int64_t refused_commits = 0;     // unknown id, old generation or lease ended
  int64_t checksum_failures = 0;   // commits whose pages did not match their sums
  int64_t quarantined_pages = 0;   // now
  int64_t freed_after_quarantine = 0;
};

// 64 bits of the XXH3-128 of the K/V of tokens [0, num_tokens) held in
// `page_ids` (token order): layer by layer, K then V, page by page, head by
// head, only the rows of those tokens (the rest of a last, partial page is
// not part of it). Both sides compute it over the same tokens.
uint64_t KvTokensChecksum(KvPageAccess& kv, const KvCacheShape& shape, std::span<const int32_t> page_ids,
                          int64_t num_tokens);
// The sums of a commit: one per `pages_per_checksum` pages of tokens
// [first_token, end_token) (first_token page aligned) of a block table.
std::vector<uint64_t> KvCommitChecksums(KvPageAccess& kv, const KvCacheShape& shape, std::span<const int32_t> pages,
                                        int64_t first_token, int64_t end_token, int64_t pages_per_checksum);

class KvReservations {
 public:
  KvReservations(KvPagePool* pool, KvReservationOptions options = {});
  ~KvReservations();  // returns every page it holds (the pool outlives writes by then)
  KvReservations(const KvReservations&) = delete;
  KvReservations& operator=(const KvReservations&) = delete;

  // ResourceExhausted when the pool has not the pages (quarantined pages are
  // not free); nothing changes then.
  // `tokens`: the pages' room (prompt + max_tokens); `written`: the prompt.
  Result<KvReservation> Reserve(std::span<const Hash128> page_keys, int64_t written, int64_t tokens, int64_t now_ms);
  Status Extend(uint64_t id, uint64_t generation, int64_t now_ms);
  // On success the returned pages (and their references) are the caller's.
  Result<KvReservation> Commit(uint64_t id, uint64_t generation, std::span<const uint64_t> checksums,
                               int64_t now_ms);
  void Cancel(uint64_t id, int64_t now_ms);
  void Tick(int64_t now_ms);

  // The sums a commit of `r` must carry (what the peer computes on its side).
  std::vector<uint64_t> ExpectedChecksums(const KvReservation& r);
  // Whether `page` may be written by a peer now (a live reservation's fresh page).
  bool Writable(int32_t page) const;
  int64_t active() const { return static_cast<int64_t>(live_.size()); }
  const KvReservationStats& stats() const { return stats_; }

 private:
  void Quarantine(KvReservation r, int64_t now_ms);

  KvPagePool* pool_;
  KvReservationOptions options_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, KvReservation> live_;
  std::unordered_map<int32_t, uint64_t> writable_;  // fresh page -> its reservation
  struct Fenced {
    int64_t until_ms = 0;
    std::vector<int32_t> pages;
  };
  std::vector<Fenced> quarantine_;
  KvReservationStats stats_;
};

}  // namespace crescent::engine
