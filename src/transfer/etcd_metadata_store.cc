#include "transfer/etcd_metadata_store.h"

#include <boost/json.hpp>

#include <chrono>

#include "base/json.h"
#include "base/logging.h"
#include "transfer/base64.h"

namespace crescent::transfer {
namespace {

// etcd's gateway prints int64 fields as JSON strings.
int64_t IntField(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->value().is_string()) {
    try {
      return std::stoll(std::string(it->value().get_string()));
    } catch (const std::exception&) {
      return 0;
    }
  }
  if (it->value().is_int64()) return it->value().get_int64();
  return 0;
}

}  // namespace

Result<std::unique_ptr<EtcdMetadataStore>> EtcdMetadataStore::Connect(const EtcdOptions& options) {
  if (options.lease_ttl_s < 2) return InvalidArgument("etcd lease TTL must be >= 2 s");
  ASSIGN_OR_RETURN(HttpEndpoint endpoint, ParseHttpEndpoint(options.endpoint));
  std::unique_ptr<EtcdMetadataStore> store(new EtcdMetadataStore(options, std::move(endpoint)));
  ASSIGN_OR_RETURN(store->lease_, store->GrantLease());
  store->keepalive_ = std::thread([s = store.get()] { s->KeepAliveLoop(); });
  return store;
}

EtcdMetadataStore::EtcdMetadataStore(EtcdOptions options, HttpEndpoint endpoint)
    : options_(std::move(options)), endpoint_(std::move(endpoint)) {}

EtcdMetadataStore::~EtcdMetadataStore() {
  int64_t lease;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    lease = lease_;
  }
  cv_.notify_all();
  if (keepalive_.joinable()) keepalive_.join();
  boost::json::object req;
  req["ID"] = std::to_string(lease);
  Call("/v3/lease/revoke", boost::json::serialize(req)).status().IgnoreError();  // expiry covers a failure
}

int64_t EtcdMetadataStore::lease_id() const {
  std::lock_guard lock(mutex_);
  return lease_;
}

Result<std::string> EtcdMetadataStore::Call(std::string_view target, std::string_view body) const {
  return HttpPost(endpoint_, target, body, options_.request_timeout_ms);
}

Result<int64_t> EtcdMetadataStore::GrantLease() const {
  boost::json::object req;
  req["TTL"] = options_.lease_ttl_s;
  ASSIGN_OR_RETURN(std::string text, Call("/v3/lease/grant", boost::json::serialize(req)));
  ASSIGN_OR_RETURN(boost::json::value v, ParseJson(text, "etcd lease grant"));
  int64_t id = v.is_object() ? IntField(v.get_object(), "ID") : 0;
  if (id == 0) return Internal("etcd lease grant: no lease ID in " + text);
  return id;
}

Status EtcdMetadataStore::PutWithLease(std::string_view key, std::string_view value, int64_t lease) const {
  boost::json::object req;
  req["key"] = Base64Encode(key);
  req["value"] = Base64Encode(value);
  req["lease"] = std::to_string(lease);
  return Call("/v3/kv/put", boost::json::serialize(req)).status().WithContext("etcd put");
}

Status EtcdMetadataStore::Put(std::string_view key, std::string_view value) {
  std::lock_guard lock(mutex_);
  Status s = PutWithLease(key, value, lease_);
  if (s.ok()) owned_.insert_or_assign(std::string(key), std::string(value));
  return s;
}

Result<std::string> EtcdMetadataStore::Get(std::string_view key) {
  boost::json::object req;
  req["key"] = Base64Encode(key);
  Result<std::string> text = Call("/v3/kv/range", boost::json::serialize(req));
  if (!text.ok()) return text.status().WithContext("etcd get");
  ASSIGN_OR_RETURN(boost::json::value v, ParseJson(*text, "etcd range"));
  const boost::json::object* o = v.if_object();
  const boost::json::value* kvs = o ? o->if_contains("kvs") : nullptr;
  if (!kvs || !kvs->is_array() || kvs->get_array().empty()) {
    return NotFound("no metadata key '" + std::string(key) + "'");
  }
  const boost::json::value& kv = kvs->get_array().front();
  const boost::json::value* val = kv.is_object() ? kv.get_object().if_contains("value") : nullptr;
  if (!val) return std::string();  // etcd omits empty values
  if (!val->is_string()) return DataLoss("etcd range: value is not a string");
  return Base64Decode(std::string_view(val->get_string()));
}

Status EtcdMetadataStore::Remove(std::string_view key) {
  std::lock_guard lock(mutex_);
  auto it = owned_.find(key);
  if (it != owned_.end()) owned_.erase(it);
  boost::json::object req;
  req["key"] = Base64Encode(key);
  return Call("/v3/kv/deleterange", boost::json::serialize(req)).status().WithContext("etcd delete");
}

void EtcdMetadataStore::KeepAliveLoop() {
  const auto period = std::chrono::milliseconds(options_.lease_ttl_s * 1000 / 3);
  std::unique_lock lock(mutex_);
  while (!cv_.wait_for(lock, period, [&] { return stop_; })) {
    boost::json::object req;
    req["ID"] = std::to_string(lease_);
    Result<std::string> text = Call("/v3/lease/keepalive", boost::json::serialize(req));
    if (!text.ok()) {
      LOG_WARNING("etcd keepalive: {}", text.status().ToString());
      continue;  // etcd unreachable: try again next period
    }
    // {"result":{"ID":"..","TTL":".."}}; a lost lease comes back without a TTL.
    Result<boost::json::value> v = ParseJson(*text, "etcd keepalive");
    int64_t ttl = 0;
    if (v.ok() && v->is_object()) {
      const boost::json::value* r = v->get_object().if_contains("result");
      if (r && r->is_object()) ttl = IntField(r->get_object(), "TTL");
    }
    if (ttl > 0) continue;
    LOG_WARNING("etcd lease {} was lost; granting a new one and re-publishing {} keys", lease_, owned_.size());
    Result<int64_t> lease = GrantLease();
    if (!lease.ok()) continue;
    lease_ = *lease;
    for (const auto& [key, value] : owned_) {
      Status s = PutWithLease(key, value, lease_);
      if (!s.ok()) LOG_WARNING("etcd re-publish of '{}': {}", key, s.ToString());
    }
  }
}

}  // namespace crescent::transfer
