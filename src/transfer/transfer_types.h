// Plain value types of the transfer engine's API: requests, entry states and
// engine options. The engine moves bytes; nothing here knows tokens or KV.
// Thread-safety: values only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace crescent::transfer {

// Handle of a remote segment opened with TransferEngine::OpenSegment.
using SegmentId = uint64_t;

enum class OpKind {
  kRead,   // remote segment -> local memory
  kWrite,  // local memory -> remote segment
};

// One entry of a batch. `local` must lie inside memory registered with the
// same engine; [offset, offset + length) inside the remote segment.
struct TransferRequest {
  OpKind op = OpKind::kRead;
  void* local = nullptr;
  SegmentId segment = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

enum class EntryState { kPending, kDone, kFailed };

struct EntryStatus {
  EntryState state = EntryState::kPending;
  Status error;  // set when state == kFailed: the reason
};

struct EngineOptions {
  // UCX transports (UCX_TLS), e.g. "self,sm" (one host) or "tcp". Empty: UCX's
  // own choice (or the UCX_TLS environment variable).
  std::string transports = "self,sm,tcp";
  // Network devices UCX may use (UCX_NET_DEVICES). Only loopback by default so
  // that nothing binds to an outward-facing address unless asked to.
  std::string net_devices = "lo";
  // Further UCX settings, applied last through ucp_config_modify, so they win
  // over the environment. Names as ucp_config_modify wants them: UCP-level ones
  // without "UCX_" (UCX_RNDV_THRESH -> RNDV_THRESH), transport-level ones also
  // without the transport prefix (UCX_TCP_SNDBUF -> SNDBUF).
  std::vector<std::pair<std::string, std::string>> ucx_settings;
  // Apply TcpTuningSettings() (ucx_context.h) when TCP is among the transports.
  // UCX 1.13's TCP transport with its own defaults (8 KiB send segments, auto
  // socket buffers) moves ~0.5-1 GB/s on loopback here, far below a plain
  // socket; tuned, it reaches the socket's rate.
  bool tune_tcp = true;
  // UCX workers, each with its own progress thread; large entries are sliced
  // and the slices spread over all of them.
  int num_workers = 2;
  // While entries run, a worker polls this long after its last progress before
  // it sleeps on its event fd: lower latency against CPU taken from peers.
  int64_t spin_us = 20;
  // Entries longer than this are cut into slices of this size. 0 picks by
  // transport: 4 MiB when TCP is among them (over UCX TCP each slice is a put
  // with its own header and acknowledgement; 4 MiB measured ~1.5x the rate of
  // 64 KiB on loopback here), else 64 KiB (spreads over shared-memory workers).
  uint64_t slice_bytes = 0;
  // Every entry completes or fails within this long of its submission.
  int64_t timeout_ms = 10'000;
  // Endpoints kept per worker; idle ones are closed beyond this.
  int max_endpoints_per_worker = 64;
  // Whether UCX endpoints detect a failed peer themselves (error handling mode
  // "peer"), which lets a timed-out entry's endpoint be force-closed at once.
  // kAuto turns it on when the transports are TCP only. UCX 1.13 supports it
  // on no shared-memory transport, and asking for it with shared memory among
  // the transports makes UCX carry even same-host RMA over TCP (measured ~2
  // GB/s against 6-24 GB/s over shared memory here); without it a dead peer is
  // found by the per-entry timeout, and memory UCX keeps is released by a
  // worker rebuild (ucx_worker.h).
  enum class PeerFailure { kAuto, kOn, kOff };
  PeerFailure peer_failure = PeerFailure::kAuto;
  // Metadata keys are "<prefix><segment name>".
  std::string metadata_prefix = "crescent/segments/";

  // The slice size in effect: slice_bytes, or the transport's default for 0.
  uint64_t EffectiveSliceBytes() const {
    if (slice_bytes > 0) return slice_bytes;
    const bool tcp = transports.empty() || transports.find("tcp") != std::string::npos;
    return tcp ? uint64_t{4} << 20 : uint64_t{64} << 10;
  }
};

}  // namespace crescent::transfer
