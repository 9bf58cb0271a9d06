// 128-bit XXH3 hashing: chunk and page keys (DESIGN.md, "KV layout and keys").
// Values only; Hasher128 is single-threaded and move-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace crescent {

struct Hash128 {
  uint64_t lo = 0;
  uint64_t hi = 0;
  friend bool operator==(const Hash128&, const Hash128&) = default;
  std::string ToHex() const;  // 32 lowercase hex digits, high word first
};

struct Hash128Hasher {  // for unordered containers
  size_t operator()(const Hash128& h) const { return static_cast<size_t>(h.lo ^ (h.hi * 0x9e3779b97f4a7c15ULL)); }
};

Hash128 HashBytes128(const void* data, size_t len);
uint64_t HashBytes64(const void* data, size_t len);
// memcpy(dst, src, len) that also returns HashBytes64 of the bytes, hashing
// each piece while it is still in cache: about the cost of the copy alone.
// REQUIRES: the ranges do not overlap.
uint64_t CopyAndHash64(void* dst, const void* src, size_t len);
// One piece of a scatter list; a null `data` skips `size` bytes.
struct ScatterPart {
  std::byte* data = nullptr;
  size_t size = 0;
};
// The same into a scatter list: the `len` bytes of `src` go to `parts` in
// order (skipped bytes are hashed, not written). Returns HashBytes64(src,
// len). REQUIRES: the parts overlap neither each other nor `src`; bytes past
// the parts are hashed only.
uint64_t ScatterAndHash64(std::span<const ScatterPart> parts, const void* src, size_t len);

// Streaming form: Update() pieces, then Finish(). Same result as hashing the
// concatenation with HashBytes128.
class Hasher128 {
 public:
  Hasher128();
  ~Hasher128();
  Hasher128(Hasher128&&) noexcept;
  Hasher128& operator=(Hasher128&&) noexcept;
  void Update(const void* data, size_t len);
  Hash128 Finish() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace crescent
