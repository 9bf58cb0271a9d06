// The decode side's fenced reservations: shared prefix pages, commits checked
// by generation, lease and checksums, quarantine after a lease ends; and a
// race test in virtual time (tiny pool, short lease, peers whose writes land
// late) that no write ever lands in a page someone else owns.
#include "engine/kv_reservations.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>

namespace crescent::engine {
namespace {

const KvCacheShape kShape{2, 1, 8, 4, DType::kBF16};  // 2 layers, pages of 4 tokens

void Fill(KvPagePool& pool, std::span<const int32_t> pages, uint8_t v) {
  for (int64_t l = 0; l < pool.num_layers(); ++l) {
    for (int32_t p : pages) {
      std::memset(pool.K(l, p).data(), v, pool.K(l, p).size());
      std::memset(pool.V(l, p).data(), v + 1, pool.V(l, p).size());
    }
  }
}

std::span<const int32_t> Fresh(const KvReservation& r) {
  return std::span<const int32_t>(r.pages).subspan(static_cast<size_t>(r.held_tokens / kShape.page_tokens));
}

KvReservationOptions Opts(int64_t lease = 100, int64_t quarantine = 50) {
  KvReservationOptions o;
  o.lease_ms = lease;
  o.quarantine_ms = quarantine;
  o.pages_per_checksum = 2;
  o.epoch = 1000;
  return o;
}

TEST(KvReservationsTest, HeldPrefixIsSharedAndACommitHandsThePagesOver) {
  KvPagePool pool(kShape, 16);
  // Two pages of a prefix already cached here.
  const Hash128 k0{1, 1}, k1{2, 2}, k2{3, 3};
  SequenceKv cached;
  ASSERT_TRUE(pool.Reserve(cached, 8).ok());
  pool.SetKey(cached.pages[0], k0);
  pool.SetKey(cached.pages[1], k1);
  pool.Release(cached);
  KvReservations rs(&pool, Opts());
  const Hash128 keys[] = {k0, k1, k2};
  Result<KvReservation> r = rs.Reserve(keys, 12, 30, 0);  // 8 pages; 2 held, the peer writes tokens 8..12
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->pages.size(), 8u);
  EXPECT_EQ(r->held_tokens, 8);
  EXPECT_EQ(r->pages[0], cached.pages[0]);
  EXPECT_FALSE(rs.Writable(r->pages[0]));
  for (int32_t p : Fresh(*r)) EXPECT_TRUE(rs.Writable(p));
  EXPECT_EQ(pool.num_free_pages(), 16 - 8);
  // The peer writes the fresh pages, computes the sums and commits.
  Fill(pool, Fresh(*r), 0x40);
  const std::vector<uint64_t> sums = KvCommitChecksums(pool, kShape, r->pages, 8, 12, 2);
  EXPECT_EQ(sums.size(), 1u);  // one page written
  Result<KvReservation> c = rs.Commit(r->id, r->generation, sums, 10);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->pages, r->pages);
  EXPECT_EQ(rs.active(), 0);
  for (int32_t p : c->pages) EXPECT_FALSE(rs.Writable(p));
  EXPECT_EQ(pool.num_free_pages(), 16 - 8);  // the caller's now
  for (int32_t p : c->pages) pool.Unref(p);
  EXPECT_EQ(pool.num_free_pages(), 16);
  EXPECT_EQ(rs.stats().committed, 1);
}

TEST(KvReservationsTest, CommitsOfAnotherGenerationOrEpochAreRefused) {
  KvPagePool pool(kShape, 16);
  KvReservations rs(&pool, Opts());
  Result<KvReservation> r = rs.Reserve({}, 8, 8, 0);
  ASSERT_TRUE(r.ok());
  const std::vector<uint64_t> sums = rs.ExpectedChecksums(*r);
  EXPECT_EQ(rs.Commit(r->id, r->generation + 1, sums, 1).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(rs.active(), 1);  // the real owner may still commit
  // A reservation with the same id in a restarted instance (another epoch).
  KvPagePool pool2(kShape, 16);
  KvReservationOptions o2 = Opts();
  o2.epoch = 2000;
  KvReservations restarted(&pool2, o2);
  Result<KvReservation> r2 = restarted.Reserve({}, 8, 8, 0);
  ASSERT_TRUE(r2.ok());
  ASSERT_EQ(r2->id, r->id);
  EXPECT_EQ(restarted.Commit(r2->id, r->generation, restarted.ExpectedChecksums(*r2), 1).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(rs.Commit(999, r->generation, sums, 1).status().code(), StatusCode::kNotFound);
  Result<KvReservation> c = rs.Commit(r->id, r->generation, sums, 2);
  ASSERT_TRUE(c.ok());
  for (int32_t p : c->pages) pool.Unref(p);
  EXPECT_EQ(rs.stats().refused_commits, 2);
}

TEST(KvReservationsTest, AnEndedLeaseQuarantinesItsPagesUntilTheFencePasses) {
  KvPagePool pool(kShape, 8);
  KvReservations rs(&pool, Opts(/*lease=*/100, /*quarantine=*/50));
  Result<KvReservation> r = rs.Reserve({}, 32, 32, 0);  // the whole pool
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(rs.Reserve({}, 4, 4, 1).status().code(), StatusCode::kResourceExhausted);  // no room now
  EXPECT_EQ(rs.Reserve({}, 4, 1000, 1).status().code(), StatusCode::kInvalidArgument);  // never: do not wait
  EXPECT_TRUE(rs.Extend(r->id, r->generation, 60).ok());  // the lease runs to 160
  rs.Tick(150);
  EXPECT_EQ(rs.active(), 1);
  rs.Tick(161);  // ended: quarantined until 161 + 50
  EXPECT_EQ(rs.active(), 0);
  EXPECT_EQ(rs.stats().expired, 1);
  EXPECT_EQ(rs.stats().quarantined_pages, 8);
  for (int32_t p : r->pages) EXPECT_FALSE(rs.Writable(p));
  EXPECT_EQ(rs.Commit(r->id, r->generation, rs.ExpectedChecksums(*r), 162).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(rs.Extend(r->id, r->generation, 162).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool.num_free_pages(), 0);
  EXPECT_EQ(rs.Reserve({}, 4, 4, 200).status().code(), StatusCode::kResourceExhausted);  // the fence holds
  Result<KvReservation> again = rs.Reserve({}, 4, 4, 211);  // the fence passed at 211
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(rs.stats().freed_after_quarantine, 8);
  // A cancel before the lease ends fences from the lease end, not from now.
  rs.Cancel(again->id, 220);
  rs.Tick(220 + 50);
  EXPECT_EQ(pool.num_free_pages(), 7);
  rs.Tick(211 + 100 + 50);
  EXPECT_EQ(pool.num_free_pages(), 8);
}

TEST(KvReservationsTest, AFlippedByteFailsTheCommitAndTheSequenceIsNotAdmitted) {
  KvPagePool pool(kShape, 8);
  KvReservations rs(&pool, Opts());
  Result<KvReservation> r = rs.Reserve({}, 16, 16, 0);
  ASSERT_TRUE(r.ok());
  Fill(pool, Fresh(*r), 0x11);
  const std::vector<uint64_t> sums = rs.ExpectedChecksums(*r);  // what the peer sent
  pool.V(1, r->pages[2])[3] ^= std::byte{0x04};                  // one byte landed wrong
  EXPECT_EQ(rs.Commit(r->id, r->generation, sums, 5).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(rs.stats().checksum_failures, 1);
  EXPECT_EQ(rs.stats().quarantined_pages, 4);
  EXPECT_EQ(rs.Commit(r->id, r->generation, sums, 6).status().code(), StatusCode::kNotFound);
}

// The race the peers lose to (writes landing in reused blocks): many
// reservations in a pool of 12 pages with a 20 ms lease, peers that write at
// random times up to their lease end (plus the skew the fence allows) with
// each write landing up to the transfer timeout later; some commit, some are
// cancelled, some just stop. Every write that lands must find its page
// still belonging to the reservation that it was written for (live, or
// quarantined), never free or handed to anyone else.
TEST(KvReservationsTest, RaceNoLateWriteLandsInAReusedPage) {
  constexpr int64_t kLease = 20, kTimeout = 15, kSkew = 5;
  KvPagePool pool(kShape, 12);
  KvReservations rs(&pool, Opts(kLease, kTimeout + kSkew));
  std::mt19937_64 rng(7);
  struct Write {
    uint64_t res;
    int32_t page;
  };
  std::multimap<int64_t, Write> landing;        // when -> write
  std::map<int32_t, uint64_t> owner;            // page -> reservation it was last given to
  std::map<uint64_t, KvReservation> peers;      // live from the peer's point of view
  std::map<uint64_t, int64_t> last_landing;     // reservation -> its last write's landing time
  std::multimap<int64_t, std::vector<int32_t>> engine_frees;  // committed sequences finishing
  int64_t landed = 0, fenced = 0, committed = 0, refused = 0, reserved = 0;
  for (int64_t now = 0; now < 20'000; ++now) {
    rs.Tick(now);
    for (auto it = engine_frees.begin(); it != engine_frees.end() && it->first <= now;) {
      for (int32_t p : it->second) pool.Unref(p);
      it = engine_frees.erase(it);
    }
    for (auto it = landing.begin(); it != landing.end() && it->first <= now;) {
      const Write& w = it->second;
      ASSERT_EQ(owner[w.page], w.res) << "a write of reservation " << w.res << " landed at " << now
                                      << " in page " << w.page << ", given to " << owner[w.page];
      ++landed;
      if (!rs.Writable(w.page)) ++fenced;  // its reservation had ended: the quarantine took it
      it = landing.erase(it);
    }
    if (rng() % 3 == 0) {
      const int64_t tokens = static_cast<int64_t>(4 + rng() % 24);
      Result<KvReservation> r = rs.Reserve({}, tokens, tokens, now);
      if (r.ok()) {
        ++reserved;
        for (int32_t p : r->pages) owner[p] = r->id;
        peers.emplace(r->id, *r);
      }
    }
    for (auto it = peers.begin(); it != peers.end();) {
      KvReservation& r = it->second;
      const uint64_t dice = rng() % 100;
      if (now <= r.lease_end_ms + kSkew && dice < 30) {  // a write, landing up to the timeout later
        const int32_t p = r.pages[rng() % r.pages.size()];
        const int64_t at = now + static_cast<int64_t>(rng() % (kTimeout + 1));
        landing.emplace(at, Write{r.id, p});
        last_landing[r.id] = std::max(last_landing[r.id], at);
      }
      const bool writes_done = last_landing[r.id] <= now;
      if (dice >= 30 && dice < 36 && writes_done) {  // commit: only once every write completed
        Result<KvReservation> c = rs.Commit(r.id, r.generation, rs.ExpectedChecksums(r), now);
        if (c.ok()) {
          ++committed;
          for (int32_t p : c->pages) owner[p] = r.id;
          engine_frees.emplace(now + static_cast<int64_t>(rng() % 30), c->pages);
        } else {
          ++refused;
        }
        it = peers.erase(it);
        continue;
      }
      if (dice >= 36 && dice < 38) {
        rs.Cancel(r.id, now);
        it = peers.erase(it);
        continue;
      }
      if (now > r.lease_end_ms + kSkew + 1 && dice >= 90) {  // the peer gives up
        it = peers.erase(it);
        continue;
      }
      ++it;
    }
  }
  std::printf("race: %lld reservations, %lld committed, %lld commits refused, %lld writes landed, %lld fenced\n",
              static_cast<long long>(reserved), static_cast<long long>(committed), static_cast<long long>(refused),
              static_cast<long long>(landed), static_cast<long long>(fenced));
  EXPECT_GT(reserved, 1000);
  EXPECT_GT(committed, 100);
  EXPECT_GT(fenced, 100);  // the fence was exercised, not just allowed
  EXPECT_GT(rs.stats().expired + rs.stats().cancelled, 100);
}

}  // namespace
}  // namespace crescent::engine
