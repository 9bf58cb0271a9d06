#include "transfer/in_process_metadata_store.h"

namespace crescent::transfer {

Status InProcessMetadataStore::Put(std::string_view key, std::string_view value) {
  std::lock_guard lock(mutex_);
  kv_.insert_or_assign(std::string(key), std::string(value));
  return Status::Ok();
}

Result<std::string> InProcessMetadataStore::Get(std::string_view key) {
  std::lock_guard lock(mutex_);
  auto it = kv_.find(key);
  if (it == kv_.end()) return NotFound("no metadata key '" + std::string(key) + "'");
  return it->second;
}

Status InProcessMetadataStore::Remove(std::string_view key) {
  std::lock_guard lock(mutex_);
  auto it = kv_.find(key);
  if (it != kv_.end()) kv_.erase(it);
  return Status::Ok();
}

}  // namespace crescent::transfer
