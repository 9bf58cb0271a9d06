#include "transfer/in_process_metadata_store.h"

#include <algorithm>
#include <chrono>

#include "base/clock.h"
#include "base/thread_annotations.h"

namespace crescent::transfer {
namespace {

int64_t Now() { return MonotonicClock::Get().NowNanos(); }

bool HasPrefix(std::string_view key, std::string_view prefix) { return key.substr(0, prefix.size()) == prefix; }

// A watcher's queue and delivery thread. Shared by the Watch handle, the store
// (which pushes events) and the thread itself, so a Watch destroyed from its
// own callback leaves nothing dangling.
struct WatchState {
  std::string prefix;
  WatchCallback callback;
  Mutex mutex;
  CondVar cv;
  std::deque<WatchEvent> queue GUARDED_BY(mutex);
  bool stop GUARDED_BY(mutex) = false;
  int64_t min_revision = 0;      // set under the store's mutex; live events below it are not delivered

  void Push(WatchEvent ev) {
    {
      MutexLock lock(mutex);
      queue.push_back(std::move(ev));
    }
    cv.NotifyOne();
  }

  void Run() {
    MutexLock lock(mutex);
    for (;;) {
      cv.Wait(mutex, [&]() REQUIRES(mutex) { return stop || !queue.empty(); });
      if (stop) return;
      WatchEvent ev = std::move(queue.front());
      queue.pop_front();
      lock.Unlock();
      callback(ev);
      lock.Lock();
    }
  }
};

}  // namespace

class InProcessMetadataStore::Watcher final : public Watch {
 public:
  Watcher(InProcessMetadataStore* store, std::shared_ptr<WatchState> state)
      : store_(store), state_(std::move(state)), thread_([s = state_] { s->Run(); }) {}
  ~Watcher() override {
    store_->Unregister(this);
    {
      MutexLock lock(state_->mutex);
      state_->stop = true;
    }
    state_->cv.NotifyAll();
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }
  WatchState& state() { return *state_; }

 private:
  InProcessMetadataStore* store_;
  std::shared_ptr<WatchState> state_;
  std::thread thread_;
};

InProcessMetadataStore::InProcessMetadataStore() : reaper_([this] { ReapLoop(); }) {}

InProcessMetadataStore::~InProcessMetadataStore() {
  {
    MutexLock lock(mutex_);
    stop_ = true;
  }
  cv_.NotifyAll();
  reaper_.join();
}

void InProcessMetadataStore::Publish(WatchEvent ev) {
  for (Watcher* w : watchers_) {
    if (HasPrefix(ev.kv.key, w->state().prefix) && ev.revision >= w->state().min_revision) w->state().Push(ev);
  }
  history_.push_back(std::move(ev));
  if (history_.size() > kHistory) history_.pop_front();
}

int64_t InProcessMetadataStore::PutLocked(std::string_view key, std::string_view value, LeaseId lease) {
  const int64_t rev = ++revision_;
  auto it = kv_.find(key);
  if (it == kv_.end()) {
    it = kv_.emplace(std::string(key), KeyValue{std::string(key), "", rev, rev, 0}).first;
  }
  it->second.value = std::string(value);
  it->second.mod_revision = rev;
  it->second.lease = lease;
  Publish(WatchEvent{WatchEventType::kPut, it->second, rev});
  return rev;
}

void InProcessMetadataStore::DeleteLocked(std::string_view key) {
  auto it = kv_.find(key);
  if (it == kv_.end()) return;
  const int64_t rev = ++revision_;
  WatchEvent ev{WatchEventType::kDelete, KeyValue{it->first, "", 0, rev, 0}, rev};
  kv_.erase(it);
  Publish(std::move(ev));
}

Status InProcessMetadataStore::CheckLeaseLocked(LeaseId lease) const {
  if (lease == 0) return Status::Ok();
  auto it = leases_.find(lease);
  if (it == leases_.end() || it->second.expires_ns <= Now()) {
    return NotFound("lease " + std::to_string(lease) + " not found");
  }
  return Status::Ok();
}

Status InProcessMetadataStore::Put(std::string_view key, std::string_view value) {
  MutexLock lock(mutex_);
  PutLocked(key, value, 0);
  return Status::Ok();
}

Result<std::string> InProcessMetadataStore::Get(std::string_view key) {
  ASSIGN_OR_RETURN(KeyValue kv, GetEntry(key));
  return std::move(kv.value);
}

Result<KeyValue> InProcessMetadataStore::GetEntry(std::string_view key) {
  MutexLock lock(mutex_);
  auto it = kv_.find(key);
  if (it == kv_.end()) return NotFound("no metadata key '" + std::string(key) + "'");
  return it->second;
}

Status InProcessMetadataStore::Remove(std::string_view key) {
  MutexLock lock(mutex_);
  DeleteLocked(key);
  return Status::Ok();
}

Result<ListResult> InProcessMetadataStore::List(std::string_view prefix) {
  MutexLock lock(mutex_);
  ListResult out;
  out.revision = revision_;
  for (auto it = kv_.lower_bound(prefix); it != kv_.end() && HasPrefix(it->first, prefix); ++it) {
    out.kvs.push_back(it->second);
  }
  return out;
}

Result<int64_t> InProcessMetadataStore::CompareAndSwap(std::string_view key, int64_t expected, std::string_view value,
                                                       LeaseId lease) {
  if (expected < kAnyRevision) return InvalidArgument("compare-and-swap: bad expected revision");
  MutexLock lock(mutex_);
  RETURN_IF_ERROR(CheckLeaseLocked(lease));
  auto it = kv_.find(key);
  const int64_t current = it == kv_.end() ? 0 : it->second.mod_revision;
  if (expected != kAnyRevision && current != expected) {
    return FailedPrecondition("compare-and-swap of '" + std::string(key) + "': it did not last change at revision " +
                              std::to_string(expected));
  }
  return PutLocked(key, value, lease);
}

Status InProcessMetadataStore::CompareAndDelete(std::string_view key, int64_t expected) {
  if (expected <= 0) return InvalidArgument("compare-and-delete: expected revision must be > 0");
  MutexLock lock(mutex_);
  auto it = kv_.find(key);
  if (it == kv_.end() || it->second.mod_revision != expected) {
    return FailedPrecondition("compare-and-delete of '" + std::string(key) + "': it did not last change at revision " +
                              std::to_string(expected));
  }
  DeleteLocked(key);
  return Status::Ok();
}

Result<LeaseId> InProcessMetadataStore::GrantLease(int64_t ttl_s) {
  if (ttl_s < 1) return InvalidArgument("lease TTL must be >= 1 s");
  MutexLock lock(mutex_);
  const LeaseId id = next_lease_++;
  leases_[id] = Lease{ttl_s, Now() + ttl_s * 1'000'000'000};
  cv_.NotifyAll();
  return id;
}

Result<int64_t> InProcessMetadataStore::KeepAliveLease(LeaseId lease) {
  MutexLock lock(mutex_);
  RETURN_IF_ERROR(CheckLeaseLocked(lease));
  Lease& l = leases_[lease];
  l.expires_ns = Now() + l.ttl_s * 1'000'000'000;
  return l.ttl_s;
}

Status InProcessMetadataStore::RevokeLease(LeaseId lease) {
  MutexLock lock(mutex_);
  if (leases_.erase(lease) == 0) return Status::Ok();
  std::vector<std::string> keys;
  for (const auto& [k, kv] : kv_) {
    if (kv.lease == lease) keys.push_back(k);
  }
  for (const std::string& k : keys) DeleteLocked(k);
  return Status::Ok();
}

void InProcessMetadataStore::ReapLoop() {
  MutexLock lock(mutex_);
  while (!stop_) {
    int64_t next = Now() + 1'000'000'000;
    std::vector<LeaseId> expired;
    const int64_t now = Now();
    for (const auto& [id, l] : leases_) {
      if (l.expires_ns <= now) {
        expired.push_back(id);
      } else {
        next = std::min(next, l.expires_ns);
      }
    }
    for (LeaseId id : expired) {
      leases_.erase(id);
      std::vector<std::string> keys;
      for (const auto& [k, kv] : kv_) {
        if (kv.lease == id) keys.push_back(k);
      }
      for (const std::string& k : keys) DeleteLocked(k);
    }
    cv_.WaitUntil(mutex_, std::chrono::steady_clock::now() +
                              std::chrono::nanoseconds(std::max<int64_t>(next - Now(), 1'000'000)));
  }
}

Result<std::unique_ptr<Watch>> InProcessMetadataStore::WatchPrefix(std::string_view prefix, int64_t from_revision,
                                                                   WatchCallback callback) {
  if (!callback) return InvalidArgument("watch without a callback");
  if (from_revision < 0) return InvalidArgument("watch: negative revision");
  auto state = std::make_shared<WatchState>();
  state->prefix = std::string(prefix);
  state->callback = std::move(callback);
  auto w = std::make_unique<Watcher>(this, state);
  MutexLock lock(mutex_);
  if (from_revision > 0 && from_revision <= revision_) {
    // The oldest change still in the history; anything before it is gone.
    const int64_t oldest = history_.empty() ? revision_ + 1 : history_.front().revision;
    if (from_revision < oldest && oldest > 2) {  // as etcd: the first revision still there
      state->Push(WatchEvent{WatchEventType::kReset, KeyValue{}, oldest});
    }
    for (const WatchEvent& ev : history_) {
      if (ev.revision >= from_revision && HasPrefix(ev.kv.key, prefix)) state->Push(ev);
    }
  }
  state->min_revision = from_revision;
  watchers_.push_back(w.get());
  return std::unique_ptr<Watch>(std::move(w));
}

void InProcessMetadataStore::Unregister(Watcher* w) {
  MutexLock lock(mutex_);
  watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), w), watchers_.end());
}

}  // namespace crescent::transfer
