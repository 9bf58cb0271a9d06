#include "store/range_allocator.h"

#include "base/check.h"

namespace crescent::store {

RangeAllocator::RangeAllocator(uint64_t capacity, uint64_t alignment)
    : capacity_(capacity & ~(alignment - 1)), alignment_(alignment) {
  CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0) << "alignment " << alignment;
  if (capacity_ > 0) Insert(0, capacity_);
}

void RangeAllocator::Insert(uint64_t offset, uint64_t len) {
  by_offset_.emplace(offset, len);
  by_size_.emplace(len, offset);
}

void RangeAllocator::Erase(std::map<uint64_t, uint64_t>::iterator it) {
  by_size_.erase({it->second, it->first});
  by_offset_.erase(it);
}

std::optional<uint64_t> RangeAllocator::Allocate(uint64_t size) {
  if (size == 0) return std::nullopt;
  const uint64_t need = RoundUp(size);
  auto fit = by_size_.lower_bound({need, 0});
  if (fit == by_size_.end()) return std::nullopt;
  const auto [len, offset] = *fit;
  Erase(by_offset_.find(offset));
  if (len > need) Insert(offset + need, len - need);
  used_ += need;
  return offset;
}

bool RangeAllocator::Reserve(uint64_t offset, uint64_t size) {
  const uint64_t need = RoundUp(size);
  if (size == 0 || offset % alignment_ != 0 || offset > capacity_ || need > capacity_ - offset) return false;
  auto it = by_offset_.upper_bound(offset);
  if (it == by_offset_.begin()) return false;
  --it;
  const uint64_t run_off = it->first, run_len = it->second;
  if (offset + need > run_off + run_len) return false;
  Erase(it);
  if (offset > run_off) Insert(run_off, offset - run_off);
  if (run_off + run_len > offset + need) Insert(offset + need, run_off + run_len - offset - need);
  used_ += need;
  return true;
}

void RangeAllocator::Free(uint64_t offset, uint64_t size) {
  uint64_t len = RoundUp(size);
  CHECK_LE(len, used_);
  used_ -= len;
  auto next = by_offset_.lower_bound(offset);
  CHECK(next == by_offset_.end() || next->first >= offset + len) << "double free at " << offset;
  if (next != by_offset_.end() && next->first == offset + len) {
    len += next->second;
    auto n = next++;
    Erase(n);
  }
  if (next != by_offset_.begin()) {
    auto prev = std::prev(next);
    CHECK_LE(prev->first + prev->second, offset) << "double free at " << offset;
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      len += prev->second;
      Erase(prev);
    }
  }
  Insert(offset, len);
}

uint64_t RangeAllocator::largest_free() const { return by_size_.empty() ? 0 : by_size_.rbegin()->first; }

}  // namespace crescent::store
