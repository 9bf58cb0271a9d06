// StoreStack: the pieces a process needs to use the KV store, built in the
// right order and torn down in the reverse one: the master connection
// (in-process with target "local", gRPC to host:port, or the leader found
// through etcd with "etcd://host:port"), a transfer engine whose segment
// descriptors travel through the master (SegmentDirectory, so no etcd is
// needed for bytes), optionally a StoreNode contributing memory and SSD, and
// a Client. `crescent store-node`, `store-cli`, `bench store` and the engine's
// store connector all start from here.
// Thread-safety: the members are thread-safe; the struct is built once.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/status.h"
#include "store/client.h"
#include "store/master_api.h"
#include "store/segment_directory.h"
#include "store/store_node.h"
#include "transfer/transfer_engine.h"

namespace crescent::store {

struct StoreStackOptions {
  std::string master = "local";  // local | host:port | etcd://host:port
  int64_t master_timeout_ms = 3000;
  std::string election_key = "crescent/store/leader";  // with etcd://: the masters' --election-key
  MasterOptions local_master;    // for "local"
  transfer::EngineOptions engine;
  std::optional<StoreNodeOptions> node;  // contribute memory (and SSD)
  ClientOptions client;
};

class StoreStack {
 public:
  static Result<std::unique_ptr<StoreStack>> Create(StoreStackOptions options);
  ~StoreStack();

  MasterApi& master() { return *master_; }
  transfer::TransferEngine& engine() { return *engine_; }
  StoreNode* node() { return node_.get(); }
  Client& client() { return *client_; }
  LocalMaster* local_master() { return local_; }  // null unless master == "local"

 private:
  StoreStack() = default;
  std::shared_ptr<MasterApi> master_;
  LocalMaster* local_ = nullptr;
  std::shared_ptr<SegmentDirectory> directory_;
  std::shared_ptr<transfer::TransferEngine> engine_;
  std::unique_ptr<StoreNode> node_;
  std::unique_ptr<Client> client_;
};

}  // namespace crescent::store
