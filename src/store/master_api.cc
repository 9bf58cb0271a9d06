#include "store/master_api.h"

#include <chrono>

namespace crescent::store {

LocalMaster::LocalMaster(MasterOptions options, const Clock* clock) : master_(std::move(options), clock) {
  ticker_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stop_; })) master_.Tick();
  });
}

LocalMaster::~LocalMaster() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  ticker_.join();
}

#define CRESCENT_DEFINE(name)                                                    \
  Status LocalMaster::name(proto::name##Request& req, proto::name##Reply* reply) { \
    std::lock_guard lock(mu_);                                                   \
    req.mutable_header()->set_term(master_.term());                              \
    return master_.name(req, reply);                                             \
  }
CRESCENT_STORE_MASTER_RPCS(CRESCENT_DEFINE)
#undef CRESCENT_DEFINE

}  // namespace crescent::store
