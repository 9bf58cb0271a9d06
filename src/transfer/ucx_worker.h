// UcxWorker: one UCP worker driven by its own progress thread.
//
// Callers hand it WorkItems (one entry's slices bound for one remote worker);
// the thread owns every UCX object of the worker: it makes endpoints on first
// use (two per remote worker: one for single-slice entries, one for sliced
// ones), keeps them in a pool capped at max_endpoints (idle ones are closed
// first), posts large entries a burst at a time with a cap on operations in
// flight, drops an endpoint that broke and rebuilds it on the next use, posts
// the puts/gets (WRITEs then wait for one flush of their endpoint per loop
// turn, so "done" means the bytes are in remote memory), and fails any item still running at its deadline by
// force-closing its endpoint. The same thread also serves remote peers whose
// operations need this side's progress (UCX's TCP gets, wire-up).
// When idle it sleeps on the worker's event fd (ucp_worker_arm + epoll).
//
// Ownership: owns the ucp_worker_h and the thread; borrows the context, which
// must outlive it. Thread-safety: Post() and address() from any thread; all
// else runs on the worker thread. Locks: queue_mutex_ only (a leaf; the
// peer-failure callback and BatchState are called without it held).
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "transfer/segment_descriptor.h"
#include "transfer/transfer_batch.h"

namespace crescent::transfer {

struct Slice {
  void* local = nullptr;
  uint64_t remote_addr = 0;  // in the owner's address space
  uint64_t length = 0;
};

struct WorkItem {
  std::shared_ptr<BatchState> batch;
  size_t entry = 0;
  OpKind op = OpKind::kRead;
  std::shared_ptr<const SegmentDescriptor> segment;
  ucp_mem_h local_memh = nullptr;
  std::vector<Slice> slices;
  int64_t deadline_ns = 0;
  // Entries of one slice travel on their own endpoint (a connection of their
  // own on TCP), so they never queue behind a large entry's bytes.
  bool small = false;
};

struct WorkerOptions {
  int index = 0;
  int max_endpoints = 64;
  int64_t timeout_ms = 10'000;
  bool detect_peer_failure = true;  // UCP_ERR_HANDLING_MODE_PEER on endpoints
  // How long the thread keeps polling after its last progress while items run,
  // before it sleeps on the event fd.
  int64_t spin_ns = 20'000;
  // Called on the worker thread when an endpoint to `owner` broke.
  std::function<void(const std::string& owner)> on_peer_failure;
};

class UcxWorker {
 public:
  static Result<std::unique_ptr<UcxWorker>> Create(ucp_context_h context, WorkerOptions options);
  ~UcxWorker();  // finishes queued items, closes endpoints, joins the thread
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;

  // The packed ucp worker address peers connect to.
  const std::string& address() const { return address_; }
  void Post(std::unique_ptr<WorkItem> item);

  // Counters for tests: endpoints made and currently pooled.
  int64_t endpoints_created() const { return endpoints_created_.load(); }

 private:
  struct Endpoint;
  struct Running;
  struct FlushGroup;
  UcxWorker(ucp_worker_h worker, int efd, WorkerOptions options);

  void Run();
  bool DrainQueue();
  void Start(std::unique_ptr<WorkItem> item);
  bool Pump();                // posts the next burst of every running item
  void PostSome(Running& r, bool first);
  void FlushEndpoints();      // one flush per endpoint for the WRITEs posted this turn
  Result<Endpoint*> GetEndpoint(const SegmentDescriptor& seg, int remote_worker, bool small);
  Result<ucp_rkey_h> GetRkey(Endpoint& ep, const std::string& packed);
  void Account(Running& r, ucs_status_ptr_t p, std::string_view what);
  void Sweep(int64_t now_ns);
  void BreakEndpoint(Endpoint* ep, const Status& reason);
  void ReapEndpoints();
  bool EvictIdleEndpoint();
  void CloseAllEndpoints();
  static void OnOpDone(void* request, ucs_status_t status, void* user_data);
  static void OnFlushDone(void* request, ucs_status_t status, void* user_data);
  static void OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status);

  ucp_worker_h worker_;
  int efd_;        // the worker's event fd
  int epoll_fd_ = -1;
  WorkerOptions options_;
  std::string address_;

  std::mutex queue_mutex_;
  std::deque<std::unique_ptr<WorkItem>> queue_;  // GUARDED_BY(queue_mutex_)
  std::atomic<bool> has_queued_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> endpoints_created_{0};

  // Worker-thread state.
  std::unordered_map<std::string, std::unique_ptr<Endpoint>> pool_;  // key: owner/remote worker/lane
  std::list<std::unique_ptr<Endpoint>> closing_;  // broken or evicted, awaiting ops and close
  std::list<std::unique_ptr<Running>> running_;
  int inflight_ops_ = 0;  // UCX requests posted and not yet called back
  std::vector<Endpoint*> flush_pending_;  // endpoints with want_flush, this turn
  std::thread thread_;
};

}  // namespace crescent::transfer
