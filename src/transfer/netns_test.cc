// The transfer engine between two hosts: two network namespaces joined by a
// veth pair that this test creates and deletes itself (10.213.x.0/24, private
// to the test). etcd runs in namespace A; a peer in namespace B hosts a
// segment; a client peer in namespace A checks READ and WRITE integrity over
// UCX TCP on the veth. No other address is ever a target.
// Skipped (not failed) where network namespaces cannot be created.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "transfer/test_support.h"

namespace crescent::transfer {
namespace {

using testing::Subprocess;

int Sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

class NetnsPair {
 public:
  NetnsPair() {
    std::string id = std::to_string(getpid() % 100000);
    ns_a_ = "crx" + id + "a";
    ns_b_ = "crx" + id + "b";
    veth_a_ = "vxa" + id;
    veth_b_ = "vxb" + id;
    int subnet = 1 + getpid() % 250;
    addr_a_ = "10.213." + std::to_string(subnet) + ".1";
    addr_b_ = "10.213." + std::to_string(subnet) + ".2";
  }
  // False when namespaces are not permitted here.
  bool Create() {
    if (Sh("ip netns add " + ns_a_) != 0) return false;
    created_ = true;
    if (Sh("ip netns add " + ns_b_) != 0) return false;
    return Sh("ip link add " + veth_a_ + " type veth peer name " + veth_b_) == 0 &&
           Sh("ip link set " + veth_a_ + " netns " + ns_a_) == 0 &&
           Sh("ip link set " + veth_b_ + " netns " + ns_b_) == 0 &&
           Sh("ip -n " + ns_a_ + " addr add " + addr_a_ + "/24 dev " + veth_a_) == 0 &&
           Sh("ip -n " + ns_b_ + " addr add " + addr_b_ + "/24 dev " + veth_b_) == 0 &&
           Sh("ip -n " + ns_a_ + " link set " + veth_a_ + " up") == 0 &&
           Sh("ip -n " + ns_b_ + " link set " + veth_b_ + " up") == 0 &&
           Sh("ip -n " + ns_a_ + " link set lo up") == 0 && Sh("ip -n " + ns_b_ + " link set lo up") == 0;
  }
  ~NetnsPair() {
    if (!created_) return;
    // Deleting the namespaces deletes the veth pair with them.
    Sh("ip netns del " + ns_a_);
    Sh("ip netns del " + ns_b_);
  }
  std::string ns_a_, ns_b_, veth_a_, veth_b_, addr_a_, addr_b_;
  bool created_ = false;
};

TEST(NetnsTest, TcpBetweenTwoNamespacesOverVeth) {
  // Fails (never skips) where it cannot run: the tests run as root (CI does).
  ASSERT_EQ(geteuid(), 0u) << "network namespaces need root: run the tests as root";
  NetnsPair net;
  ASSERT_TRUE(net.Create()) << "cannot create two network namespaces and a veth pair here (ip netns add, ip link "
                               "add, ip -n ...; in a chroot, / must be a mount point)";
  auto etcd = testing::EtcdServer::Start(net.addr_a_, net.ns_a_);
  ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
  const std::string ep = (*etcd)->endpoint();
  auto server = Subprocess::Start({"ip", "netns", "exec", net.ns_b_, CRESCENT_TRANSFER_PEER, "serve", "--etcd", ep,
                                   "--segment", "netns/b", "--size", std::to_string(72 << 20), "--seed", "21",
                                   "--transports", "tcp", "--net-devices", net.veth_b_});
  ASSERT_TRUE(server.ok());
  auto ready = (*server)->Expect("READY", 30000);
  ASSERT_TRUE(ready.ok()) << ready.status().ToString();
  auto client = Subprocess::Start({"ip", "netns", "exec", net.ns_a_, CRESCENT_TRANSFER_PEER, "client", "--etcd", ep,
                                   "--segment", "netns/b", "--seed", "21", "--transports", "tcp", "--net-devices",
                                   net.veth_a_});
  ASSERT_TRUE(client.ok());
  auto line = (*client)->ExpectVerdict(90000);
  ASSERT_TRUE(line.ok()) << line.status().ToString();
  EXPECT_EQ(line->rfind("PASS", 0), 0u) << *line;
  EXPECT_EQ((*client)->Wait(), 0);
  (*server)->WriteLine("QUIT");
  (*server)->Wait();
}

}  // namespace
}  // namespace crescent::transfer
