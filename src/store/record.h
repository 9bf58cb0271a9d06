// The on-media layout of one stored object, the same in a DRAM segment and
// in an SSD file: a 4 KiB header block, then the object's bytes padded to
// 4 KiB (so SSD I/O can be O_DIRECT straight from or into segment memory).
//
//   offset                offset + 4096                       + RoundUp(size)
//   | RecordHeader, zeros  | the object's bytes, zero padding |
//
// The header makes records self-describing: a node rebuilds what its DRAM
// segment or SSD directory holds by scanning headers (after a master failover
// or its own restart); readers check key, generation and checksum before they
// trust the bytes. A header is valid only if its own checksum matches.
// Values and pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

#include "base/hash.h"

namespace crescent::store {

using Key = Hash128;

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kRecordHeaderBytes = kBlock;
constexpr uint64_t kRecordMagic = 0x314f4b5343455243ULL;  // "CRESCKO1"
constexpr uint64_t kTombstone = 1;                       // RecordHeader::flags (SSD: a delete)

inline uint64_t RoundUpBlock(uint64_t n) { return (n + kBlock - 1) & ~(kBlock - 1); }
// Bytes one object of `size` takes on media.
inline uint64_t RecordBytes(uint64_t size) { return kRecordHeaderBytes + RoundUpBlock(size); }

struct RecordHeader {
  uint64_t magic = kRecordMagic;
  uint64_t key_hi = 0;
  uint64_t key_lo = 0;
  uint64_t size = 0;
  uint64_t checksum = 0;    // XXH3-64 of the object's bytes
  uint64_t generation = 0;  // DRAM: the allocation's generation; SSD: the append sequence
  uint64_t flags = 0;
  uint64_t header_checksum = 0;  // XXH3-64 of the fields above

  Key key() const { return Key{key_lo, key_hi}; }
  void Seal() { header_checksum = HashBytes64(this, offsetof(RecordHeader, header_checksum)); }
  bool Valid() const {
    return magic == kRecordMagic && header_checksum == HashBytes64(this, offsetof(RecordHeader, header_checksum));
  }
};
static_assert(sizeof(RecordHeader) == 64);

inline RecordHeader MakeHeader(const Key& key, uint64_t size, uint64_t checksum, uint64_t generation,
                               uint64_t flags = 0) {
  RecordHeader h;
  h.key_hi = key.hi;
  h.key_lo = key.lo;
  h.size = size;
  h.checksum = checksum;
  h.generation = generation;
  h.flags = flags;
  h.Seal();
  return h;
}

inline uint64_t Checksum(std::span<const std::byte> bytes) { return HashBytes64(bytes.data(), bytes.size()); }

}  // namespace crescent::store
