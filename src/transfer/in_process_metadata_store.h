// InProcessMetadataStore: a MetadataStore held in this process's memory, shared
// by every engine given the same instance (all-in-one deployments and tests).
// Keys do not outlive the store; there is no per-handle ownership beyond that.
// Thread-safety: all methods take mutex_.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "transfer/metadata_store.h"

namespace crescent::transfer {

class InProcessMetadataStore final : public MetadataStore {
 public:
  Status Put(std::string_view key, std::string_view value) override;
  Result<std::string> Get(std::string_view key) override;
  Status Remove(std::string_view key) override;

 private:
  std::mutex mutex_;
  std::map<std::string, std::string, std::less<>> kv_;  // GUARDED_BY(mutex_)
};

}  // namespace crescent::transfer
