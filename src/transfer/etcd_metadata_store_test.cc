// EtcdMetadataStore against a real etcd the test starts on 127.0.0.1.
#include "transfer/etcd_metadata_store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "transfer/base64.h"
#include "transfer/in_process_metadata_store.h"
#include "transfer/test_support.h"

namespace crescent::transfer {
namespace {

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

TEST(InProcessMetadataStoreTest, PutGetRemove) {
  InProcessMetadataStore s;
  EXPECT_EQ(s.Get("k").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(s.Put("k", "v").ok());
  EXPECT_EQ(*s.Get("k"), "v");
  ASSERT_TRUE(s.Remove("k").ok());
  EXPECT_EQ(s.Get("k").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(s.Remove("k").ok());
}

class EtcdTest : public ::testing::Test {
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
  EtcdOptions Opts(int64_t ttl = 5) {
    EtcdOptions o;
    o.endpoint = etcd_->endpoint();
    o.lease_ttl_s = ttl;
    return o;
  }
  static testing::EtcdServer* etcd_;
};
testing::EtcdServer* EtcdTest::etcd_ = nullptr;

TEST_F(EtcdTest, PutGetRemoveAcrossHandles) {
  auto a = EtcdMetadataStore::Connect(Opts());
  auto b = EtcdMetadataStore::Connect(Opts());
  ASSERT_TRUE(a.ok() && b.ok());
  std::string binary("v\0\x01\xfe", 4);
  ASSERT_TRUE((*a)->Put("crescent/test/k1", binary).ok());
  auto got = (*b)->Get("crescent/test/k1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, binary);
  ASSERT_TRUE((*a)->Put("crescent/test/k1", "second").ok());
  EXPECT_EQ(*(*b)->Get("crescent/test/k1"), "second");
  EXPECT_EQ((*b)->Get("crescent/test/none").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE((*a)->Remove("crescent/test/k1").ok());
  EXPECT_EQ((*b)->Get("crescent/test/k1").status().code(), StatusCode::kNotFound);
}

TEST_F(EtcdTest, KeysLiveWhileKeptAliveAndGoWithTheirOwner) {
  auto reader = EtcdMetadataStore::Connect(Opts());
  ASSERT_TRUE(reader.ok());
  {
    auto owner = EtcdMetadataStore::Connect(Opts(2));
    ASSERT_TRUE(owner.ok());
    ASSERT_TRUE((*owner)->Put("crescent/test/alive", "x").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(2600));  // longer than the TTL
    EXPECT_TRUE((*reader)->Get("crescent/test/alive").ok()) << "keepalive should hold the lease";
  }
  // The destructor revoked the lease.
  EXPECT_EQ((*reader)->Get("crescent/test/alive").status().code(), StatusCode::kNotFound);
}

TEST_F(EtcdTest, UnreachableEtcdIsUnavailable) {
  EtcdOptions o;
  o.endpoint = "127.0.0.1:" + std::to_string(testing::FreePort());
  o.request_timeout_ms = 500;
  auto s = EtcdMetadataStore::Connect(o);
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable) << s.status().ToString();
  EXPECT_EQ(EtcdMetadataStore::Connect(EtcdOptions{"nonsense", 5, 100}).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace crescent::transfer
