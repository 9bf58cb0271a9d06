// MetadataStore: where segment descriptors are published and found by name.
//
// A key put through one store handle is owned by that handle: it disappears
// when the handle is destroyed or, for a networked store, when the owning
// process dies (etcd: a lease the handle keeps alive). Two implementations:
// InProcessMetadataStore (all-in-one, no service) and EtcdMetadataStore.
// Thread-safety: implementations are safe to call from any thread.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace crescent::transfer {

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;
  // Creates or replaces `key`, owned by this handle.
  virtual Status Put(std::string_view key, std::string_view value) = 0;
  // NotFound when absent; Unavailable when the service cannot be reached.
  virtual Result<std::string> Get(std::string_view key) = 0;
  // Removing an absent key is OK.
  virtual Status Remove(std::string_view key) = 0;
};

}  // namespace crescent::transfer
