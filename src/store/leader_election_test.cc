// Leader election and fencing on a real etcd: a leader that can no longer
// confirm its lease (etcd SIGSTOPped) stops serving before the lease can have
// expired, although its election thread is still blocked on etcd; it serves
// again once etcd answers. A standby takes over when the leader goes, and a
// leader hands over at once when it stops.
#include "store/leader_election.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "store/master_server.h"
#include "store/remote_master.h"
#include "transfer/test_support.h"

namespace crescent::store {
namespace {

using Clock = std::chrono::steady_clock;

class LeaderElectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = transfer::testing::EtcdServer::Start();
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    etcd_ = std::move(e).value();
  }
  std::unique_ptr<MasterServer> Master(int64_t ttl_s) {
    MasterServerOptions o;
    o.etcd = etcd_->endpoint();
    o.lease_ttl_s = ttl_s;
    auto m = MasterServer::Start(o);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? std::move(m).value() : nullptr;
  }
  static bool WaitFor(const std::function<bool()>& cond, double secs) {
    const auto end = Clock::now() + std::chrono::duration<double>(secs);
    while (Clock::now() < end) {
      if (cond()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return cond();
  }
  // A Stat straight to `address` (no leader discovery): ok while it serves.
  static Status StatAt(const std::string& address) {
    RemoteMasterOptions ro;
    ro.target = address;
    ro.timeout_ms = 300;
    auto rm = RemoteMaster::Connect(ro);
    if (!rm.ok()) return rm.status();
    proto::StatRequest req;
    proto::StatReply rep;
    return (*rm)->Stat(req, &rep);
  }

  std::unique_ptr<transfer::testing::EtcdServer> etcd_;
};

TEST_F(LeaderElectionTest, ALeaderThatCannotConfirmItsLeaseStopsServingBeforeItCanExpire) {
  const int64_t kTtl = 3;
  auto m = Master(kTtl);
  ASSERT_TRUE(m);
  ASSERT_TRUE(WaitFor([&] { return m->leader(); }, 10));
  ASSERT_TRUE(StatAt(m->address()).ok());
  etcd_->Signal(SIGSTOP);
  const auto stopped = Clock::now();
  // The last call served ends before the lease can have expired: it was
  // renewed at most 1/3 TTL before etcd stopped, so it lasts at least 2/3 TTL
  // after, and a successor cannot lead before then either.
  auto last_served = stopped;
  bool refused = false;
  while (!refused && Clock::now() < stopped + std::chrono::seconds(kTtl + 2)) {
    if (StatAt(m->address()).ok()) {
      last_served = Clock::now();
    } else {
      refused = true;
    }
  }
  ASSERT_TRUE(refused) << "a leader cut off from etcd kept serving";
  const double served_for = std::chrono::duration<double>(last_served - stopped).count();
  EXPECT_LT(served_for, kTtl * 2.0 / 3.0 + 0.3) << "served while the lease may have expired";
  Status s = StatAt(m->address());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  etcd_->Signal(SIGCONT);
  EXPECT_TRUE(WaitFor([&] { return StatAt(m->address()).ok(); }, 3 * kTtl)) << "serves again once etcd answers";
}

TEST_F(LeaderElectionTest, AStandbyTakesOverAndAStoppingLeaderHandsOverAtOnce) {
  auto a = Master(2);
  ASSERT_TRUE(a);
  ASSERT_TRUE(WaitFor([&] { return a->leader(); }, 10));
  auto b = Master(2);
  ASSERT_TRUE(b);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_FALSE(b->leader()) << "one leader at a time";
  EXPECT_EQ(StatAt(b->address()).code(), StatusCode::kUnavailable) << "a standby refuses";
  const uint64_t first = a->term();
  const auto t0 = Clock::now();
  a.reset();  // revokes its lease: no waiting for the TTL
  ASSERT_TRUE(WaitFor([&] { return b->leader(); }, 5));
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LT(took, 2.0) << "the standby waited for the lease to expire";
  EXPECT_GT(b->term(), first) << "a new leader, a higher term";
  EXPECT_TRUE(StatAt(b->address()).ok());
}

}  // namespace
}  // namespace crescent::store
