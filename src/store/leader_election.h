// LeaderElection: one leader among processes campaigning for `key` in a
// MetadataStore (etcd), by a transactional create under a lease, as Mooncake's
// master does. The leader's term is the revision its key was created at: it
// grows with every new leader, so replies stamped with it fence old leaders.
//
// A campaigner creates `key` = `value` under a lease of ttl_s if the key is
// absent; the winner keeps the lease alive (every ttl/3) and checks that the
// key is still its own. It is deposed (on_deposed) when the lease is lost, the
// key changes, or it cannot reach the store for ttl_s (it can no longer know
// it leads; nobody else can win before its lease expires either). Losers poll
// the key every ttl/3 and campaign again when it is gone. Stop() (and the
// destructor) revokes a held lease so a successor takes over at once.
//
// Callbacks run on the election's thread; they must not call Stop().
// Thread-safety: leader()/term() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/thread_annotations.h"
#include "transfer/metadata_store.h"

namespace crescent::store {

struct ElectionOptions {
  std::string key;
  std::string value;  // what followers read: the leader's address
  int64_t ttl_s = 5;
};

class LeaderElection {
 public:
  LeaderElection(std::shared_ptr<transfer::MetadataStore> store, ElectionOptions options,
                 std::function<void(uint64_t term)> on_elected, std::function<void()> on_deposed);
  ~LeaderElection();
  void Start();
  void Stop();

  bool leader() const { return term_.load() != 0; }
  uint64_t term() const { return term_.load(); }
  // True while leading and the lease is known to be alive: at most 2/3 of
  // the TTL after the last confirmation was sent (a third of the TTL is left
  // for clock drift and a slow reply). A leader must serve only while this
  // holds: once it fails, a successor may win as soon as the lease expires,
  // whatever the election thread is still waiting on.
  bool confirmed() const;

 private:
  void Run();
  bool Sleep(int64_t ms);  // false when stopping

  std::shared_ptr<transfer::MetadataStore> store_;
  const ElectionOptions options_;
  std::function<void(uint64_t)> on_elected_;
  std::function<void()> on_deposed_;
  std::atomic<uint64_t> term_{0};
  std::atomic<int64_t> confirmed_until_ns_{0};
  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace crescent::store
