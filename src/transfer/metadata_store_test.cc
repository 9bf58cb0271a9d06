// The MetadataStore contract, run against both implementations: the
// in-process store and EtcdMetadataStore on a real etcd the test starts.
#include "transfer/metadata_store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "transfer/etcd_metadata_store.h"
#include "transfer/in_process_metadata_store.h"
#include "transfer/test_support.h"

namespace crescent::transfer {
namespace {

using namespace std::chrono_literals;

// Collects watch events; waits for a count.
class EventLog {
 public:
  WatchCallback Callback() {
    return [this](const WatchEvent& ev) {
      std::lock_guard lock(mu_);
      events_.push_back(ev);
      cv_.notify_all();
    };
  }
  // The first `n` events, or fewer if they do not come within `timeout`.
  std::vector<WatchEvent> WaitFor(size_t n, std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return events_.size() >= n; });
    return events_;
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return events_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WatchEvent> events_;
};

class MetadataStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    auto e = testing::EtcdServer::Start();
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    etcd_ = std::move(e).value().release();
  }
  static void TearDownTestSuite() {
    delete etcd_;
    etcd_ = nullptr;
  }
  void SetUp() override {
    if (GetParam() == "etcd") {
      EtcdOptions o;
      o.endpoint = etcd_->endpoint();
      auto s = EtcdMetadataStore::Connect(o);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      store_ = std::move(s).value();
    } else {
      store_ = std::make_unique<InProcessMetadataStore>();
    }
    // Keys of this test only (the etcd is shared by the suite).
    prefix_ = std::string("t/") + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "/";
  }
  std::string K(const std::string& k) const { return prefix_ + k; }

  static testing::EtcdServer* etcd_;
  std::unique_ptr<MetadataStore> store_;
  std::string prefix_;
};
testing::EtcdServer* MetadataStoreTest::etcd_ = nullptr;

TEST_P(MetadataStoreTest, PutGetRemoveAndRevisions) {
  EXPECT_EQ(store_->Get(K("a")).status().code(), StatusCode::kNotFound);
  std::string binary("v\0\x01\xfe", 4);
  ASSERT_TRUE(store_->Put(K("a"), binary).ok());
  EXPECT_EQ(*store_->Get(K("a")), binary);
  KeyValue first = *store_->GetEntry(K("a"));
  EXPECT_GT(first.create_revision, 0);
  EXPECT_EQ(first.create_revision, first.mod_revision);
  ASSERT_TRUE(store_->Put(K("a"), "second").ok());
  KeyValue second = *store_->GetEntry(K("a"));
  EXPECT_EQ(second.value, "second");
  EXPECT_EQ(second.create_revision, first.create_revision);
  EXPECT_GT(second.mod_revision, first.mod_revision);
  ASSERT_TRUE(store_->Remove(K("a")).ok());
  EXPECT_EQ(store_->Get(K("a")).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->Remove(K("a")).ok());
  ASSERT_TRUE(store_->Put(K("empty"), "").ok());
  EXPECT_EQ(*store_->Get(K("empty")), "");
}

TEST_P(MetadataStoreTest, ListByPrefix) {
  for (const char* k : {"m/b", "m/a", "m/c/d", "mm", "n"}) ASSERT_TRUE(store_->Put(K(k), k).ok());
  Result<ListResult> l = store_->List(K("m/"));
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  ASSERT_EQ(l->kvs.size(), 3u);
  EXPECT_EQ(l->kvs[0].key, K("m/a"));
  EXPECT_EQ(l->kvs[1].key, K("m/b"));
  EXPECT_EQ(l->kvs[2].key, K("m/c/d"));
  EXPECT_EQ(l->kvs[2].value, "m/c/d");
  EXPECT_GE(l->revision, l->kvs[2].mod_revision);
  EXPECT_TRUE(store_->List(K("zzz/"))->kvs.empty());
}

TEST_P(MetadataStoreTest, CompareAndSwapIsALeaderElection) {
  // Two candidates race to create the key; exactly one wins.
  Result<int64_t> a = store_->CompareAndSwap(K("leader"), 0, "a", 0);
  Result<int64_t> b = store_->CompareAndSwap(K("leader"), 0, "b", 0);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(b.status().code(), StatusCode::kFailedPrecondition);
  KeyValue kv = *store_->GetEntry(K("leader"));
  EXPECT_EQ(kv.value, "a");
  EXPECT_EQ(kv.mod_revision, *a);
  // Only the holder of the current revision may change or delete it.
  EXPECT_EQ(store_->CompareAndSwap(K("leader"), *a - 1, "x", 0).status().code(), StatusCode::kFailedPrecondition);
  Result<int64_t> a2 = store_->CompareAndSwap(K("leader"), *a, "a2", 0);
  ASSERT_TRUE(a2.ok());
  EXPECT_EQ(store_->CompareAndDelete(K("leader"), *a).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store_->CompareAndDelete(K("leader"), *a2).ok());
  EXPECT_EQ(store_->Get(K("leader")).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->CompareAndSwap(K("leader"), kAnyRevision, "c", 0).ok());
  EXPECT_TRUE(store_->CompareAndSwap(K("leader"), kAnyRevision, "d", 0).ok());
  EXPECT_EQ(*store_->Get(K("leader")), "d");
  EXPECT_EQ(store_->CompareAndDelete(K("absent"), 5).code(), StatusCode::kFailedPrecondition);
}

TEST_P(MetadataStoreTest, LeasesExpireUnlessKeptAliveAndRevokeAtOnce) {
  Result<LeaseId> kept = store_->GrantLease(1);
  Result<LeaseId> dropped = store_->GrantLease(1);
  Result<LeaseId> revoked = store_->GrantLease(30);
  ASSERT_TRUE(kept.ok() && dropped.ok() && revoked.ok());
  ASSERT_TRUE(store_->CompareAndSwap(K("kept"), 0, "x", *kept).ok());
  ASSERT_TRUE(store_->CompareAndSwap(K("dropped"), 0, "x", *dropped).ok());
  ASSERT_TRUE(store_->CompareAndSwap(K("revoked"), 0, "x", *revoked).ok());
  EXPECT_EQ(store_->GetEntry(K("kept"))->lease, *kept);
  ASSERT_TRUE(store_->RevokeLease(*revoked).ok());
  EXPECT_EQ(store_->Get(K("revoked")).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->RevokeLease(*revoked).ok());  // again: fine
  // Keep one alive past its TTL; the other expires (etcd's expiry granularity
  // is ~0.5 s beyond the TTL, so allow up to 4 s).
  bool dropped_gone = false;
  for (int i = 0; i < 40 && !dropped_gone; ++i) {
    ASSERT_TRUE(store_->KeepAliveLease(*kept).ok());
    std::this_thread::sleep_for(100ms);
    dropped_gone = store_->Get(K("dropped")).status().code() == StatusCode::kNotFound;
  }
  EXPECT_TRUE(dropped_gone);
  EXPECT_TRUE(store_->Get(K("kept")).ok()) << "a lease kept alive must hold its keys";
  EXPECT_EQ(store_->KeepAliveLease(*dropped).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(store_->CompareAndSwap(K("late"), 0, "x", *dropped).ok()) << "an expired lease takes no keys";
  EXPECT_EQ(store_->GrantLease(0).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(MetadataStoreTest, WatchSeesPutsAndDeletesInOrder) {
  EventLog log;
  auto w = store_->WatchPrefix(K("w/"), 0, log.Callback());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::this_thread::sleep_for(200ms);  // etcd: let the stream be created before the first change
  ASSERT_TRUE(store_->Put(K("w/1"), "one").ok());
  ASSERT_TRUE(store_->Put(K("other"), "not watched").ok());
  ASSERT_TRUE(store_->Put(K("w/2"), "two").ok());
  ASSERT_TRUE(store_->Remove(K("w/1")).ok());
  auto ev = log.WaitFor(3);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].type, WatchEventType::kPut);
  EXPECT_EQ(ev[0].kv.key, K("w/1"));
  EXPECT_EQ(ev[0].kv.value, "one");
  EXPECT_EQ(ev[1].kv.key, K("w/2"));
  EXPECT_EQ(ev[2].type, WatchEventType::kDelete);
  EXPECT_EQ(ev[2].kv.key, K("w/1"));
  EXPECT_LT(ev[0].revision, ev[1].revision);
  EXPECT_LT(ev[1].revision, ev[2].revision);
  w->reset();
  ASSERT_TRUE(store_->Put(K("w/3"), "after").ok());
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(log.size(), 3u) << "no events after the watch is gone";
}

// A watcher that starts from an old revision replays what it missed: how a
// watcher resumes after a reconnect.
TEST_P(MetadataStoreTest, WatchFromARevisionReplaysHistory) {
  Result<int64_t> r1 = store_->CompareAndSwap(K("h/a"), 0, "1", 0);
  ASSERT_TRUE(r1.ok());
  ASSERT_TRUE(store_->Put(K("h/b"), "2").ok());
  ASSERT_TRUE(store_->Remove(K("h/a")).ok());
  EventLog log;
  auto w = store_->WatchPrefix(K("h/"), *r1, log.Callback());
  ASSERT_TRUE(w.ok());
  auto ev = log.WaitFor(3);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].revision, *r1);
  EXPECT_EQ(ev[0].kv.value, "1");
  EXPECT_EQ(ev[1].kv.key, K("h/b"));
  EXPECT_EQ(ev[2].type, WatchEventType::kDelete);
}

// Keys on an expiring lease produce delete events: how membership notices a
// dead member.
TEST_P(MetadataStoreTest, LeaseExpiryIsADeleteEvent) {
  EventLog log;
  auto w = store_->WatchPrefix(K("members/"), 0, log.Callback());
  ASSERT_TRUE(w.ok());
  std::this_thread::sleep_for(200ms);
  Result<LeaseId> lease = store_->GrantLease(1);
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(store_->CompareAndSwap(K("members/x"), 0, "alive", *lease).ok());
  auto ev = log.WaitFor(2, 6000ms);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type, WatchEventType::kPut);
  EXPECT_EQ(ev[1].type, WatchEventType::kDelete);
  EXPECT_EQ(ev[1].kv.key, K("members/x"));
}

TEST_P(MetadataStoreTest, AWatchMayEndItselfFromItsCallback) {
  std::unique_ptr<Watch> w;
  std::mutex mu;
  std::condition_variable cv;
  bool ended = false;
  auto r = store_->WatchPrefix(K("self/"), 0, [&](const WatchEvent&) {
    std::lock_guard lock(mu);
    w.reset();
    ended = true;
    cv.notify_all();
  });
  ASSERT_TRUE(r.ok());
  {
    std::lock_guard lock(mu);
    w = std::move(r).value();
  }
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(store_->Put(K("self/x"), "1").ok());
  std::unique_lock lock(mu);
  EXPECT_TRUE(cv.wait_for(lock, 5000ms, [&] { return ended; }));
}

INSTANTIATE_TEST_SUITE_P(Stores, MetadataStoreTest, ::testing::Values("inprocess", "etcd"),
                         [](const auto& info) { return info.param == "etcd" ? std::string("Etcd") : std::string("InProcess"); });

}  // namespace
}  // namespace crescent::transfer
