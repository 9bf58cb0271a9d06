#include "server/instance_registry.h"

#include <unistd.h>

#include <boost/json.hpp>

#include "base/logging.h"

namespace crescent::server {

Status RegisterInstance(transfer::MetadataStore& registry, const InstanceRecord& record) {
  boost::json::object o{{"role", record.role}, {"kv", record.kv_address}, {"pid", static_cast<int64_t>(::getpid())}};
  return registry.Put(std::string(kInstancePrefix) + record.role + "/" + record.kv_address, boost::json::serialize(o));
}

Result<InstanceRecord> ParseInstanceRecord(std::string_view value) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(value, ec);
  const boost::json::object* o = ec ? nullptr : v.if_object();
  if (o == nullptr) return InvalidArgument("an instance record is not a JSON object");
  const boost::json::value* role = o->if_contains("role");
  const boost::json::value* addr = o->if_contains("kv");
  if (role == nullptr || !role->is_string() || (role->get_string() != "prefill" && role->get_string() != "decode")) {
    return InvalidArgument("an instance record's role is not \"prefill\" or \"decode\"");
  }
  if (addr == nullptr || !addr->is_string() || addr->get_string().empty() ||
      addr->get_string().find(':') == boost::json::string::npos) {
    return InvalidArgument("an instance record's kv is not a host:port string");
  }
  return InstanceRecord{std::string(role->get_string()), std::string(addr->get_string())};
}

Result<std::vector<InstanceRecord>> ListInstances(transfer::MetadataStore& registry) {
  ASSIGN_OR_RETURN(transfer::ListResult listed, registry.List(kInstancePrefix));
  std::vector<InstanceRecord> out;
  for (const auto& kv : listed.kvs) {
    Result<InstanceRecord> r = ParseInstanceRecord(kv.value);
    if (!r.ok()) {
      LOG_WARNING("instance registry: entry {} does not parse ({}): skipped", kv.key, r.status().message());
      continue;
    }
    out.push_back(std::move(*r));
  }
  return out;
}

}  // namespace crescent::server
