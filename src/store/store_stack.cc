#include "store/store_stack.h"

#include "store/remote_master.h"

namespace crescent::store {

Result<std::unique_ptr<StoreStack>> StoreStack::Create(StoreStackOptions options) {
  std::unique_ptr<StoreStack> s(new StoreStack());
  if (options.master == "local") {
    auto local = std::make_shared<LocalMaster>(options.local_master);
    s->local_ = local.get();
    s->master_ = std::move(local);
  } else {
    RemoteMasterOptions ro;
    ro.target = options.master;
    ro.timeout_ms = options.master_timeout_ms;
    ro.election_key = options.election_key;
    ASSIGN_OR_RETURN(auto rm, RemoteMaster::Connect(ro));
    s->master_ = std::move(rm);
  }
  s->directory_ = std::make_shared<SegmentDirectory>(s->master_, options.engine.metadata_prefix);
  ASSIGN_OR_RETURN(auto engine, transfer::TransferEngine::Create(options.engine, s->directory_));
  s->engine_ = std::move(engine);
  if (options.node) {
    options.node->fingerprint = options.client.fingerprint;
    ASSIGN_OR_RETURN(s->node_, StoreNode::Start(*options.node, s->master_, s->engine_));
  }
  ASSIGN_OR_RETURN(s->client_, Client::Create(options.client, s->master_, s->engine_, s->node_.get()));
  return s;
}

StoreStack::~StoreStack() {
  client_.reset();
  node_.reset();
  engine_.reset();
  directory_.reset();
  master_.reset();
}

}  // namespace crescent::store
