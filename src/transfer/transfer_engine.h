// TransferEngine: moves bytes between registered memory of engines in
// different processes or hosts, over UCX (shared memory on one host, TCP or
// RDMA between hosts). It knows bytes only: no tokens, no KV.
//
//   engine.RegisterLocalMemory("prefill-0/kv", buf, len);   // publish a segment
//   SegmentId seg = engine.OpenSegment("decode-3/kv").value();
//   TransferBatch batch = engine.NewBatch(64);
//   engine.Submit(batch, {{OpKind::kWrite, buf, seg, offset, len}, ...});
//   batch.Wait();                                             // or batch.status(i)
//
// Registering memory publishes a SegmentDescriptor (owner, UCX worker
// addresses, base, length, rkey) in the MetadataStore under
// "<metadata_prefix><name>"; opening a segment reads it. Entries longer than
// slice_bytes are cut into slices spread over the engine's UCX workers (each
// with a progress thread) and posted a burst at a time; shorter ones go whole
// to one worker on an endpoint of their own, so they do not wait behind a
// large entry's bytes (on shared memory; over UCX TCP they still share the
// peer's receive progress). WRITEs are flushed: "done" means the bytes are in
// the remote memory. Every entry is
// checked before anything moves (known segment, range inside it, non-zero
// length, local range inside registered memory) and ends, done or failed,
// within timeout_ms. When an endpoint to a segment's owner breaks, the cached
// descriptors of that owner are dropped and re-read on next use, so a peer
// that restarts and re-registers its segment is reachable again.
//
// Ownership: owns the UCX context, workers and the registrations it made; the
// MetadataStore is shared. Destroying the engine waits for in-flight entries
// (bounded by the timeout), unpublishes and unregisters its segments.
// Thread-safety: all methods may be called from any thread. Locks: local_mutex_
// and remote_mutex_ are never held together; neither is held while calling
// the MetadataStore or a worker.
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "transfer/metadata_store.h"
#include "transfer/segment_descriptor.h"
#include "transfer/transfer_batch.h"
#include "transfer/transfer_types.h"
#include "transfer/ucx_context.h"
#include "transfer/ucx_worker.h"

namespace crescent::transfer {

class TransferEngine {
 public:
  static Result<std::unique_ptr<TransferEngine>> Create(EngineOptions options,
                                                        std::shared_ptr<MetadataStore> metadata);
  ~TransferEngine();
  TransferEngine(const TransferEngine&) = delete;
  TransferEngine& operator=(const TransferEngine&) = delete;

  // Registers [addr, addr + length) and publishes it as segment `name`.
  // The caller keeps owning the memory. REQUIRES: it stays valid until
  // UnregisterLocalMemory or the engine's destruction.
  Status RegisterLocalMemory(std::string_view name, void* addr, uint64_t length);
  // Allocates `length` bytes through UCX (shared memory where the transports
  // allow, so peers on this host copy through a mapping) and publishes them as
  // segment `name`. Freed by UnregisterLocalMemory or the engine's destruction.
  Result<void*> AllocateLocalMemory(std::string_view name, uint64_t length);
  // Unpublishes and unregisters. REQUIRES: no in-flight entry uses it.
  Status UnregisterLocalMemory(std::string_view name);

  // Looks the segment up in the MetadataStore; the same name gives the same id.
  Result<SegmentId> OpenSegment(std::string_view name);
  Result<uint64_t> SegmentLength(SegmentId id);

  TransferBatch NewBatch(size_t capacity) const { return TransferBatch(capacity); }
  // Validates every request, then starts them all; on a validation error
  // nothing is started and the Status names the entry.
  // REQUIRES: the local memory stays valid until the entries end.
  Status Submit(TransferBatch& batch, std::span<const TransferRequest> requests);

  const std::string& instance_id() const { return instance_id_; }
  const EngineOptions& options() const { return options_; }
  int64_t endpoints_created() const;

 private:
  struct LocalSegment {
    uint64_t base = 0;
    uint64_t length = 0;
    ucp_mem_h memh = nullptr;
  };
  struct RemoteSegment {
    std::string name;
    std::shared_ptr<const SegmentDescriptor> descriptor;  // null: re-read before use
  };

  TransferEngine(EngineOptions options, std::shared_ptr<MetadataStore> metadata, UcxContext context);
  Status Publish(std::string_view name, ucp_mem_h memh, uint64_t base, uint64_t length);
  Result<std::shared_ptr<const SegmentDescriptor>> Fetch(const std::string& name);
  Result<std::shared_ptr<const SegmentDescriptor>> Descriptor(SegmentId id);
  void OnPeerFailure(const std::string& owner);

  EngineOptions options_;
  std::shared_ptr<MetadataStore> metadata_;
  std::string instance_id_;
  UcxContext context_;  // destroyed after workers_
  std::vector<std::unique_ptr<UcxWorker>> workers_;
  std::atomic<uint64_t> next_worker_{0};

  std::mutex local_mutex_;
  std::map<std::string, LocalSegment, std::less<>> local_;  // GUARDED_BY(local_mutex_)
  std::map<uint64_t, std::string> local_by_base_;           // GUARDED_BY(local_mutex_)

  std::mutex remote_mutex_;
  std::vector<RemoteSegment> remote_;                        // GUARDED_BY(remote_mutex_); id - 1
  std::map<std::string, SegmentId, std::less<>> remote_ids_;  // GUARDED_BY(remote_mutex_)
};

}  // namespace crescent::transfer
