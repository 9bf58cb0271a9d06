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
// Failures: every entry ends, done or failed, within timeout_ms of its
// submission, whatever the peer does (silent, SIGSTOPped, killed). A timed-out
// entry's endpoint is force-closed, which makes UCX hand back its operations;
// the batch's destructor waits for that (transfer_batch.h), so the caller's
// memory may be freed as soon as the batch is gone. Metadata calls are bounded
// by the MetadataStore's own timeout (a hung etcd gives Unavailable).
//
// Ownership: owns the UCX context, workers and the registrations it made; the
// MetadataStore is shared. Destroying the engine waits for in-flight entries
// (each ends by its deadline), gives UCX 2 s to return force-closed
// operations, then destroys the workers, which releases the rest: it returns
// within timeout_ms + ~2 s even with peers that stopped answering. It then
// unpublishes and unregisters its segments.
// UCX is an implementation detail: this header does not include it.
// Thread-safety: all methods may be called from any thread. Locks (in the
// implementation): the local and remote segment tables have a mutex each,
// never held together, neither held while calling the MetadataStore or a worker.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"
#include "transfer/metadata_store.h"
#include "transfer/transfer_batch.h"
#include "transfer/transfer_types.h"

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
  // Registers [addr, addr + length) as the local side of transfers only: it
  // is not published, so no peer can reach it (bounce buffers, a reader's
  // destination). The same REQUIRES as RegisterLocalMemory.
  Status RegisterBuffer(void* addr, uint64_t length);
  Status UnregisterBuffer(void* addr);
  // The encoded descriptor of local segment `name` (what it publishes), for
  // directories other than the MetadataStore (the store master's).
  Result<std::string> LocalDescriptor(std::string_view name);

  // Looks the segment up in the MetadataStore; the same name gives the same id.
  Result<SegmentId> OpenSegment(std::string_view name);
  Result<uint64_t> SegmentLength(SegmentId id);

  TransferBatch NewBatch(size_t capacity) const { return TransferBatch(capacity); }
  // Validates every request, then starts them all; on a validation error
  // nothing is started and the Status names the entry.
  // REQUIRES: the local memory stays valid until the batch is released
  // (TransferBatch::Released(), or the batch's destruction).
  Status Submit(TransferBatch& batch, std::span<const TransferRequest> requests);

  // Makes a peer's WRITEs into this engine's segments visible to the caller
  // once it has learned, through any other channel (an RPC from the writer,
  // sent after its batch completed), that they finished. Over UCX TCP the
  // bytes are stored by this engine's progress threads; this acquire pairs
  // with the release each of them does after every progress round, so the
  // order is one a thread sanitizer sees as well as the CPU. Cheap (one
  // atomic load per worker); any thread.
  void AcquireIncoming() const;

  const std::string& instance_id() const;
  const EngineOptions& options() const;
  int64_t endpoints_created() const;
  // Times a worker was rebuilt to release operations UCX would not return.
  int64_t worker_rebuilds() const;

  class Impl;

 private:
  explicit TransferEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace crescent::transfer
