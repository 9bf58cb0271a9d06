// EtcdMetadataStore: a MetadataStore in etcd (3.4+), spoken through its v3
// HTTP/JSON gateway (etcd_client.h).
//
// Every key this handle Put()s hangs on one session lease of lease_ttl_s
// seconds, which a background thread keeps alive (every TTL/3, each attempt
// bounded by min(request timeout, TTL/3), retried every 250 ms while it fails).
// If the process dies the lease expires and its keys vanish; if the lease was
// lost (etcd restarted, a long pause), the thread grants a new one and puts
// the session's keys again (keys put or removed meanwhile settle to their
// latest state; re-puts that fail are retried after later keep-alives). The
// destructor revokes the lease, so they go at once. A Put that finds the
// session lease gone waits for the new one, so it can take up to twice the
// request timeout.
//
// No lock is held across a network call: a call that hangs on a silent etcd
// delays only its caller (until the request timeout), never Put, Remove or the
// keep-alive on other threads. A recovering etcd is used again by the next
// call (one connection per request).
//
// Watches run on a thread each: a stream that breaks (etcd restarted) is
// reopened from the revision after the last event delivered; if etcd compacted
// that history, the watcher gets kReset and goes on from the compaction point.
//
// Ownership: owns the keep-alive thread and its watches' threads (a Watch must
// not outlive its store). Thread-safety: all methods from any thread. Locks:
// mutex_ guards the session state only (a leaf; never held across I/O).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "base/thread_annotations.h"
#include "transfer/etcd_client.h"
#include "transfer/metadata_store.h"

namespace crescent::transfer {

struct EtcdOptions {
  std::string endpoint = "127.0.0.1:2379";  // host:port of an etcd client URL
  int64_t lease_ttl_s = 5;
  int64_t request_timeout_ms = 3000;
};

class EtcdMetadataStore final : public MetadataStore {
 public:
  // Grants the session lease; Unavailable when etcd cannot be reached in time.
  static Result<std::unique_ptr<EtcdMetadataStore>> Connect(const EtcdOptions& options);
  ~EtcdMetadataStore() override;

  Status Put(std::string_view key, std::string_view value) override;
  Result<std::string> Get(std::string_view key) override;
  Status Remove(std::string_view key) override;
  Result<KeyValue> GetEntry(std::string_view key) override;
  Result<ListResult> List(std::string_view prefix) override;
  Result<int64_t> CompareAndSwap(std::string_view key, int64_t expected_mod_revision, std::string_view value,
                                 LeaseId lease) override;
  Status CompareAndDelete(std::string_view key, int64_t expected_mod_revision) override;
  Result<LeaseId> GrantLease(int64_t ttl_s) override;
  Result<int64_t> KeepAliveLease(LeaseId lease) override;
  Status RevokeLease(LeaseId lease) override;
  Result<std::unique_ptr<Watch>> WatchPrefix(std::string_view prefix, int64_t from_revision,
                                             WatchCallback callback) override;

  LeaseId session_lease() const;
  // Times the session lease was found lost and granted anew (for tests).
  int64_t lease_renewals() const;

 private:
  struct Owned {
    std::string value;
    uint64_t generation = 0;
  };
  EtcdMetadataStore(EtcdOptions options, EtcdClient client);
  void KeepAliveLoop();
  // Grants a new session lease and re-puts the owned keys (keep-alive thread).
  void Renew();
  // Re-puts keys whose re-put failed during a renewal (keep-alive thread).
  void RetryUnsynced();

  const EtcdOptions options_;
  const EtcdClient client_;
  // The keep-alive's own client: shorter timeout, so it always retries in time.
  const EtcdClient keepalive_client_;

  mutable Mutex mutex_;
  LeaseId lease_ GUARDED_BY(mutex_) = 0;
  std::map<std::string, Owned, std::less<>> owned_ GUARDED_BY(mutex_);
  uint64_t next_generation_ GUARDED_BY(mutex_) = 1;
  bool renewing_ GUARDED_BY(mutex_) = false;
  std::set<std::string, std::less<>> touched_while_renewing_ GUARDED_BY(mutex_);
  std::set<std::string, std::less<>> unsynced_ GUARDED_BY(mutex_);  // re-puts that failed, retried
  int64_t renewals_ GUARDED_BY(mutex_) = 0;
  bool renew_now_ GUARDED_BY(mutex_) = false;
  bool stop_ GUARDED_BY(mutex_) = false;
  CondVar cv_;
  std::thread keepalive_;
};

}  // namespace crescent::transfer
