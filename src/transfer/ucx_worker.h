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
// A new endpoint posts nothing until a wire-up probe (a flush) completes, so a
// peer that dies or stops before the connection exists holds no caller memory.
// Timeouts: an item still running at its deadline is reported failed at once
// and its endpoint closed (force-closed with peer error handling, which hands
// back every operation; without it, UCX refuses a forced close, but connected
// shared-memory operations complete locally); its memory is released (BatchState::
// ReleasePart) only when UCX has returned every operation of it. Destruction
// waits for running items to end (each by its deadline), gives UCX 2 s to
// return force-closed operations, destroys the worker and releases the rest:
// it is bounded by timeout + 2 s whatever the peers do.
// If UCX keeps an expired item's operations 2 s after its endpoint was closed
// (shared memory without peer error handling, where RMA on heap memory is
// emulated over messages the dead peer never answers), the worker stops
// taking items, waits for its other items to end, destroys its ucp worker,
// which releases everything, and opens a new one with a new address
// (on_address_change): memory is released within timeout + 2 s either way
// (items still running on the worker then fail at once). A stopping worker
// never rebuilds: its destruction releases everything.
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "base/thread_annotations.h"
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
  // Called on the worker thread after the worker was rebuilt with a new
  // address (the engine republishes its segment descriptors).
  std::function<void()> on_address_change;
};

class UcxWorker {
 public:
  static Result<std::unique_ptr<UcxWorker>> Create(ucp_context_h context, WorkerOptions options);
  ~UcxWorker();  // finishes queued items, closes endpoints, joins the thread
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;

  // The packed ucp worker address peers connect to (changes on a rebuild).
  std::string address() const;
  void Post(std::unique_ptr<WorkItem> item);

  // Counters for tests: endpoints made; times the worker was rebuilt.
  int64_t endpoints_created() const { return endpoints_created_.load(); }
  int64_t rebuilds() const { return rebuilds_.load(); }
  // Pairs with the release after each progress round (TransferEngine::AcquireIncoming).
  void AcquireIncoming() const { (void)progress_epoch_.load(std::memory_order_acquire); }

 private:
  struct Endpoint;
  struct Probe;
  struct Running;
  struct FlushGroup;
  UcxWorker(ucp_context_h context, WorkerOptions options);
  Status Open();     // creates the ucp worker, its event fd and address
  void Rebuild();    // destroys the ucp worker (releasing all) and opens a new one

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
  void ReleaseAbandoned();
  static void OnOpDone(void* request, ucs_status_t status, void* user_data);
  static void OnFlushDone(void* request, ucs_status_t status, void* user_data);
  static void OnProbeDone(void* request, ucs_status_t status, void* user_data);
  void DestroyEndpoint(Endpoint& e);  // rkeys, probe; the ucp_ep is closed or left to the worker
  static void OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status);

  ucp_context_h context_;
  // worker_ and efd_ change only on the worker thread, under queue_mutex_
  // (Post signals the worker under it); the worker thread reads them freely.
  ucp_worker_h worker_ = nullptr;
  int efd_ = -1;  // the worker's event fd
  int epoll_fd_ = -1;
  WorkerOptions options_;
  mutable Mutex address_mutex_;
  std::string address_ GUARDED_BY(address_mutex_);

  Mutex queue_mutex_;
  std::deque<std::unique_ptr<WorkItem>> queue_ GUARDED_BY(queue_mutex_);
  std::atomic<bool> has_queued_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> endpoints_created_{0};
  std::atomic<int64_t> rebuilds_{0};
  // Bumped (release) after every ucp_worker_progress: what the progress
  // thread stored for remote peers happens-before an acquire that reads it.
  std::atomic<uint64_t> progress_epoch_{0};
  bool poisoned_ = false;  // an expired item's operations were not returned: rebuild
  bool dead_ = false;      // a rebuild failed: every item fails

  // Worker-thread state.
  std::unordered_map<std::string, std::unique_ptr<Endpoint>> pool_;  // key: owner/remote worker/lane
  std::list<std::unique_ptr<Endpoint>> closing_;  // broken or evicted, awaiting ops and close
  std::list<std::unique_ptr<Endpoint>> abandoned_;  // never closed in UCX: kept until the worker is destroyed
  std::list<std::unique_ptr<Running>> running_;
  int inflight_ops_ = 0;  // UCX requests posted and not yet called back
  std::vector<Endpoint*> flush_pending_;  // endpoints with want_flush, this turn
  std::thread thread_;
};

}  // namespace crescent::transfer
