#include "transfer/etcd_metadata_store.h"

#include <chrono>
#include <optional>
#include <vector>

#include "base/logging.h"
#include "base/thread_annotations.h"

namespace crescent::transfer {
namespace {

using std::chrono::milliseconds;

// A watch stream on its own thread. The thread holds the state by shared
// pointer, so a Watch destroyed from its own callback (the thread is then
// detached) leaves nothing dangling.
class EtcdWatch final : public Watch {
 public:
  struct State {
    State(EtcdClient c, std::string p, WatchCallback cb)
        : client(std::move(c)), prefix(std::move(p)), callback(std::move(cb)) {}
    EtcdClient client;
    std::string prefix;
    WatchCallback callback;
    Mutex mutex;
    CondVar cv;
    bool stop GUARDED_BY(mutex) = false;
    std::shared_ptr<HttpStream> stream GUARDED_BY(mutex);  // the open one
  };

  EtcdWatch(EtcdClient client, std::string prefix, int64_t from, WatchCallback callback)
      : state_(std::make_shared<State>(std::move(client), std::move(prefix), std::move(callback))) {
    thread_ = std::thread([s = state_, from] { Run(*s, from); });
  }

  ~EtcdWatch() override {
    {
      MutexLock lock(state_->mutex);
      state_->stop = true;
      if (state_->stream) state_->stream->Cancel();
    }
    state_->cv.NotifyAll();
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // destroyed from our own callback: the thread ends on its own
    } else {
      thread_.join();
    }
  }

 private:
  static bool Stopped(State& s) {
    MutexLock lock(s.mutex);
    return s.stop;
  }

  static void Backoff(State& s, int64_t ms) {
    MutexLock lock(s.mutex);
    s.cv.WaitFor(s.mutex, milliseconds(ms), [&]() REQUIRES(s.mutex) { return s.stop; });
  }

  static void Run(State& s, int64_t next) {
    int64_t backoff_ms = 100;
    while (!Stopped(s)) {
      Result<std::unique_ptr<HttpStream>> opened = s.client.OpenWatch(s.prefix, next);
      if (!opened.ok()) {
        LOG_DEBUG("etcd watch on '{}': {}", s.prefix, opened.status().ToString());
        Backoff(s, backoff_ms);
        backoff_ms = std::min<int64_t>(backoff_ms * 2, 2000);
        continue;
      }
      std::shared_ptr<HttpStream> stream = std::move(opened).value();
      {
        MutexLock lock(s.mutex);
        if (s.stop) return;
        s.stream = stream;
      }
      std::string buffer;
      bool reopen = false;
      while (!reopen) {
        Result<std::string> got = stream->ReadSome(1000);
        if (!got.ok()) {
          if (got.status().code() == StatusCode::kDeadlineExceeded) {
            if (Stopped(s)) break;
            continue;
          }
          break;  // closed, broken or cancelled: reopen (or stop)
        }
        buffer += *got;
        size_t nl;
        while (!reopen && (nl = buffer.find('\n')) != std::string::npos) {
          const std::string line = buffer.substr(0, nl);
          buffer.erase(0, nl + 1);
          if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
          Result<EtcdWatchMessage> m = ParseWatchMessage(line);
          if (!m.ok()) {
            LOG_WARNING("etcd watch on '{}': {}", s.prefix, m.status().ToString());
            reopen = true;
            break;
          }
          backoff_ms = 100;  // the stream works
          if (m->created && next == 0) next = m->header_revision + 1;
          if (m->canceled) {
            if (m->compact_revision > 0) {
              WatchEvent reset;
              reset.type = WatchEventType::kReset;
              reset.revision = m->compact_revision;
              if (Stopped(s)) return;
              s.callback(reset);
              next = m->compact_revision;
            }
            reopen = true;
            break;
          }
          for (const WatchEvent& ev : m->events) {
            if (Stopped(s)) return;
            s.callback(ev);
            next = ev.revision + 1;
          }
        }
      }
      {
        MutexLock lock(s.mutex);
        s.stream.reset();
      }
      Backoff(s, backoff_ms);
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 2000);
    }
  }

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<EtcdMetadataStore>> EtcdMetadataStore::Connect(const EtcdOptions& options) {
  if (options.lease_ttl_s < 2) return InvalidArgument("etcd lease TTL must be >= 2 s");
  if (options.request_timeout_ms < 1) return InvalidArgument("etcd request timeout must be >= 1 ms");
  ASSIGN_OR_RETURN(HttpEndpoint endpoint, ParseHttpEndpoint(options.endpoint));
  std::unique_ptr<EtcdMetadataStore> store(
      new EtcdMetadataStore(options, EtcdClient(endpoint, options.request_timeout_ms)));
  ASSIGN_OR_RETURN(const LeaseId lease, store->client_.LeaseGrant(options.lease_ttl_s));
  {
    MutexLock lock(store->mutex_);  // no other thread yet; for the analysis
    store->lease_ = lease;
  }
  store->keepalive_ = std::thread([s = store.get()] { s->KeepAliveLoop(); });
  return store;
}

EtcdMetadataStore::EtcdMetadataStore(EtcdOptions options, EtcdClient client)
    : options_(std::move(options)),
      client_(std::move(client)),
      keepalive_client_(client_.endpoint(),
                        std::max<int64_t>(1, std::min(options_.request_timeout_ms, options_.lease_ttl_s * 1000 / 3))) {}

EtcdMetadataStore::~EtcdMetadataStore() {
  LeaseId lease;
  {
    MutexLock lock(mutex_);
    stop_ = true;
    lease = lease_;
  }
  cv_.NotifyAll();
  if (keepalive_.joinable()) keepalive_.join();
  if (lease != 0) client_.LeaseRevoke(lease).IgnoreError();  // expiry covers a failure
}

LeaseId EtcdMetadataStore::session_lease() const {
  MutexLock lock(mutex_);
  return lease_;
}

int64_t EtcdMetadataStore::lease_renewals() const {
  MutexLock lock(mutex_);
  return renewals_;
}

Status EtcdMetadataStore::Put(std::string_view key, std::string_view value) {
  uint64_t generation;
  LeaseId lease;
  std::optional<Owned> previous;
  {
    MutexLock lock(mutex_);
    auto it = owned_.find(key);
    if (it != owned_.end()) previous = it->second;
    generation = next_generation_++;
    owned_.insert_or_assign(std::string(key), Owned{std::string(value), generation});
    if (renewing_) touched_while_renewing_.insert(std::string(key));  // re-put after the renewal
    lease = lease_;
  }
  Status s;
  for (int attempt = 0; attempt < 2; ++attempt) {
    s = client_.Put(key, value, lease).status();
    if (s.ok()) return s;
    if (s.code() != StatusCode::kNotFound || attempt > 0) break;
    // The session lease is gone: have the keep-alive thread take a new one.
    MutexLock lock(mutex_);
    renew_now_ = true;
    cv_.NotifyAll();
    cv_.WaitFor(mutex_, milliseconds(options_.request_timeout_ms),
                [&]() REQUIRES(mutex_) { return lease_ != lease || stop_; });
    if (lease_ == lease) break;
    lease = lease_;
  }
  MutexLock lock(mutex_);
  auto it = owned_.find(key);
  if (it != owned_.end() && it->second.generation == generation) {
    if (previous) {
      it->second = *previous;
    } else {
      owned_.erase(it);
    }
  }
  return s.WithContext("etcd put of '" + std::string(key) + "'");
}

Result<std::string> EtcdMetadataStore::Get(std::string_view key) {
  ASSIGN_OR_RETURN(KeyValue kv, GetEntry(key));
  return std::move(kv.value);
}

Result<KeyValue> EtcdMetadataStore::GetEntry(std::string_view key) {
  Result<ListResult> r = client_.Range(key, "");
  if (!r.ok()) return r.status().WithContext("etcd get of '" + std::string(key) + "'");
  if (r->kvs.empty()) return NotFound("no metadata key '" + std::string(key) + "'");
  return std::move(r->kvs.front());
}

Status EtcdMetadataStore::Remove(std::string_view key) {
  {
    MutexLock lock(mutex_);
    auto it = owned_.find(key);
    if (it != owned_.end()) owned_.erase(it);
    if (renewing_) touched_while_renewing_.insert(std::string(key));
  }
  return client_.Delete(key).status().WithContext("etcd delete of '" + std::string(key) + "'");
}

Result<ListResult> EtcdMetadataStore::List(std::string_view prefix) {
  Result<ListResult> r = client_.Range(prefix, PrefixRangeEnd(prefix));
  if (!r.ok()) return r.status().WithContext("etcd list of '" + std::string(prefix) + "'");
  return r;
}

Result<int64_t> EtcdMetadataStore::CompareAndSwap(std::string_view key, int64_t expected, std::string_view value,
                                                  LeaseId lease) {
  if (expected == kAnyRevision) return client_.Put(key, value, lease);
  if (expected < 0) return InvalidArgument("compare-and-swap: bad expected revision");
  ASSIGN_OR_RETURN(EtcdTxnResult t, client_.CompareAndPut(key, expected, value, lease));
  if (!t.succeeded) {
    return FailedPrecondition("compare-and-swap of '" + std::string(key) + "': it did not last change at revision " +
                              std::to_string(expected));
  }
  return t.revision;
}

Status EtcdMetadataStore::CompareAndDelete(std::string_view key, int64_t expected) {
  if (expected <= 0) return InvalidArgument("compare-and-delete: expected revision must be > 0");
  ASSIGN_OR_RETURN(EtcdTxnResult t, client_.CompareAndDelete(key, expected));
  if (!t.succeeded) {
    return FailedPrecondition("compare-and-delete of '" + std::string(key) + "': it did not last change at revision " +
                              std::to_string(expected));
  }
  return Status::Ok();
}

Result<LeaseId> EtcdMetadataStore::GrantLease(int64_t ttl_s) {
  if (ttl_s < 1) return InvalidArgument("lease TTL must be >= 1 s");
  return client_.LeaseGrant(ttl_s);
}

Result<int64_t> EtcdMetadataStore::KeepAliveLease(LeaseId lease) { return client_.LeaseKeepAlive(lease); }

Status EtcdMetadataStore::RevokeLease(LeaseId lease) { return client_.LeaseRevoke(lease); }

Result<std::unique_ptr<Watch>> EtcdMetadataStore::WatchPrefix(std::string_view prefix, int64_t from_revision,
                                                              WatchCallback callback) {
  if (!callback) return InvalidArgument("watch without a callback");
  if (from_revision < 0) return InvalidArgument("watch: negative revision");
  return std::unique_ptr<Watch>(new EtcdWatch(client_, std::string(prefix), from_revision, std::move(callback)));
}

void EtcdMetadataStore::Renew() {
  Result<LeaseId> lease = keepalive_client_.LeaseGrant(options_.lease_ttl_s);
  if (!lease.ok()) {
    LOG_WARNING("etcd: cannot grant a new session lease: {}", lease.status().ToString());
    return;
  }
  using Change = std::pair<std::string, std::optional<std::string>>;  // nullopt: delete
  std::vector<Change> pending;
  {
    MutexLock lock(mutex_);
    LOG_WARNING("etcd session lease {} was lost; lease {} replaces it, re-putting {} keys", lease_, *lease,
                owned_.size());
    lease_ = *lease;
    ++renewals_;
    renewing_ = true;
    touched_while_renewing_.clear();
    unsynced_.clear();
    for (const auto& [k, o] : owned_) pending.emplace_back(k, o.value);
  }
  cv_.NotifyAll();  // Puts waiting for the new lease
  std::set<std::string, std::less<>> failed;
  for (;;) {
    for (const auto& [k, v] : pending) {
      Status s = v ? keepalive_client_.Put(k, *v, *lease).status() : keepalive_client_.Delete(k).status();
      if (!s.ok()) {
        LOG_WARNING("etcd re-put of '{}': {}", k, s.ToString());
        failed.insert(k);
      } else {
        failed.erase(k);
      }
    }
    // Keys put or removed meanwhile: their current state wins over the
    // snapshot. Repeat until none changed during a round.
    MutexLock lock(mutex_);
    if (touched_while_renewing_.empty()) {
      renewing_ = false;
      unsynced_.insert(failed.begin(), failed.end());  // the keep-alive retries them
      return;
    }
    pending.clear();
    for (const std::string& k : touched_while_renewing_) {
      auto it = owned_.find(k);
      pending.emplace_back(k, it == owned_.end() ? std::nullopt : std::optional<std::string>(it->second.value));
    }
    touched_while_renewing_.clear();
  }
}

void EtcdMetadataStore::RetryUnsynced() {
  std::vector<std::pair<std::string, std::optional<std::string>>> todo;
  LeaseId lease;
  {
    MutexLock lock(mutex_);
    if (unsynced_.empty() || renewing_) return;
    for (const std::string& k : unsynced_) {
      auto it = owned_.find(k);
      todo.emplace_back(k, it == owned_.end() ? std::nullopt : std::optional<std::string>(it->second.value));
    }
    unsynced_.clear();
    renewing_ = true;  // Put/Remove meanwhile are settled below
    touched_while_renewing_.clear();
    lease = lease_;
  }
  std::set<std::string, std::less<>> failed;
  for (;;) {
    for (const auto& [k, v] : todo) {
      Status s = v ? keepalive_client_.Put(k, *v, lease).status() : keepalive_client_.Delete(k).status();
      if (s.ok()) {
        failed.erase(k);
      } else {
        failed.insert(k);
      }
    }
    MutexLock lock(mutex_);
    if (touched_while_renewing_.empty()) {
      renewing_ = false;
      unsynced_.insert(failed.begin(), failed.end());
      return;
    }
    todo.clear();
    for (const std::string& k : touched_while_renewing_) {
      auto it = owned_.find(k);
      todo.emplace_back(k, it == owned_.end() ? std::nullopt : std::optional<std::string>(it->second.value));
    }
    touched_while_renewing_.clear();
  }
}

void EtcdMetadataStore::KeepAliveLoop() {
  const auto period = milliseconds(options_.lease_ttl_s * 1000 / 3);
  const auto retry = milliseconds(250);
  bool failing = false;
  MutexLock lock(mutex_);
  for (;;) {
    cv_.WaitFor(mutex_, failing ? retry : period, [&]() REQUIRES(mutex_) { return stop_ || renew_now_; });
    if (stop_) return;
    bool renew = renew_now_;
    renew_now_ = false;
    const LeaseId lease = lease_;
    lock.Unlock();
    failing = false;
    if (!renew) {
      Result<int64_t> ttl = keepalive_client_.LeaseKeepAlive(lease);
      if (ttl.status().code() == StatusCode::kNotFound) {
        renew = true;
      } else if (!ttl.ok()) {
        LOG_WARNING("etcd keepalive: {}", ttl.status().ToString());
        failing = true;
      } else {
        RetryUnsynced();
      }
    }
    if (renew) {
      Renew();
      failing = session_lease() == lease;  // the grant failed: try again soon
    }
    lock.Lock();
  }
}

}  // namespace crescent::transfer
