// InProcessMetadataStore: a MetadataStore held in this process's memory,
// shared by every component given the same instance (all-in-one deployments
// and tests), with etcd's semantics: store-wide revisions, leases that expire
// (a reaper thread deletes their keys), compare-and-swap, and watches that
// replay the last kHistory changes from a given revision (older ones: kReset).
// Put keys belong to the store itself: there is no per-handle session, so
// they live until removed or until the store is destroyed.
//
// Ownership: owns the reaper thread and one delivery thread per watch (a Watch
// must not outlive its store). Thread-safety: every method takes mutex_; a
// watcher's queue lock is taken under it (and nothing under that); callbacks
// run on the watch's thread with no lock held.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/thread_annotations.h"
#include "transfer/metadata_store.h"

namespace crescent::transfer {

class InProcessMetadataStore final : public MetadataStore {
 public:
  static constexpr size_t kHistory = 4096;

  InProcessMetadataStore();
  ~InProcessMetadataStore() override;

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

 private:
  class Watcher;
  struct Lease {
    int64_t ttl_s = 0;
    int64_t expires_ns = 0;
  };

  // Each records the change and hands it to watchers.
  int64_t PutLocked(std::string_view key, std::string_view value, LeaseId lease) REQUIRES(mutex_);
  void DeleteLocked(std::string_view key) REQUIRES(mutex_);
  void Publish(WatchEvent ev) REQUIRES(mutex_);
  Status CheckLeaseLocked(LeaseId lease) const REQUIRES(mutex_);
  void ReapLoop();
  void Unregister(Watcher* w);

  Mutex mutex_;
  CondVar cv_;
  int64_t revision_ GUARDED_BY(mutex_) = 1;
  std::map<std::string, KeyValue, std::less<>> kv_ GUARDED_BY(mutex_);
  std::map<LeaseId, Lease> leases_ GUARDED_BY(mutex_);
  LeaseId next_lease_ GUARDED_BY(mutex_) = 1;
  std::deque<WatchEvent> history_ GUARDED_BY(mutex_);  // the last kHistory changes
  std::vector<Watcher*> watchers_ GUARDED_BY(mutex_);
  bool stop_ GUARDED_BY(mutex_) = false;
  std::thread reaper_;
};

}  // namespace crescent::transfer
