// The prefill/decode instances of a cluster in etcd (docs/disaggregation.md):
// an instance registers one key on its session lease,
//   crescent/pd/instances/<role>/<kv address>  ->  {"role", "kv", "pid"}
// so a stopped instance's key goes at once (the lease is revoked) and a
// killed one's when its lease expires; the front lists the prefix.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "transfer/metadata_store.h"

namespace crescent::server {

inline constexpr const char* kInstancePrefix = "crescent/pd/instances/";

struct InstanceRecord {
  std::string role;        // "prefill" | "decode"
  std::string kv_address;  // host:port of its KvInstance service
};

Status RegisterInstance(transfer::MetadataStore& registry, const InstanceRecord& record);
// One entry's value: an error unless it is an object whose "role" is
// "prefill" or "decode" and whose "kv" is a non-empty host:port string.
Result<InstanceRecord> ParseInstanceRecord(std::string_view value);
// Entries that do not parse are skipped (logged).
Result<std::vector<InstanceRecord>> ListInstances(transfer::MetadataStore& registry);

}  // namespace crescent::server
