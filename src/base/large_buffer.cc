#include "base/large_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <string>

namespace crescent {

namespace {
constexpr size_t kHuge = size_t{2} << 20;
}  // namespace

LargeBuffer::~LargeBuffer() {
  if (map_) munmap(map_, mapped_);
}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& o) noexcept {
  if (this != &o) {
    if (map_) munmap(map_, mapped_);
    data_ = o.data_, bytes_ = o.bytes_, mapped_ = o.mapped_, map_ = o.map_;
    o.data_ = o.map_ = nullptr, o.bytes_ = o.mapped_ = 0;
  }
  return *this;
}

Result<LargeBuffer> LargeBuffer::Allocate(size_t bytes) {
  if (bytes > (size_t{1} << 62)) return ResourceExhausted("cannot map " + std::to_string(bytes) + " bytes");
  const size_t want = std::max<size_t>(bytes, 1);
  // Over-map by a huge page to place the start on a 2 MB boundary.
  const bool huge = want >= kHuge;
  const size_t mapped = (want + 4095) / 4096 * 4096 + (huge ? kHuge : 0);
  void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return ResourceExhausted("cannot map " + std::to_string(bytes) + " bytes");
  LargeBuffer b;
  b.map_ = static_cast<uint8_t*>(p);
  b.mapped_ = mapped;
  b.bytes_ = bytes;
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  b.data_ = huge ? reinterpret_cast<uint8_t*>((start + kHuge - 1) / kHuge * kHuge) : b.map_;
  if (huge) madvise(b.data_, mapped - static_cast<size_t>(b.data_ - b.map_), MADV_HUGEPAGE);
  return b;
}

}  // namespace crescent
