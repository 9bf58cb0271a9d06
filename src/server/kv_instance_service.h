// KvInstanceService: the KvInstance gRPC service (proto/instance.proto) of a
// `crescent serve --role prefill|decode` process, over its engine and its
// transfer engine (docs/disaggregation.md).
//
//   Reserve   (decode) Engine::ReserveKv; the reply names this instance's KV
//             segment and carries its descriptor, so the prefill instance
//             can WRITE without a shared metadata service
//   Prefill   (prefill) runs the prompt with max_tokens 1 and a
//             TransferKvSink into the named reservation; answers once every
//             write has completed (then the commit is safe), with the first
//             token and the checksums; a write that failed is an error (the
//             front retries elsewhere)
//   Decode    (decode) Engine::SubmitPrefilled, then the outputs as a stream;
//             a caller that goes away cancels the request
//   ExtendReservation  (decode) Engine::ExtendKv (the front, while P prefills)
//   CancelReservation  (decode) Engine::CancelKv
//   Info      the role, the model's hash and KV fingerprint, limits, the KV
//             geometry (a front refuses instances of another model)
//   Report    what a Conductor's view follows (docs/cluster.md): the prefix
//             cache's KV events after the caller's (epoch, seq) or a resync,
//             the prefill queue (placement ids, FIFO, the running job's
//             age), live requests and their KV tokens, free KV, the prefill
//             timings after the caller's index, the last decode-only step
//             and the store's load figures; answered off the step thread
// A request refused by the engine maps to the matching gRPC code
// (RESOURCE_EXHAUSTED, FAILED_PRECONDITION, DATA_LOSS, INVALID_ARGUMENT).
//
// Ownership: the engine and the transfer engine outlive the service; the
// service owns its gRPC server and the metadata it learnt from replies.
// Thread-safety: gRPC's threads call in; the engine is thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/hash.h"
#include "base/status.h"
#include "engine/engine.h"
#include "transfer/in_process_metadata_store.h"
#include "transfer/transfer_engine.h"

namespace crescent::server {

struct KvInstanceOptions {
  std::string listen = "127.0.0.1:0";
  std::string role = "prefill";  // "prefill" | "decode" (Info)
  std::string segment;  // this instance's KV segment name (registered by the caller)
  int64_t prefill_timeout_ms = 600'000;
  std::string metadata_prefix = "crescent/segments/";  // as the transfer engine's options
  int64_t chunk_tokens = 0;  // the store's chunk (Info), 0 without a store
  // KV bytes loaded from the store so far and the seconds those loads took
  // (Report: the front's transfer estimator); null: none.
  std::function<void(int64_t* bytes, double* seconds)> store_loads;
};

struct KvInstanceStats {
  int64_t prefills = 0;        // Prefill calls that streamed KV to a decode instance
  int64_t bytes_written = 0;   // KV bytes those wrote
  int64_t write_wait_us = 0;   // after their first token, waiting for the last writes (the exposed transfer)
  int64_t leases_lost = 0;     // prefills stopped because the decode instance refused to extend their lease
};

class KvInstanceService {
 public:
  // `peers`: the metadata store `transfer` opens segments in (descriptors
  // from Reserve replies are put there).
  static Result<std::unique_ptr<KvInstanceService>> Start(KvInstanceOptions options, engine::Engine* engine,
                                                         transfer::TransferEngine* transfer,
                                                         std::shared_ptr<transfer::MetadataStore> peers);
  ~KvInstanceService();
  const std::string& address() const;
  KvInstanceStats stats() const;

  class Impl;

 private:
  explicit KvInstanceService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace crescent::server
