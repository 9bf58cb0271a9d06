// EtcdClient: typed calls to etcd's v3 HTTP/JSON gateway (etcd 3.4+):
// /v3/kv/{put,range,deleterange,txn}, /v3/lease/{grant,keepalive,revoke} and
// the /v3/watch stream. Keys and values travel base64-encoded; int64 fields
// come back as JSON strings. Each call is one HttpPost with the client's
// timeout (http_client.h), so a dead or hung etcd gives Unavailable in time.
// gRPC error codes in a failed reply map to Status codes (5 NotFound, 9
// FailedPrecondition, 14 Unavailable, ...).
//
// Values; thread-safe (no mutable state).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "transfer/http_client.h"
#include "transfer/metadata_store.h"

namespace crescent::transfer {

// The range end that selects every key starting with `prefix` ("\0" for "").
std::string PrefixRangeEnd(std::string_view prefix);

struct EtcdTxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // the store's revision after the transaction
};

class EtcdClient {
 public:
  EtcdClient(HttpEndpoint endpoint, int64_t timeout_ms) : endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms) {}

  const HttpEndpoint& endpoint() const { return endpoint_; }
  int64_t timeout_ms() const { return timeout_ms_; }

  // Returns the new revision.
  Result<int64_t> Put(std::string_view key, std::string_view value, LeaseId lease) const;
  // Keys in [key, range_end) (range_end empty: `key` alone).
  Result<ListResult> Range(std::string_view key, std::string_view range_end) const;
  Result<int64_t> Delete(std::string_view key) const;  // how many were deleted
  // Put when the key's mod_revision equals `expected` (0: absent).
  Result<EtcdTxnResult> CompareAndPut(std::string_view key, int64_t expected, std::string_view value,
                                      LeaseId lease) const;
  Result<EtcdTxnResult> CompareAndDelete(std::string_view key, int64_t expected) const;

  Result<LeaseId> LeaseGrant(int64_t ttl_s) const;
  // The remaining TTL; NotFound when the lease is gone.
  Result<int64_t> LeaseKeepAlive(LeaseId lease) const;
  Status LeaseRevoke(LeaseId lease) const;

  // Opens a watch stream on [prefix, PrefixRangeEnd(prefix)) from
  // `start_revision` (0: now). The body is newline-separated JSON messages;
  // ParseWatchMessage reads one.
  Result<std::unique_ptr<HttpStream>> OpenWatch(std::string_view prefix, int64_t start_revision) const;

 private:
  Result<std::string> Call(std::string_view target, std::string_view body) const;

  HttpEndpoint endpoint_;
  int64_t timeout_ms_;
};

// One message of a watch stream.
struct EtcdWatchMessage {
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;  // set when canceled because history was compacted
  int64_t header_revision = 0;
  std::vector<WatchEvent> events;
};
Result<EtcdWatchMessage> ParseWatchMessage(std::string_view line);

}  // namespace crescent::transfer
