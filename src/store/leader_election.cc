#include "store/leader_election.h"

#include <chrono>

#include "base/clock.h"
#include "base/logging.h"
#include "base/thread_annotations.h"

namespace crescent::store {

LeaderElection::LeaderElection(std::shared_ptr<transfer::MetadataStore> store, ElectionOptions options,
                               std::function<void(uint64_t)> on_elected, std::function<void()> on_deposed)
    : store_(std::move(store)),
      options_(std::move(options)),
      on_elected_(std::move(on_elected)),
      on_deposed_(std::move(on_deposed)) {}

LeaderElection::~LeaderElection() { Stop(); }

bool LeaderElection::confirmed() const {
  return term_.load() != 0 && MonotonicClock::Get().NowNanos() < confirmed_until_ns_.load();
}

void LeaderElection::Start() { thread_ = std::thread([this] { Run(); }); }

void LeaderElection::Stop() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

bool LeaderElection::Sleep(int64_t ms) {
  MutexLock lock(mu_);
  return !cv_.WaitFor(mu_, std::chrono::milliseconds(ms), [&]() REQUIRES(mu_) { return stop_; });
}

void LeaderElection::Run() {
  const int64_t period_ms = std::max<int64_t>(100, options_.ttl_s * 1000 / 3);
  transfer::LeaseId lease = 0;
  int64_t last_ok_ns = 0;
  auto now = [] { return MonotonicClock::Get().NowNanos(); };
  const int64_t confirm_ns = options_.ttl_s * 1'000'000'000 * 2 / 3;
  for (;;) {
    if (term_.load() == 0) {
      // Campaign: create the key if it is absent.
      const int64_t sent = now();
      Result<transfer::LeaseId> l = store_->GrantLease(options_.ttl_s);
      if (l.ok()) {
        Result<int64_t> won = store_->CompareAndSwap(options_.key, 0, options_.value, *l);
        if (won.ok()) {
          lease = *l;
          last_ok_ns = now();
          confirmed_until_ns_.store(sent + confirm_ns);
          term_.store(static_cast<uint64_t>(*won));
          LOG_INFO("election '{}': leader with term {}", options_.key, *won);
          on_elected_(static_cast<uint64_t>(*won));
        } else {
          store_->RevokeLease(*l).IgnoreError();  // not needed: the key is someone else's
        }
      }
      if (!Sleep(period_ms)) break;
      continue;
    }
    if (!Sleep(period_ms)) break;
    // Lead: keep the lease, check the key is still ours.
    const int64_t sent = now();
    Result<int64_t> ttl = store_->KeepAliveLease(lease);
    Result<transfer::KeyValue> kv = ttl.ok() ? store_->GetEntry(options_.key) : Result<transfer::KeyValue>(ttl.status());
    bool deposed = false;
    if (kv.ok()) {
      last_ok_ns = now();
      deposed = kv->create_revision != static_cast<int64_t>(term_.load()) || kv->lease != lease;
      if (!deposed) confirmed_until_ns_.store(sent + confirm_ns);
    } else if (kv.status().code() == StatusCode::kNotFound) {
      deposed = true;
    } else if (now() - last_ok_ns > options_.ttl_s * 1'000'000'000) {
      deposed = true;  // cannot confirm the lease for a whole TTL
    }
    if (deposed) {
      LOG_WARNING("election '{}': no longer leader of term {}", options_.key, term_.load());
      term_.store(0);
      confirmed_until_ns_.store(0);
      lease = 0;
      on_deposed_();
    }
  }
  if (lease != 0) store_->RevokeLease(lease).IgnoreError();  // hand over at once; expiry covers a failure
  term_.store(0);
}

}  // namespace crescent::store
