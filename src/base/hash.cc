#include "base/hash.h"

#include <algorithm>
#include <cstring>

#include <xxhash.h>

#include <fmt/format.h>

namespace crescent {

std::string Hash128::ToHex() const { return fmt::format("{:016x}{:016x}", hi, lo); }

Hash128 HashBytes128(const void* data, size_t len) {
  XXH128_hash_t h = XXH3_128bits(data, len);
  return {h.low64, h.high64};
}

uint64_t HashBytes64(const void* data, size_t len) { return XXH3_64bits(data, len); }

uint64_t CopyAndHash64(void* dst, const void* src, size_t len) {
  if (len <= (64 << 10)) {
    std::memcpy(dst, src, len);
    return XXH3_64bits(dst, len);
  }
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  constexpr size_t kPiece = 128 << 10;  // stays in L2 between the copy and the hash
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  for (size_t off = 0; off < len; off += kPiece) {
    const size_t n = std::min(kPiece, len - off);
    std::memcpy(d + off, s + off, n);
    XXH3_64bits_update(st, d + off, n);
  }
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

uint64_t ScatterAndHash64(std::span<const ScatterPart> parts, const void* src, size_t len) {
  if (parts.size() == 1 && parts[0].data != nullptr && parts[0].size >= len) return CopyAndHash64(parts[0].data, src, len);
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  constexpr size_t kPiece = 128 << 10;
  const auto* s = static_cast<const std::byte*>(src);
  size_t off = 0;
  for (const ScatterPart& part : parts) {
    if (off >= len) break;
    const size_t n = std::min(part.size, len - off);
    if (part.data == nullptr) {
      XXH3_64bits_update(st, s + off, n);
    } else {
      for (size_t at = 0; at < n; at += kPiece) {  // hash each piece while it is in cache
        const size_t m = std::min(kPiece, n - at);
        std::memcpy(part.data + at, s + off + at, m);
        XXH3_64bits_update(st, part.data + at, m);
      }
    }
    off += n;
  }
  if (off < len) XXH3_64bits_update(st, s + off, len - off);
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

struct Hasher128::State {
  State() : s(XXH3_createState()) {}
  ~State() { XXH3_freeState(s); }
  XXH3_state_t* s;
};

Hasher128::Hasher128() : state_(std::make_unique<State>()) { XXH3_128bits_reset(state_->s); }
Hasher128::~Hasher128() = default;
Hasher128::Hasher128(Hasher128&&) noexcept = default;
Hasher128& Hasher128::operator=(Hasher128&&) noexcept = default;

void Hasher128::Update(const void* data, size_t len) { XXH3_128bits_update(state_->s, data, len); }

Hash128 Hasher128::Finish() const {
  XXH128_hash_t h = XXH3_128bits_digest(state_->s);
  return {h.low64, h.high64};
}

}  // namespace crescent
