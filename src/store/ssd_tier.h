// SsdTier: a node's SSD tier on real files in one directory, read and
// written with io_uring (liburing), O_DIRECT where the filesystem allows.
//
// One file per object, `<location>.rec`, holding the record of record.h (a
// 4 KiB self-describing header, then the bytes padded to 4 KiB). A write goes
// to `<location>.tmp` and is renamed when complete, so a killed node leaves no
// half record under a real name. Open() rescans the directory: every record
// whose header is valid (its checksum, and a size within the capacity) and
// whose file is long enough is held again (the
// node re-reports them to the master); torn files, bad headers and
// temporaries are skipped, counted and removed, never served. Readers still
// verify the checksum of the bytes (a flipped byte on disk is a miss).
// The node identity lives in `<dir>/node-id`, so a restarted node is the same
// node to the master and its SSD objects are hits again.
//
// Thread-safety: all methods from any thread (one mutex for the index, one
// for the ring; I/O runs with the ring's lock only).
#pragma once

#include <liburing.h>

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/thread_annotations.h"
#include "store/record.h"

namespace crescent::store {

struct SsdTierOptions {
  std::string dir;
  uint64_t capacity = 0;  // bytes of records it may hold
  bool direct = true;     // O_DIRECT (falls back to buffered I/O where refused)
  unsigned queue_depth = 32;
  uint64_t io_bytes = 1 << 20;  // one request's size
};

struct SsdObject {
  Key key;
  uint64_t size = 0;
  uint64_t checksum = 0;
  uint64_t location = 0;
};

struct SsdScanReport {
  uint64_t records = 0;     // held again
  uint64_t torn = 0;        // shorter than their header says
  uint64_t bad_headers = 0; // no valid header
  uint64_t temporaries = 0; // writes that never completed
};

class SsdTier {
 public:
  static Result<std::unique_ptr<SsdTier>> Open(const SsdTierOptions& options);
  ~SsdTier();
  SsdTier(const SsdTier&) = delete;
  SsdTier& operator=(const SsdTier&) = delete;

  const std::string& node_id() const { return node_id_; }
  const SsdScanReport& scan_report() const { return scan_; }
  bool direct() const { return direct_; }
  uint64_t capacity() const { return options_.capacity; }
  uint64_t used() const;
  std::vector<SsdObject> Objects() const;

  // Writes a record whose header block and bytes are in memory at `record`
  // (RecordBytes(header.size) bytes, 4 KiB-aligned for O_DIRECT; anything
  // else goes through an aligned copy). Returns its location.
  // ResourceExhausted when the tier is full.
  Result<uint64_t> WriteRecord(const void* record);
  // Reads the record at `location` into `dst` (RecordBytes(size) bytes) and
  // checks its header names `key`; the caller verifies the checksum.
  // NotFound for an unknown location, DataLoss for a bad header.
  Status ReadRecord(uint64_t location, const Key& key, void* dst, uint64_t size);
  // Reads and verifies the object's bytes into `out` (its size). With
  // `expect_checksum` (the master's), a record carrying another is DataLoss.
  Status Read(uint64_t location, const Key& key, std::span<std::byte> out,
              std::optional<uint64_t> expect_checksum = std::nullopt);
  // The same into a scatter list (base/hash.h) of `size` bytes in all.
  Status Read(uint64_t location, const Key& key, uint64_t size, std::span<const ScatterPart> parts,
              std::optional<uint64_t> expect_checksum = std::nullopt);
  // Deletes the record (unknown locations are fine).
  void Remove(uint64_t location);

  std::string PathOf(uint64_t location) const;  // for tests that damage files

 private:
  explicit SsdTier(SsdTierOptions options);
  Status Scan() EXCLUDES(mu_);
  // Runs one read or write of `len` bytes at `file_offset` through the ring,
  // as io_bytes pieces with up to queue_depth in flight.
  Status Io(int fd, bool write, void* buf, uint64_t len, uint64_t file_offset);
  int OpenFile(const std::string& path, int flags);

  const SsdTierOptions options_;
  std::string node_id_;
  bool direct_ = true;
  SsdScanReport scan_;

  mutable Mutex mu_;
  std::map<uint64_t, SsdObject> objects_ GUARDED_BY(mu_);  // by location
  uint64_t used_ GUARDED_BY(mu_) = 0;
  uint64_t next_location_ GUARDED_BY(mu_) = 1;

  Mutex ring_mu_;
  io_uring ring_ GUARDED_BY(ring_mu_);
  bool ring_ok_ = false;
};

}  // namespace crescent::store
