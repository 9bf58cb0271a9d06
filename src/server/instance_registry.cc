#include "server/instance_registry.h"

#include <unistd.h>

#include <boost/json.hpp>

#include "base/logging.h"

namespace crescent::server {

Status RegisterInstance(transfer::MetadataStore& registry, const InstanceRecord& record) {
  boost::json::object o{{"role", record.role}, {"kv", record.kv_address}, {"pid", static_cast<int64_t>(::getpid())}};
  return registry.Put(std::string(kInstancePrefix) + record.role + "/" + record.kv_address, boost::json::serialize(o));
}

Result<std::vector<InstanceRecord>> ListInstances(transfer::MetadataStore& registry) {
  ASSIGN_OR_RETURN(transfer::ListResult listed, registry.List(kInstancePrefix));
  std::vector<InstanceRecord> out;
  for (const auto& kv : listed.kvs) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(kv.value, ec);
    const boost::json::object* o = ec ? nullptr : v.if_object();
    const boost::json::value* role = o ? o->if_contains("role") : nullptr;
    const boost::json::value* addr = o ? o->if_contains("kv") : nullptr;
    if (!role || !addr || !role->is_string() || !addr->is_string()) {
      LOG_WARNING("instance registry: entry {} does not parse: skipped", kv.key);
      continue;
    }
    out.push_back({std::string(role->get_string()), std::string(addr->get_string())});
  }
  return out;
}

}  // namespace crescent::server
