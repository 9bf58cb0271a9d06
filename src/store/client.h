// Client: put, get, exists and remove of store objects, one at a time or in
// batches, blocking or asynchronous (futures), for the engine and tools.
//
// Put: the checksum (XXH3-64) is computed, PutStart places the records, the
// bytes and then, once they landed, the header go straight into the owners'
// segments (memcpy for this process's own node, transfer-engine WRITEs
// otherwise), and PutEnd makes the object visible; a failed write revokes
// the put. A key that is
// already complete succeeds at once without moving bytes.
// Get: the master returns the complete copies, nearest first, under a read
// lease; the client reads one (a local DRAM copy by memcpy, a remote one by
// READ, an SSD copy from its node's staging area, or from the local SSD tier),
// then checks, before it reports success, that the header names this key and
// generation, that the checksum of the bytes matches, and that the lease had
// not run out. A copy that fails is reported to the master (dropped there,
// counted) and the next is tried; if none is good the get is a miss
// (NotFound) or, when every copy was corrupt, DataLoss — never wrong bytes.
//
// Buffers: the transfer engine can only move registered memory. Memory given
// to RegisterMemory is used in place; anything else goes through a
// registered bounce area of scratch_bytes (allocated on first use).
// Deadlines: every master call ends within the master's timeout (its retries
// included); no wave of transfers starts after one transfer timeout from the
// call's start, and a wave ends within its own, so the bytes of a call take
// at most ~2 x the transfer timeout, plus rpc_timeout_ms per SSD copy staged
// on another node. Bad copies are reported to the master off the caller's
// path.
// Thread-safety: all methods from any thread. Async calls run on the
// client's own threads; the caller keeps buffers alive until the future is
// ready.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "store/master_api.h"
#include "store/record.h"
#include "transfer/transfer_engine.h"

namespace crescent::store {

class StoreNode;

struct ClientOptions {
  Hash128 fingerprint;  // the model whose KV this client stores (zero: untyped)
  uint32_t replicas = 0;  // 0: the master's default
  uint64_t scratch_bytes = 128 << 20;
  int async_threads = 2;
  int64_t rpc_timeout_ms = 3000;  // StageRead on other nodes
};

struct PutItem {
  Key key;
  std::span<const std::byte> data;
  std::optional<Key> parent;  // the previous chunk of the prefix
};

// Where a get's bytes came from.
enum class ReadFrom { kNone, kLocalDram, kRemoteDram, kLocalSsd, kRemoteSsd };

struct GetItem {
  Key key;
  std::span<std::byte> out;  // at least the object's size
  // Instead of `out` when not empty: the object's bytes in order into these
  // (a part with null data skips its bytes; in all at least the object's
  // size), so a caller scatters without a copy of its own. Remote copies go
  // through the client's bounce area first, local SSD reads through the
  // tier's aligned buffer. On failure the parts' (or `out`'s) content is
  // unspecified. With BatchGetAsync, `parts` memory and `from` must live
  // until the future is ready.
  std::vector<ScatterPart> parts;
  ReadFrom* from = nullptr;  // when set: where a successful get read from
};

struct ClientCounters {
  std::atomic<int64_t> puts{0}, put_failures{0}, put_exists{0};
  std::atomic<int64_t> gets{0}, hits{0}, misses{0};
  std::atomic<int64_t> checksum_failures{0};  // copies whose bytes did not match
  std::atomic<int64_t> stale_copies{0};       // header of another object or generation, or lease over
  std::atomic<int64_t> bytes_put{0}, bytes_got{0};
  std::atomic<int64_t> local_reads{0}, remote_reads{0}, ssd_reads{0};
};

class Client {
 public:
  // `local`: this process's store node, if any (fast path to its memory and
  // SSD tier; placement prefers it). It must outlive the client.
  static Result<std::unique_ptr<Client>> Create(ClientOptions options, std::shared_ptr<MasterApi> master,
                                                std::shared_ptr<transfer::TransferEngine> engine,
                                                StoreNode* local = nullptr);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Status Put(const Key& key, std::span<const std::byte> data, std::optional<Key> parent = std::nullopt);
  // The object's size on success.
  Result<uint64_t> Get(const Key& key, std::span<std::byte> out);
  Result<bool> Exists(const Key& key);
  Status Remove(const Key& key);

  std::vector<Status> BatchPut(std::span<const PutItem> items);
  std::vector<Result<uint64_t>> BatchGet(std::span<const GetItem> items);
  Result<std::vector<bool>> BatchExists(std::span<const Key> keys);
  std::vector<Status> BatchRemove(std::span<const Key> keys);
  // How many of keys[0], keys[1], ... exist before the first missing one.
  Result<size_t> PrefixLength(std::span<const Key> keys);

  std::future<std::vector<Status>> BatchPutAsync(std::vector<PutItem> items);
  std::future<std::vector<Result<uint64_t>>> BatchGetAsync(std::vector<GetItem> items);

  // Memory the client may transfer in place (the engine's KV staging, say).
  Status RegisterMemory(void* base, uint64_t length);
  Status UnregisterMemory(void* base);

  // The object's size and copies as the master sees them (store-cli stat).
  Result<proto::GetResult> Locate(const Key& key);
  Result<proto::StatReply> Stat();

  const ClientCounters& counters() const;
  MasterApi& master();

  class Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A store key for an operator's string (store-cli): XXH3-128 of its bytes.
Key KeyFromString(std::string_view s);

}  // namespace crescent::store
