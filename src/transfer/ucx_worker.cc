#include "transfer/ucx_worker.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <chrono>
#include <utility>

#include "base/check.h"
#include "base/clock.h"
#include "base/logging.h"
#include "base/thread_annotations.h"
#include "transfer/ucx_context.h"

namespace crescent::transfer {
namespace {

// How long UCX gets to return the operations of force-closed endpoints (and
// to finish close requests) before the worker stops waiting: at shutdown, the
// worker is then destroyed, which releases whatever UCX still held.
constexpr int64_t kCloseNanos = 2'000'000'000;
// Bytes one item may post per turn of the loop. On shared memory a post is the
// copy itself, so this bounds how long a large entry can keep a small one
// (queued behind it on the same worker) waiting.
constexpr uint64_t kBurstBytes = 512 << 10;
// UCX operations this worker keeps in flight (posted, not yet called back).
// Beyond them a large entry waits its turn, so the bytes queued on a
// connection ahead of a newly started small entry stay bounded (a new entry
// always posts its first slice at once).
constexpr int kMaxInflightOps = 32;

int64_t Now() { return MonotonicClock::Get().NowNanos(); }

}  // namespace

// The wire-up probe of a new endpoint: a flush posted before any operation,
// which completes once the endpoint is connected. Heap-allocated, freed by its
// callback (which may come late, even from ucp_worker_destroy), so the
// endpoint detaches from it when it goes first.
struct UcxWorker::Probe {
  Endpoint* ep = nullptr;  // null once the endpoint is gone
};

struct UcxWorker::Endpoint {
  UcxWorker* worker = nullptr;
  std::string key;
  std::string owner;
  ucp_ep_h ep = nullptr;
  // No operation is posted before the wire-up completes: until then UCX
  // holds none of the callers' memory for this endpoint, so a peer that
  // dies or stops during wire-up costs a timeout, never a late write.
  bool connected = false;
  Probe* probe = nullptr;
  std::unordered_map<std::string, ucp_rkey_h> rkeys;  // by packed rkey bytes
  int running = 0;       // items using this endpoint
  int64_t last_use_ns = 0;
  bool broken = false;   // set by the error callback or a timeout
  Status reason;
  std::vector<Running*> want_flush;  // WRITE items whose slices are all posted
  bool close_started = false;
  bool close_issued = false;  // ucp_ep_close_nbx accepted it: UCX calls no handler of it after
  void* close_request = nullptr;
  int64_t close_deadline_ns = 0;
};

struct UcxWorker::Running {
  UcxWorker* worker = nullptr;
  std::unique_ptr<WorkItem> item;
  Endpoint* ep = nullptr;
  ucp_rkey_h rkey = nullptr;
  size_t next_slice = 0;  // slices before it are posted
  bool posted_all = false;  // every slice (and the flush after WRITEs) posted, or given up
  int outstanding = 0;  // UCX requests not yet called back
  Status error;
  bool expired = false;   // its deadline passed; its endpoint was force-closed
  bool reported = false;  // FinishPart called (the entry's outcome is known)
  int64_t expired_ns = 0;
};

// One ucp_ep_flush_nbx covering every WRITE item that finished posting on an
// endpoint during one turn of the loop (instead of one flush per entry).
struct UcxWorker::FlushGroup {
  std::vector<Running*> members;  // each holds one `outstanding` for the group
};

Status UcxWorker::Open() {
  ucp_worker_params_t params{};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = UCS_THREAD_MODE_SINGLE;  // only our thread touches it (signal is safe)
  ucp_worker_h worker = nullptr;
  ucs_status_t st = ucp_worker_create(context_, &params, &worker);
  if (st != UCS_OK) return UcxError("worker_create", st);
  int efd = -1;
  st = ucp_worker_get_efd(worker, &efd);
  ucp_worker_attr_t attr{};
  attr.field_mask = UCP_WORKER_ATTR_FIELD_ADDRESS;
  if (st == UCS_OK) st = ucp_worker_query(worker, &attr);
  if (st != UCS_OK) {
    ucp_worker_destroy(worker);
    return UcxError("worker setup", st);
  }
  std::string address(reinterpret_cast<const char*>(attr.address), attr.address_length);
  ucp_worker_release_address(worker, attr.address);
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, efd, &ev) != 0) {
    ucp_worker_destroy(worker);
    return Internal("epoll_ctl failed");
  }
  {
    MutexLock lock(queue_mutex_);
    worker_ = worker;
    efd_ = efd;
  }
  MutexLock lock(address_mutex_);
  address_ = std::move(address);
  return Status::Ok();
}

Result<std::unique_ptr<UcxWorker>> UcxWorker::Create(ucp_context_h context, WorkerOptions options) {
  std::unique_ptr<UcxWorker> w(new UcxWorker(context, std::move(options)));
  w->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (w->epoll_fd_ < 0) return Internal("epoll_create1 failed");
  RETURN_IF_ERROR(w->Open());
  w->thread_ = std::thread([p = w.get()] { p->Run(); });
  return w;
}

UcxWorker::UcxWorker(ucp_context_h context, WorkerOptions options)
    : context_(context), options_(std::move(options)) {}

UcxWorker::~UcxWorker() {
  stop_.store(true);
  if (thread_.joinable()) {
    {
      MutexLock lock(queue_mutex_);
      if (worker_) ucp_worker_signal(worker_);
    }
    thread_.join();
  }
  if (worker_) ucp_worker_destroy(worker_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  ReleaseAbandoned();
  abandoned_.clear();
}

std::string UcxWorker::address() const {
  MutexLock lock(address_mutex_);
  return address_;
}

void UcxWorker::Rebuild() {
  LOG_WARNING("transfer: worker {}: UCX kept operations of timed-out entries; rebuilding the worker to release them",
              options_.index);
  for (auto& [key, e] : pool_) DestroyEndpoint(*e);
  for (auto& e : closing_) DestroyEndpoint(*e);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, efd_, nullptr);
  ucp_worker_h old;
  {
    MutexLock lock(queue_mutex_);
    old = worker_;
    worker_ = nullptr;
  }
  ucp_worker_destroy(old);  // frees every request and endpoint it held
  pool_.clear();
  abandoned_.clear();
  ReleaseAbandoned();
  inflight_ops_ = 0;
  flush_pending_.clear();
  rebuilds_.fetch_add(1);
  Status s = Open();
  if (!s.ok()) {
    LOG_ERROR("transfer: worker {} cannot be rebuilt: {}; its entries will fail", options_.index, s.ToString());
    dead_ = true;
    return;
  }
  if (options_.on_address_change) options_.on_address_change();
}

void UcxWorker::Post(std::unique_ptr<WorkItem> item) {
  MutexLock lock(queue_mutex_);
  queue_.push_back(std::move(item));
  has_queued_.store(true, std::memory_order_release);
  if (worker_) ucp_worker_signal(worker_);  // null only while the worker thread rebuilds it
}

bool UcxWorker::DrainQueue() {
  if (!has_queued_.load(std::memory_order_acquire)) return false;
  std::deque<std::unique_ptr<WorkItem>> items;
  {
    MutexLock lock(queue_mutex_);
    items.swap(queue_);
    has_queued_.store(false, std::memory_order_relaxed);
  }
  for (auto& item : items) {
    if (dead_) {
      item->batch->FinishPart(item->entry, Unavailable("transfer worker is down"), Now());
      item->batch->ReleasePart(item->entry);
      continue;
    }
    Start(std::move(item));
  }
  return !items.empty();
}

void UcxWorker::Run() {
  int64_t last_progress = Now();
  int64_t stop_ns = -1;
  for (;;) {
    if (dead_) {  // no ucp worker: fail what comes until the engine goes
      DrainQueue();
      if (stop_.load()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    bool posted = poisoned_ ? false : DrainQueue();  // a worker to rebuild takes nothing new
    posted |= Pump();
    FlushEndpoints();
    unsigned progressed = ucp_worker_progress(worker_);
    progress_epoch_.fetch_add(1, std::memory_order_release);
    int64_t now = Now();
    Sweep(now);
    ReapEndpoints();
    if (poisoned_ && !stop_.load()) {
      // Everything still running fails now (it is released by the rebuild),
      // so the rebuild does not wait for other items' deadlines.
      for (auto& r : running_) {
        if (r->reported) continue;
        r->reported = true;
        r->posted_all = true;
        if (r->error.ok()) r->error = Unavailable("transfer worker is being rebuilt to release a dead peer's operations");
        r->item->batch->FinishPart(r->item->entry, r->error, now);
      }
      Rebuild();
      poisoned_ = false;
      continue;
    }
    if (stop_.load() && !has_queued_.load()) {
      if (running_.empty()) break;
      // Items still run: each ends by its deadline (Sweep force-closes its
      // endpoint), then UCX gets kCloseNanos to hand their operations back.
      bool all_reported = true;
      for (const auto& r : running_) all_reported &= r->reported;
      if (all_reported && stop_ns < 0) stop_ns = now;
      if (!all_reported) stop_ns = -1;
      if (stop_ns >= 0 && now - stop_ns > kCloseNanos) {
        LOG_WARNING("transfer: worker {} stops with {} items UCX has not returned; destroying the worker releases them",
                    options_.index, running_.size());
        break;
      }
    }
    if (posted || progressed) {
      last_progress = now;
      continue;
    }
    if (!running_.empty() && now - last_progress < options_.spin_ns) continue;
    ucs_status_t st = ucp_worker_arm(worker_);
    if (st == UCS_ERR_BUSY) continue;
    if (has_queued_.load(std::memory_order_acquire) || stop_.load()) {
      if (stop_.load() && !running_.empty()) epoll_wait(epoll_fd_, nullptr, 0, 1);  // no busy spin while draining
      continue;
    }
    epoll_event ev;
    epoll_wait(epoll_fd_, &ev, 1, running_.empty() && closing_.empty() ? 100 : 1);
  }
  CloseAllEndpoints();
}

void UcxWorker::OnOpDone(void* request, ucs_status_t status, void* user_data) {
  auto* r = static_cast<Running*>(user_data);
  --r->outstanding;
  --r->worker->inflight_ops_;
  if (status != UCS_OK && r->error.ok()) r->error = UcxError("transfer", status);
  ucp_request_free(request);
}

void UcxWorker::OnEpError(void* arg, ucp_ep_h, ucs_status_t status) {
  auto* e = static_cast<Endpoint*>(arg);
  if (e->broken) return;
  e->broken = true;
  e->reason = UcxError("endpoint to " + e->owner, status);
}

void UcxWorker::Account(Running& r, ucs_status_ptr_t p, std::string_view what) {
  if (p == nullptr) return;
  if (UCS_PTR_IS_ERR(p)) {
    if (r.error.ok()) r.error = UcxError(what, UCS_PTR_STATUS(p));
    return;
  }
  ++r.outstanding;
  ++inflight_ops_;
}

void UcxWorker::Start(std::unique_ptr<WorkItem> item) {
  auto run = std::make_unique<Running>();
  Running& r = *run;
  r.worker = this;
  r.item = std::move(item);
  const SegmentDescriptor& seg = *r.item->segment;
  int remote_worker = options_.index % static_cast<int>(seg.worker_addresses.size());
  Result<Endpoint*> ep = GetEndpoint(seg, remote_worker, r.item->small);
  if (!ep.ok()) {
    r.error = ep.status();
  } else {
    r.ep = *ep;
    r.ep->running++;
    Result<ucp_rkey_h> rkey = GetRkey(*r.ep, seg.rkey);
    if (rkey.ok()) r.rkey = *rkey;
    else r.error = rkey.status();
  }
  if (!r.error.ok()) r.posted_all = true;
  running_.push_back(std::move(run));
  PostSome(r, /*first=*/true);
}

bool UcxWorker::Pump() {
  bool any = false;
  for (auto& r : running_) {
    if (!r->posted_all) {
      size_t before = r->next_slice;
      PostSome(*r, /*first=*/false);
      any |= r->next_slice != before || r->posted_all;
    }
  }
  return any;
}

void UcxWorker::PostSome(Running& r, bool first) {
  if (r.posted_all) return;
  const WorkItem& it = *r.item;
  if (r.ep->broken || r.expired) {  // do not post more on an endpoint that is going away
    if (r.error.ok()) r.error = r.ep->reason.ok() ? Unavailable("endpoint closed") : r.ep->reason;
    r.posted_all = true;
    return;
  }
  if (!r.ep->connected) return;  // posted by Pump once the wire-up probe completes
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = &UcxWorker::OnOpDone;
  param.user_data = &r;
  if (it.local_memh) {
    param.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMH;
    param.memh = it.local_memh;
  }
  uint64_t budget = kBurstBytes;
  while (r.next_slice < it.slices.size() && r.error.ok()) {
    const Slice& s = it.slices[r.next_slice];
    if (s.length > budget && budget < kBurstBytes) return;  // next turn
    if (inflight_ops_ >= kMaxInflightOps && !(first && r.next_slice == 0)) return;
    ucs_status_ptr_t p = it.op == OpKind::kWrite
                             ? ucp_put_nbx(r.ep->ep, s.local, s.length, s.remote_addr, r.rkey, &param)
                             : ucp_get_nbx(r.ep->ep, s.local, s.length, s.remote_addr, r.rkey, &param);
    Account(r, p, it.op == OpKind::kWrite ? "put" : "get");
    ++r.next_slice;
    budget -= std::min(budget, s.length);
  }
  if (it.op == OpKind::kWrite && r.error.ok()) {
    // "Done" for a WRITE means the bytes are in remote memory, not just sent:
    // the item waits for a flush of its endpoint (FlushEndpoints).
    ++r.outstanding;
    if (r.ep->want_flush.empty()) flush_pending_.push_back(r.ep);
    r.ep->want_flush.push_back(&r);
  }
  r.posted_all = true;
}

void UcxWorker::FlushEndpoints() {
  for (Endpoint* ep : flush_pending_) {
    if (ep->want_flush.empty()) continue;  // released by BreakEndpoint
    auto group = std::make_unique<FlushGroup>();
    group->members.swap(ep->want_flush);
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    param.cb.send = &UcxWorker::OnFlushDone;
    param.user_data = group.get();
    ucs_status_ptr_t p = ucp_ep_flush_nbx(ep->ep, &param);
    if (UCS_PTR_IS_PTR(p)) {
      group.release();  // OnFlushDone owns it now
      continue;
    }
    Status st = p == nullptr ? Status::Ok() : UcxError("flush", UCS_PTR_STATUS(p));
    for (Running* r : group->members) {
      if (!st.ok() && r->error.ok()) r->error = st;
      --r->outstanding;
    }
  }
  flush_pending_.clear();
}

void UcxWorker::OnFlushDone(void* request, ucs_status_t status, void* user_data) {
  std::unique_ptr<FlushGroup> group(static_cast<FlushGroup*>(user_data));
  for (Running* r : group->members) {
    if (status != UCS_OK && r->error.ok()) r->error = UcxError("flush", status);
    --r->outstanding;
  }
  ucp_request_free(request);
}

Result<UcxWorker::Endpoint*> UcxWorker::GetEndpoint(const SegmentDescriptor& seg, int remote_worker,
                                                    bool small) {
  std::string key = seg.owner + "/" + std::to_string(remote_worker) + (small ? "/s" : "/b");
  auto it = pool_.find(key);
  if (it != pool_.end()) {
    if (!it->second->broken) return it->second.get();
    BreakEndpoint(it->second.get(), it->second->reason);
  }
  if (static_cast<int>(pool_.size()) >= options_.max_endpoints && !EvictIdleEndpoint()) {
    return ResourceExhausted("endpoint pool full (" + std::to_string(options_.max_endpoints) +
                             " endpoints, all busy)");
  }
  auto e = std::make_unique<Endpoint>();
  e->worker = this;
  e->key = key;
  e->owner = seg.owner;
  e->last_use_ns = Now();
  const std::string& addr = seg.worker_addresses[remote_worker];
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(addr.data());
  params.err_mode = options_.detect_peer_failure ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
  params.err_handler.cb = &UcxWorker::OnEpError;
  params.err_handler.arg = e.get();
  ucs_status_t st = ucp_ep_create(worker_, &params, &e->ep);
  if (st != UCS_OK) return UcxError("ep_create to segment '" + seg.name + "'", st);
  endpoints_created_.fetch_add(1);
  auto probe = std::make_unique<Probe>();
  probe->ep = e.get();
  ucp_request_param_t fp{};
  fp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  fp.cb.send = &UcxWorker::OnProbeDone;
  fp.user_data = probe.get();
  ucs_status_ptr_t p = ucp_ep_flush_nbx(e->ep, &fp);
  if (p == nullptr) {
    e->connected = true;
  } else if (UCS_PTR_IS_ERR(p)) {
    e->broken = true;
    e->reason = UcxError("wire-up of the endpoint to segment '" + seg.name + "'", UCS_PTR_STATUS(p));
  } else {
    e->probe = probe.release();  // OnProbeDone frees it
  }
  Endpoint* raw = e.get();
  pool_.emplace(key, std::move(e));
  return raw;
}

void UcxWorker::OnProbeDone(void* request, ucs_status_t status, void* user_data) {
  std::unique_ptr<Probe> probe(static_cast<Probe*>(user_data));
  ucp_request_free(request);
  Endpoint* e = probe->ep;
  if (e == nullptr) return;  // the endpoint went first
  e->probe = nullptr;
  if (status == UCS_OK) {
    e->connected = true;
  } else if (!e->broken) {
    e->broken = true;
    e->reason = UcxError("wire-up of the endpoint to " + e->owner, status);
  }
}

void UcxWorker::DestroyEndpoint(Endpoint& e) {
  if (e.close_request) {  // still in progress: released now, completed (or destroyed) by UCX
    ucp_request_free(e.close_request);
    e.close_request = nullptr;
  }
  for (auto& [packed, rkey] : e.rkeys) ucp_rkey_destroy(rkey);
  e.rkeys.clear();
  if (e.probe) e.probe->ep = nullptr;
  e.probe = nullptr;
}

Result<ucp_rkey_h> UcxWorker::GetRkey(Endpoint& ep, const std::string& packed) {
  auto it = ep.rkeys.find(packed);
  if (it != ep.rkeys.end()) return it->second;
  ucp_rkey_h rkey = nullptr;
  ucs_status_t st = ucp_ep_rkey_unpack(ep.ep, packed.data(), &rkey);
  if (st != UCS_OK) return UcxError("rkey_unpack", st);
  ep.rkeys.emplace(packed, rkey);
  return rkey;
}

void UcxWorker::Sweep(int64_t now) {
  for (auto it = running_.begin(); it != running_.end();) {
    Running& r = **it;
    if (r.outstanding == 0 && r.posted_all) {
      // UCX holds nothing of this item any more.
      if (!r.reported) r.item->batch->FinishPart(r.item->entry, r.error, now);
      r.item->batch->ReleasePart(r.item->entry);
      if (r.ep) {
        r.ep->running--;
        r.ep->last_use_ns = now;
      }
      it = running_.erase(it);
      continue;
    }
    if (!r.expired && now >= r.item->deadline_ns) {
      // The entry fails now, whatever the peer does; its memory is released
      // only when UCX returns the operations, which the force-close makes it do.
      r.expired = true;
      r.expired_ns = now;
      Status timeout = DeadlineExceeded("no completion within " + std::to_string(options_.timeout_ms) +
                                        " ms from segment '" + r.item->segment->name + "'");
      if (r.error.ok()) r.error = timeout;
      r.posted_all = true;  // post nothing more
      r.reported = true;
      r.item->batch->FinishPart(r.item->entry, r.error, now);
      if (r.ep && !r.ep->broken) BreakEndpoint(r.ep, timeout);
    } else if (r.expired && now - r.expired_ns > kCloseNanos && !poisoned_ && !stop_.load()) {
      // UCX did not hand the operations back (no forced close without peer
      // error handling, or a transport that ignores it): only destroying the
      // worker releases them.
      poisoned_ = true;
    }
    ++it;
  }
}

void UcxWorker::BreakEndpoint(Endpoint* ep, const Status& reason) {
  ep->broken = true;
  if (ep->reason.ok()) ep->reason = reason;
  auto it = pool_.find(ep->key);
  if (it == pool_.end() || it->second.get() != ep) return;  // already out of the pool
  LOG_DEBUG("transfer: worker {} drops endpoint {}: {}", options_.index, ep->key, ep->reason.ToString());
  for (Running* r : ep->want_flush) {  // their flush will never be posted
    if (r->error.ok()) r->error = ep->reason;
    --r->outstanding;
  }
  ep->want_flush.clear();
  std::unique_ptr<Endpoint> owned = std::move(it->second);
  pool_.erase(it);
  owned->close_started = true;
  owned->close_deadline_ns = Now() + kCloseNanos;
  owned->close_request = nullptr;
  if (options_.detect_peer_failure) {
    // Returns every outstanding operation at once (UCS_ERR_CANCELED).
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = UCP_EP_CLOSE_FLAG_FORCE;
    ucs_status_ptr_t p = ucp_ep_close_nbx(owned->ep, &param);
    owned->close_request = UCS_PTR_IS_PTR(p) ? p : nullptr;
    owned->close_issued = !UCS_PTR_IS_ERR(p);
  } else if (owned->connected) {
    // Without peer error handling UCX refuses a forced close; a connected
    // endpoint's operations (shared memory) complete locally, so a flushing
    // close ends. An endpoint still in wire-up holds no operation of ours: it
    // is left to ucp_worker_destroy (a close would wait for the wire-up).
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = 0;
    ucs_status_ptr_t p = ucp_ep_close_nbx(owned->ep, &param);
    owned->close_request = UCS_PTR_IS_PTR(p) ? p : nullptr;
    owned->close_issued = !UCS_PTR_IS_ERR(p);
  }
  std::string owner = owned->owner;
  closing_.push_back(std::move(owned));
  if (options_.on_peer_failure) options_.on_peer_failure(owner);
}

bool UcxWorker::EvictIdleEndpoint() {
  Endpoint* victim = nullptr;
  for (auto& [key, e] : pool_) {
    if (e->running == 0 && (!victim || e->last_use_ns < victim->last_use_ns)) victim = e.get();
  }
  if (!victim) return false;
  auto it = pool_.find(victim->key);
  std::unique_ptr<Endpoint> owned = std::move(it->second);
  pool_.erase(it);
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = 0;  // flush, then close
  owned->close_started = true;
  owned->close_deadline_ns = Now() + kCloseNanos;
  ucs_status_ptr_t p = ucp_ep_close_nbx(owned->ep, &param);
  owned->close_request = UCS_PTR_IS_PTR(p) ? p : nullptr;
  owned->close_issued = !UCS_PTR_IS_ERR(p);
  closing_.push_back(std::move(owned));
  return true;
}

void UcxWorker::ReapEndpoints() {
  // Endpoints the error callback marked broken leave the pool now.
  for (auto it = pool_.begin(); it != pool_.end();) {
    Endpoint* e = (it++)->second.get();
    if (e->broken) BreakEndpoint(e, e->reason);
  }
  int64_t now = -1;
  for (auto it = closing_.begin(); it != closing_.end();) {
    Endpoint& e = **it;
    if (e.close_request) {
      if (ucp_request_check_status(e.close_request) == UCS_INPROGRESS) {
        if (now < 0) now = Now();
        if (now < e.close_deadline_ns) {
          ++it;
          continue;
        }
        // Given up: released now, finished (or destroyed) by UCX later.
      }
      ucp_request_free(e.close_request);
      e.close_request = nullptr;
    }
    if (e.running > 0) {  // items still hold its rkeys; they end by their deadline
      ++it;
      continue;
    }
    DestroyEndpoint(e);
    if (!e.close_issued) {
      // Never closed in UCX (no peer error handling, wire-up unfinished): UCX
      // may still call its error handler, so it lives until the worker goes.
      abandoned_.push_back(std::move(*it));
    }
    it = closing_.erase(it);
  }
}

void UcxWorker::CloseAllEndpoints() {
  // Force-close what is left, give UCX kCloseNanos to return its operations,
  // then release everything: the worker's destruction frees what UCX still
  // holds, so items that never came back are released after it.
  while (!pool_.empty()) {
    Endpoint* e = pool_.begin()->second.get();
    BreakEndpoint(e, Cancelled("transfer engine shutting down"));
  }
  // The Run loop already gave expired items kCloseNanos; this is for closes.
  const int64_t deadline = Now() + kCloseNanos / 4;
  while ((!closing_.empty() || !running_.empty()) && Now() < deadline) {
    ucp_worker_progress(worker_);
    Sweep(Now());
    ReapEndpoints();
  }
  for (auto& e : closing_) DestroyEndpoint(*e);
}

void UcxWorker::ReleaseAbandoned() {
  // Called after ucp_worker_destroy: UCX can no longer touch any memory.
  const int64_t now = Now();
  for (auto& r : running_) {
    if (!r->reported) {
      r->item->batch->FinishPart(r->item->entry,
                                 r->error.ok() ? Cancelled("transfer engine shut down") : r->error, now);
    }
    r->item->batch->ReleasePart(r->item->entry);
  }
  running_.clear();
  closing_.clear();
}

}  // namespace crescent::transfer
