// EtcdMetadataStore under faults, against real etcd processes the tests start:
// a silent etcd, one that hangs some calls, one SIGSTOPped under load, one
// restarted under a watcher, compacted history, and a session lease lost
// behind the handle's back. (The contract itself: metadata_store_test.cc.)
#include "transfer/etcd_metadata_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "transfer/base64.h"
#include "transfer/fault_servers.h"
#include "transfer/test_support.h"
#include "transfer/transfer_engine.h"

namespace crescent::transfer {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

TEST(Base64Test, RoundTrips) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\x10", 3)}) {
    auto d = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_FALSE(Base64Decode("Zm9").ok());
  EXPECT_FALSE(Base64Decode("Z!9v").ok());
}

TEST(EtcdClientTest, PrefixRangeEnd) {
  EXPECT_EQ(PrefixRangeEnd("a/"), "a0");
  EXPECT_EQ(PrefixRangeEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixRangeEnd(""), std::string(1, '\0'));
}

class EtcdFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = testing::EtcdServer::Start();
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    etcd_ = std::move(e).value();
  }
  EtcdOptions Opts(const std::string& endpoint, int64_t ttl = 5, int64_t timeout_ms = 1000) {
    EtcdOptions o;
    o.endpoint = endpoint;
    o.lease_ttl_s = ttl;
    o.request_timeout_ms = timeout_ms;
    return o;
  }
  std::unique_ptr<EtcdMetadataStore> Connect(const EtcdOptions& o) {
    auto s = EtcdMetadataStore::Connect(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  int EtcdPort() const { return std::stoi(etcd_->endpoint().substr(etcd_->endpoint().rfind(':') + 1)); }

  std::unique_ptr<testing::EtcdServer> etcd_;
};

TEST_F(EtcdFaultTest, KeysLiveWhileKeptAliveAndGoWithTheirOwner) {
  auto reader = Connect(Opts(etcd_->endpoint()));
  ASSERT_TRUE(reader);
  {
    auto owner = Connect(Opts(etcd_->endpoint(), 2));
    ASSERT_TRUE(owner);
    ASSERT_TRUE(owner->Put("k/alive", "x").ok());
    std::this_thread::sleep_for(2600ms);  // longer than the TTL
    EXPECT_TRUE(reader->Get("k/alive").ok()) << "keepalive should hold the lease";
  }
  // The destructor revoked the lease.
  EXPECT_EQ(reader->Get("k/alive").status().code(), StatusCode::kNotFound);
}

TEST_F(EtcdFaultTest, UnreachableEtcdIsUnavailable) {
  EtcdOptions o = Opts("127.0.0.1:" + std::to_string(testing::FreePort()), 5, 500);
  auto s = EtcdMetadataStore::Connect(o);
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable) << s.status().ToString();
  EXPECT_EQ(EtcdMetadataStore::Connect(EtcdOptions{"nonsense", 5, 100}).status().code(),
            StatusCode::kInvalidArgument);
}

// An etcd that accepts and never answers: Connect fails within its timeout.
TEST_F(EtcdFaultTest, SilentEtcdIsUnavailableWithinTheTimeout) {
  testing::SilentServer silent;
  auto t0 = Clock::now();
  auto s = EtcdMetadataStore::Connect(Opts(silent.endpoint(), 5, 500));
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable) << s.status().ToString();
  EXPECT_LT(SecondsSince(t0), 1.2);
}

// Puts hang (the proxy holds them); meanwhile Get and Remove on the same
// handle answer at once and the keep-alive holds the session lease well past
// its TTL: no lock is held across a network call.
TEST_F(EtcdFaultTest, AHungCallStarvesNothing) {
  testing::StallProxy proxy(EtcdPort());
  auto store = Connect(Opts(proxy.endpoint(), 2, 3000));
  auto direct = Connect(Opts(etcd_->endpoint()));
  ASSERT_TRUE(store && direct);
  ASSERT_TRUE(store->Put("s/k1", "held").ok());
  ASSERT_TRUE(store->Put("s/k0", "to remove").ok());
  proxy.Stall("/v3/kv/put");
  std::atomic<bool> put_returned{false};
  Status hung;
  std::thread putter([&] {
    hung = store->Put("s/k2", "hangs");
    put_returned.store(true);
  });
  std::this_thread::sleep_for(200ms);
  auto t0 = Clock::now();
  EXPECT_TRUE(store->Remove("s/k0").ok());
  EXPECT_TRUE(store->Get("s/k1").ok());
  EXPECT_LT(SecondsSince(t0), 0.5) << "Remove and Get waited behind the hung Put";
  EXPECT_FALSE(put_returned.load());
  std::this_thread::sleep_for(2500ms);  // past the 2 s TTL: only the keep-alive keeps s/k1
  EXPECT_TRUE(direct->Get("s/k1").ok()) << "the session lease expired while a Put hung";
  putter.join();
  EXPECT_EQ(hung.code(), StatusCode::kUnavailable) << hung.ToString();
  EXPECT_EQ(direct->Get("s/k2").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->lease_renewals(), 0);
  EXPECT_GE(proxy.stalled(), 1);
  // The failed Put is not re-put later by a lease renewal.
  proxy.Stall("");
  EXPECT_TRUE(store->Put("s/k3", "after").ok());
}

// With etcd hung, registering memory with the transfer engine (which
// publishes a descriptor) fails within the timeout instead of blocking.
TEST_F(EtcdFaultTest, RegisterLocalMemoryWithAHungEtcdFailsInTime) {
  testing::StallProxy proxy(EtcdPort());
  auto store = Connect(Opts(proxy.endpoint(), 5, 800));
  ASSERT_TRUE(store);
  EngineOptions eo;
  eo.transports = "self,sm";
  auto engine = TransferEngine::Create(eo, std::shared_ptr<MetadataStore>(std::move(store)));
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  std::vector<char> mem(1 << 20);
  proxy.Stall("*");
  auto t0 = Clock::now();
  Status s = (*engine)->RegisterLocalMemory("hung/seg", mem.data(), mem.size());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_LT(SecondsSince(t0), 2.0);
  proxy.Stall("");
  EXPECT_TRUE((*engine)->RegisterLocalMemory("hung/seg", mem.data(), mem.size()).ok())
      << "a failed registration must leave nothing behind";
}

// etcd is SIGSTOPped for 2 s under a load of Puts and Gets, then continued:
// every call returns within its timeout (+ margin), calls succeed again after
// SIGCONT without a new handle, and the session's keys are there.
TEST_F(EtcdFaultTest, StoppedEtcdUnderLoadThenContinued) {
  auto store = Connect(Opts(etcd_->endpoint(), 3, 500));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->Put("load/session", "mine").ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ok_calls{0}, failed_calls{0};
  std::atomic<double> slowest{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 2; ++t) {
    load.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        auto t0 = Clock::now();
        Status s = (i % 2 ? store->Get("load/session").status() : store->Put("load/" + std::to_string(t), "v"));
        const double secs = SecondsSince(t0);
        double prev = slowest.load();
        while (secs > prev && !slowest.compare_exchange_weak(prev, secs)) {
        }
        (s.ok() ? ok_calls : failed_calls).fetch_add(1);
        if (!s.ok()) {
          EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
        }
        std::this_thread::sleep_for(20ms);
      }
    });
  }
  std::this_thread::sleep_for(300ms);
  etcd_->Signal(SIGSTOP);
  std::this_thread::sleep_for(2000ms);
  const int failed_while_stopped = failed_calls.load();
  etcd_->Signal(SIGCONT);
  // Recovered: calls succeed again on the same handle.
  bool recovered = false;
  for (int i = 0; i < 50 && !recovered; ++i) {
    std::this_thread::sleep_for(100ms);
    recovered = store->Put("load/after", "v").ok();
  }
  stop.store(true);
  for (auto& t : load) t.join();
  EXPECT_GT(failed_while_stopped, 0);
  EXPECT_TRUE(recovered);
  EXPECT_LT(slowest.load(), 0.5 + 0.7) << "a call outlived its 500 ms timeout";
  EXPECT_GT(ok_calls.load(), 0);
  // The session key survived (or was re-put if the lease was lost meanwhile).
  bool present = false;
  for (int i = 0; i < 40 && !present; ++i) {
    present = store->Get("load/session").ok();
    if (!present) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(present);
}

// The session lease is revoked behind the handle's back: the keep-alive
// finds it gone, takes a new lease and puts the session's keys again.
TEST_F(EtcdFaultTest, SessionKeysComeBackAfterTheLeaseIsLost) {
  auto store = Connect(Opts(etcd_->endpoint(), 2, 1000));
  auto reader = Connect(Opts(etcd_->endpoint()));
  ASSERT_TRUE(store && reader);
  ASSERT_TRUE(store->Put("lost/a", "1").ok());
  ASSERT_TRUE(store->Put("lost/b", "2").ok());
  const LeaseId old = store->session_lease();
  ASSERT_TRUE(reader->RevokeLease(old).ok());
  EXPECT_EQ(reader->Get("lost/a").status().code(), StatusCode::kNotFound);
  bool back = false;
  for (int i = 0; i < 50 && !back; ++i) {
    std::this_thread::sleep_for(100ms);
    back = reader->Get("lost/a").ok() && reader->Get("lost/b").ok();
  }
  EXPECT_TRUE(back);
  EXPECT_NE(store->session_lease(), old);
  EXPECT_EQ(store->lease_renewals(), 1);
  EXPECT_EQ(reader->GetEntry("lost/a")->lease, store->session_lease());
}

// A watcher keeps watching across an etcd restart and sees what changed
// after it, with no event lost or repeated.
TEST_F(EtcdFaultTest, WatchResumesAcrossAnEtcdRestart) {
  auto store = Connect(Opts(etcd_->endpoint()));
  ASSERT_TRUE(store);
  std::mutex mu;
  std::vector<WatchEvent> events;
  auto w = store->WatchPrefix("r/", 0, [&](const WatchEvent& ev) {
    std::lock_guard lock(mu);
    events.push_back(ev);
  });
  ASSERT_TRUE(w.ok());
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(store->CompareAndSwap("r/1", 0, "before", 0).ok());
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(etcd_->Restart().ok());
  // The handle reaches the restarted etcd without being recreated.
  Status put;
  for (int i = 0; i < 50; ++i) {
    put = store->CompareAndSwap("r/2", 0, "after", 0).status();
    if (put.ok()) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(put.ok()) << put.ToString();
  ASSERT_TRUE(store->Remove("r/1").ok());
  for (int i = 0; i < 100; ++i) {
    {
      std::lock_guard lock(mu);
      if (events.size() >= 3) break;
    }
    std::this_thread::sleep_for(100ms);
  }
  std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kv.value, "before");
  EXPECT_EQ(events[1].kv.value, "after");
  EXPECT_EQ(events[2].type, WatchEventType::kDelete);
}

// A watcher starting from history etcd compacted away is told to resync.
TEST_F(EtcdFaultTest, CompactedHistoryGivesAReset) {
  auto store = Connect(Opts(etcd_->endpoint()));
  ASSERT_TRUE(store);
  Result<int64_t> first = store->CompareAndSwap("c/a", 0, "1", 0);
  ASSERT_TRUE(first.ok());
  Result<int64_t> last = store->CompareAndSwap("c/a", *first, "2", 0);
  ASSERT_TRUE(last.ok());
  auto ep = ParseHttpEndpoint(etcd_->endpoint()).value();
  ASSERT_TRUE(HttpPost(ep, "/v3/kv/compaction", "{\"revision\":\"" + std::to_string(*last) + "\"}", 2000).ok());
  std::mutex mu;
  std::vector<WatchEvent> events;
  auto w = store->WatchPrefix("c/", *first, [&](const WatchEvent& ev) {
    std::lock_guard lock(mu);
    events.push_back(ev);
  });
  ASSERT_TRUE(w.ok());
  for (int i = 0; i < 50; ++i) {
    {
      std::lock_guard lock(mu);
      if (!events.empty()) break;
    }
    std::this_thread::sleep_for(100ms);
  }
  std::lock_guard lock(mu);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].type, WatchEventType::kReset);
  EXPECT_EQ(events[0].revision, *last);
}

}  // namespace
}  // namespace crescent::transfer
