// SegmentDirectory: a transfer::MetadataStore whose segment descriptors live
// in the store master, so a store needs no etcd for its transfer engines:
// a node's descriptor travels in its Mount (and again at every re-mount
// after a failover), and a reader's engine asks the master for the
// descriptors it opens (GetSegmentDescriptor).
//
// Put/Get/Remove of keys under the engine's segment prefix: Put and Remove
// act on this process's own descriptors (held here, sent by StoreNode's
// Mount); Get answers those, else asks the master. Other keys and the
// lease, compare-and-swap and watch calls are Unimplemented: use etcd where
// they are needed.
// Thread-safety: all methods from any thread.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/thread_annotations.h"
#include "store/master_api.h"
#include "transfer/metadata_store.h"

namespace crescent::store {

class SegmentDirectory final : public transfer::MetadataStore {
 public:
  explicit SegmentDirectory(std::shared_ptr<MasterApi> master, std::string prefix = "crescent/segments/");

  Status Put(std::string_view key, std::string_view value) override;
  Result<std::string> Get(std::string_view key) override;
  Status Remove(std::string_view key) override;
  Result<transfer::KeyValue> GetEntry(std::string_view key) override;
  Result<transfer::ListResult> List(std::string_view prefix) override;
  Result<int64_t> CompareAndSwap(std::string_view key, int64_t expected, std::string_view value,
                                 transfer::LeaseId lease) override;
  Status CompareAndDelete(std::string_view key, int64_t expected) override;
  Result<transfer::LeaseId> GrantLease(int64_t ttl_s) override;
  Result<int64_t> KeepAliveLease(transfer::LeaseId lease) override;
  Status RevokeLease(transfer::LeaseId lease) override;
  Result<std::unique_ptr<transfer::Watch>> WatchPrefix(std::string_view prefix, int64_t from_revision,
                                                       transfer::WatchCallback callback) override;

 private:
  std::shared_ptr<MasterApi> master_;
  const std::string prefix_;
  Mutex mu_;
  std::map<std::string, std::string, std::less<>> own_ GUARDED_BY(mu_);
};

}  // namespace crescent::store
