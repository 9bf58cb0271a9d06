#include "store/master_api.h"
#include "base/thread_annotations.h"

#include <chrono>

namespace crescent::store {

LocalMaster::LocalMaster(MasterOptions options, const Clock* clock) : master_(std::move(options), clock) {
  ticker_ = std::thread([this] {
    MutexLock lock(mu_);
    while (!cv_.WaitFor(mu_, std::chrono::milliseconds(100), [&]() REQUIRES(mu_) { return stop_; })) master_.Tick();
  });
}

LocalMaster::~LocalMaster() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  ticker_.join();
}

#define CRESCENT_DEFINE(name)                                                    \
  Status LocalMaster::name(proto::name##Request& req, proto::name##Reply* reply) { \
    MutexLock lock(mu_);                                                   \
    req.mutable_header()->set_term(master_.term());                              \
    return master_.name(req, reply);                                             \
  }
CRESCENT_STORE_MASTER_RPCS(CRESCENT_DEFINE)
#undef CRESCENT_DEFINE

}  // namespace crescent::store
