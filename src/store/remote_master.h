// RemoteMaster: MasterApi over gRPC to the leading `crescent store-master`.
//
// `target` is "host:port" (one master) or "etcd://host:port" (the leader is
// read from the election key in that etcd, and read again whenever a call
// finds no leader there). A call is retried, within its timeout, while the
// answer is Unavailable: a master that is down, restarting, not the leader,
// or that refused a stale term (the term in the trailing metadata is adopted
// first). Any other answer is returned as it is. Every call ends within
// timeout_ms.
// Thread-safety: all methods from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "base/thread_annotations.h"
#include "store/master_api.h"
#include "transfer/metadata_store.h"

namespace crescent::proto {
class StoreMaster;
}

namespace crescent::store {

struct RemoteMasterOptions {
  std::string target;
  int64_t timeout_ms = 3000;
  std::string election_key = "crescent/store/leader";
};

class RemoteMaster final : public MasterApi {
 public:
  static Result<std::unique_ptr<RemoteMaster>> Connect(const RemoteMasterOptions& options);
  ~RemoteMaster() override;

#define CRESCENT_DECLARE(name) Status name(proto::name##Request& req, proto::name##Reply* reply) override;
  CRESCENT_STORE_MASTER_RPCS(CRESCENT_DECLARE)
#undef CRESCENT_DECLARE

  uint64_t term() const { return term_.load(); }
  std::string leader() const;

  struct Channel;

 private:
  explicit RemoteMaster(RemoteMasterOptions options);
  // The channel to the current leader (discovered through etcd if needed).
  Result<std::shared_ptr<Channel>> Current();
  void Forget(const std::shared_ptr<Channel>& c);
  template <typename Req, typename Rep, typename Method>
  Status Call(const char* what, Req& req, Rep* reply, Method method);

  const RemoteMasterOptions options_;
  std::shared_ptr<transfer::MetadataStore> etcd_;  // null for a fixed address
  std::atomic<uint64_t> term_{0};
  mutable Mutex mu_;
  std::shared_ptr<Channel> channel_ GUARDED_BY(mu_);
};

}  // namespace crescent::store
