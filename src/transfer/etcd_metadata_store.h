// EtcdMetadataStore: a MetadataStore in etcd (3.4+), spoken through its v3
// HTTP/JSON gateway (/v3/kv/put, /v3/kv/range, /v3/kv/deleterange,
// /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke; keys and values
// base64).
//
// Every key this handle puts is attached to one lease of lease_ttl_s seconds
// that a background thread keeps alive (every TTL/3). If the process dies, the
// lease expires and its keys disappear; if the lease is lost (etcd restarted,
// a long pause), the thread grants a new one and puts the handle's keys again.
// The destructor revokes the lease, so the keys go at once.
//
// Ownership: owns the keepalive thread. Thread-safety: all methods from any
// thread. Locks: mutex_ serializes Put/Remove/lease renewal (it is held across
// their HTTP calls); Get takes no lock beyond reading the endpoint.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "transfer/http_client.h"
#include "transfer/metadata_store.h"

namespace crescent::transfer {

struct EtcdOptions {
  std::string endpoint = "127.0.0.1:2379";  // host:port of an etcd client URL
  int64_t lease_ttl_s = 5;
  int64_t request_timeout_ms = 3000;
};

class EtcdMetadataStore final : public MetadataStore {
 public:
  // Grants the lease; Unavailable when etcd cannot be reached.
  static Result<std::unique_ptr<EtcdMetadataStore>> Connect(const EtcdOptions& options);
  ~EtcdMetadataStore() override;

  Status Put(std::string_view key, std::string_view value) override;
  Result<std::string> Get(std::string_view key) override;
  Status Remove(std::string_view key) override;

  int64_t lease_id() const;

 private:
  EtcdMetadataStore(EtcdOptions options, HttpEndpoint endpoint);
  Result<std::string> Call(std::string_view target, std::string_view body) const;
  Result<int64_t> GrantLease() const;
  Status PutWithLease(std::string_view key, std::string_view value, int64_t lease) const;
  void KeepAliveLoop();

  const EtcdOptions options_;
  const HttpEndpoint endpoint_;

  mutable std::mutex mutex_;
  int64_t lease_ = 0;                                      // GUARDED_BY(mutex_)
  std::map<std::string, std::string, std::less<>> owned_;  // GUARDED_BY(mutex_)
  bool stop_ = false;                                      // GUARDED_BY(mutex_)
  std::condition_variable cv_;
  std::thread keepalive_;
};

}  // namespace crescent::transfer
