// MasterApi: how store clients and nodes reach the master, whichever way it
// runs: LocalMaster (in this process: the all-in-one server, tests) or
// RemoteMaster (gRPC to the leader of a set of `crescent store-master`s).
// Both run the same Master (master.h); requests are the proto messages of
// proto/store.proto. An implementation stamps the request header's term and
// ends every call within its timeout with a Status: a dead or hung master is
// Unavailable or DeadlineExceeded, never a hang.
// Thread-safety: implementations are safe to call from any thread.
#pragma once

#include <memory>
#include <thread>

#include "base/clock.h"
#include "base/status.h"
#include "base/thread_annotations.h"
#include "proto/store.pb.h"
#include "store/master.h"

namespace crescent::store {

// X(name): one RPC, with proto::<name>Request and proto::<name>Reply.
#define CRESCENT_STORE_MASTER_RPCS(X) \
  X(PutStart)                         \
  X(PutEnd)                           \
  X(Get)                              \
  X(Exists)                           \
  X(Remove)                           \
  X(ReportBadReplica)                 \
  X(Mount)                            \
  X(Heartbeat)                        \
  X(Unmount)                          \
  X(GetSegmentDescriptor)             \
  X(Stat)

class MasterApi {
 public:
  virtual ~MasterApi() = default;
#define CRESCENT_DECLARE(name) virtual Status name(proto::name##Request& req, proto::name##Reply* reply) = 0;
  CRESCENT_STORE_MASTER_RPCS(CRESCENT_DECLARE)
#undef CRESCENT_DECLARE
};

// A Master in this process behind a mutex, ticked by its own thread every
// 100 ms. Its term is 1: there is no other master to fence.
class LocalMaster final : public MasterApi {
 public:
  explicit LocalMaster(MasterOptions options, const Clock* clock = &MonotonicClock::Get());
  ~LocalMaster() override;

#define CRESCENT_DECLARE(name) Status name(proto::name##Request& req, proto::name##Reply* reply) override;
  CRESCENT_STORE_MASTER_RPCS(CRESCENT_DECLARE)
#undef CRESCENT_DECLARE

  // Runs `fn` on the master under its lock (tests, metrics).
  template <typename Fn>
  auto With(Fn&& fn) {
    MutexLock lock(mu_);
    return fn(master_);
  }

 private:
  Mutex mu_;
  Master master_ GUARDED_BY(mu_);
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread ticker_;
};

}  // namespace crescent::store
