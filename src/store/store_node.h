// StoreNode: a process's contribution to the KV store: a DRAM segment
// (allocated through the transfer engine, so peers on this host copy through
// a shared mapping and others over TCP/RDMA), an optional SSD tier, and the
// StoreNode gRPC service that stages SSD records for readers elsewhere.
//
// Layout of the DRAM segment `store/<node>/dram`:
//   [0, dram_bytes)                         records placed by the master
//   [dram_bytes, dram_bytes + staging_bytes) SSD records staged for remote readers
//
// It mounts its segments at the master with what they hold (SSD records the
// tier found on start; after a master failover, also the DRAM records, found
// by scanning their self-describing headers) and heartbeats every
// heartbeat_ms. It applies what the replies carry: frees (a record's header
// is cleared if its generation still matches), SSD drops, and demotions
// (a worker thread copies a DRAM record to the SSD tier, its checksum
// verified first, and reports the SSD location in the next heartbeat).
// Reads of an SSD replica from another node are pulls: the reader asks
// StageRead, this node reads the record from SSD into its staging area, the
// reader READs it through the transfer engine and calls ReleaseStage (stages
// also expire after stage_lease_ms). Pull keeps the reader's memory private
// and the staging memory bounded and owned by the node that does the I/O.
//
// Ownership: owns the segment, the SSD tier, the gRPC server and its threads;
// shares the transfer engine and the master connection.
// Thread-safety: all public methods from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "store/master_api.h"
#include "store/ssd_tier.h"
#include "transfer/transfer_engine.h"

namespace crescent::store {

struct StoreNodeOptions {
  std::string node_id;  // default: the SSD tier's stable id, else a random one
  uint64_t dram_bytes = 0;
  uint64_t staging_bytes = 64 << 20;  // only used with an SSD tier
  std::string ssd_dir;                // empty: no SSD tier
  uint64_t ssd_bytes = 0;
  std::string rpc_listen = "127.0.0.1:0";  // the StoreNode service (SSD staging)
  int64_t stage_lease_ms = 10'000;
  bool prefault = true;  // fault the DRAM segment's pages in, in the background
  Hash128 fingerprint;  // stamped on its requests
};

struct StoreNodeCounters {
  std::atomic<int64_t> demotions{0};
  std::atomic<int64_t> demotions_failed{0};
  std::atomic<int64_t> frees{0};
  std::atomic<int64_t> ssd_drops{0};
  std::atomic<int64_t> stages{0};
  std::atomic<int64_t> remounts{0};
  std::atomic<int64_t> reported_objects{0};
};

class StoreNode {
 public:
  static Result<std::unique_ptr<StoreNode>> Start(StoreNodeOptions options, std::shared_ptr<MasterApi> master,
                                                  std::shared_ptr<transfer::TransferEngine> engine);
  ~StoreNode();  // unmounts (best effort), stops its threads and server
  StoreNode(const StoreNode&) = delete;
  StoreNode& operator=(const StoreNode&) = delete;

  const std::string& node_id() const;
  const std::string& dram_segment() const;
  const std::string& ssd_segment() const;  // "" without an SSD tier
  const std::string& rpc_address() const;
  // The record at `offset` of the DRAM segment (for a client in this process).
  std::byte* record(uint64_t offset) const;
  uint64_t dram_bytes() const;
  SsdTier* ssd() const;  // null without an SSD tier
  // Blocks until the background prefault of the DRAM segment has ended (at
  // once without one): benchmarks start measuring after it.
  void WaitForPrefault() const;
  // Heartbeats at once, repeatedly, until the master has no SSD copy or
  // demotion left for this node and every result is reported, or the
  // timeout passes (false). A server calls it before it stops, so what it
  // wrote through to SSD is there when it starts again.
  bool Flush(int64_t timeout_ms);
  const StoreNodeCounters& counters() const;

  class Impl;

 private:
  explicit StoreNode(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace crescent::store
