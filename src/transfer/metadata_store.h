// MetadataStore: a small key-value service for what the cluster must agree
// on: segment descriptors, membership, leader election. Two implementations:
// InProcessMetadataStore (all-in-one, no service) and EtcdMetadataStore.
//
// The model is etcd's: every change bumps a store-wide revision; a key has the
// revision it was created at and the one it last changed at; keys may hang on
// a lease that expires unless kept alive, and then vanish.
//
// * Put/Get/Remove: keys owned by this handle (its session). They disappear
//   when the handle is destroyed or, for a networked store, when the owning
//   process dies (a session lease the handle keeps alive in the background; if
//   the service lost it, the handle takes a new one and puts its keys again).
// * GetEntry/List: reads with revisions.
// * CompareAndSwap/CompareAndDelete: one-key transactions on the revision a
//   key last changed at (0: the key is absent), the base of leader election.
//   Keys written this way hang on the lease given (0: none), never on the
//   session, so they are never re-put behind the caller's back.
// * GrantLease/KeepAliveLease/RevokeLease: leases the caller manages itself.
// * Watch: put and delete events under a prefix, in revision order, from a
//   given revision; a watcher that reconnects resumes where it stopped, and one
//   whose history is gone (compacted) gets a kReset event: List again.
//
// Every call ends within the implementation's request timeout: a dead, hung or
// slow service gives Unavailable, never a hang. No implementation holds a lock
// across a network call.
// Thread-safety: implementations are safe to call from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace crescent::transfer {

using LeaseId = int64_t;  // 0: no lease

// For CompareAndSwap: write whatever the key's state.
constexpr int64_t kAnyRevision = -1;

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  LeaseId lease = 0;
};

struct ListResult {
  std::vector<KeyValue> kvs;  // in key order
  int64_t revision = 0;       // the store's revision the list was read at
};

enum class WatchEventType {
  kPut,
  kDelete,  // kv.key and kv.mod_revision only
  kReset,   // history before `revision` is gone (events go on from it): List again, then trust events
};

struct WatchEvent {
  WatchEventType type = WatchEventType::kPut;
  KeyValue kv;
  int64_t revision = 0;  // of this change
};

// Called on the watch's own thread, one event at a time, in revision order.
using WatchCallback = std::function<void(const WatchEvent&)>;

// Destroying a Watch stops delivery; it waits for a callback in progress,
// unless called from that callback.
class Watch {
 public:
  virtual ~Watch() = default;
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // Creates or replaces `key`, owned by this handle's session.
  virtual Status Put(std::string_view key, std::string_view value) = 0;
  // NotFound when absent.
  virtual Result<std::string> Get(std::string_view key) = 0;
  // Removing an absent key is OK.
  virtual Status Remove(std::string_view key) = 0;

  virtual Result<KeyValue> GetEntry(std::string_view key) = 0;
  virtual Result<ListResult> List(std::string_view prefix) = 0;

  // Writes `value` under `lease` (0: none) if the key last changed at
  // `expected_mod_revision` (0: it must be absent; kAnyRevision: always).
  // Returns the new revision; FailedPrecondition when the comparison fails.
  virtual Result<int64_t> CompareAndSwap(std::string_view key, int64_t expected_mod_revision,
                                         std::string_view value, LeaseId lease) = 0;
  // Deletes the key if it last changed at `expected_mod_revision`;
  // FailedPrecondition when it did not (or is absent).
  virtual Status CompareAndDelete(std::string_view key, int64_t expected_mod_revision) = 0;

  // REQUIRES: ttl_s >= 1.
  virtual Result<LeaseId> GrantLease(int64_t ttl_s) = 0;
  // Refreshes the lease; returns its TTL. NotFound when it expired or was revoked.
  virtual Result<int64_t> KeepAliveLease(LeaseId lease) = 0;
  // Its keys go at once. Revoking an unknown lease is OK.
  virtual Status RevokeLease(LeaseId lease) = 0;

  // Events for keys starting with `prefix` with revision >= from_revision
  // (0: from now on).
  virtual Result<std::unique_ptr<Watch>> WatchPrefix(std::string_view prefix, int64_t from_revision,
                                                     WatchCallback callback) = 0;
};

}  // namespace crescent::transfer
