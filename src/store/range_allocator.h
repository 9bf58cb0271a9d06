// RangeAllocator: hands out aligned byte ranges of one segment [0, capacity),
// best fit, coalescing freed neighbours. Used by the store master for DRAM
// segments (it never touches the bytes). O(log n) per call.
// Values; not thread-safe (the master's lock covers it).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>

namespace crescent::store {

class RangeAllocator {
 public:
  // REQUIRES: alignment is a power of two.
  RangeAllocator() : RangeAllocator(0) {}
  explicit RangeAllocator(uint64_t capacity, uint64_t alignment = 4096);

  // The offset of `size` bytes (rounded up to the alignment), or nullopt.
  std::optional<uint64_t> Allocate(uint64_t size);
  // Marks [offset, offset + size) used; false if any of it is not free or
  // out of range (a bad re-report).
  bool Reserve(uint64_t offset, uint64_t size);
  // REQUIRES: the range was allocated or reserved with this size.
  void Free(uint64_t offset, uint64_t size);

  uint64_t capacity() const { return capacity_; }
  uint64_t used() const { return used_; }
  uint64_t largest_free() const;
  uint64_t RoundUp(uint64_t size) const { return (size + alignment_ - 1) & ~(alignment_ - 1); }

 private:
  void Insert(uint64_t offset, uint64_t len);
  void Erase(std::map<uint64_t, uint64_t>::iterator it);

  uint64_t capacity_;
  uint64_t alignment_;
  uint64_t used_ = 0;
  std::map<uint64_t, uint64_t> by_offset_;          // offset -> length of free runs
  std::set<std::pair<uint64_t, uint64_t>> by_size_;  // (length, offset)
};

}  // namespace crescent::store
