// Element types of weights and KV, and scalar conversions between them.
// bf16 is stored as its upper 16 bits of an IEEE f32; conversion rounds to
// nearest even (NaN stays NaN). f16 conversions follow IEEE 754 half.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace crescent {

enum class DType : uint8_t { kBF16, kF16, kF32 };

size_t DTypeSize(DType t);
std::string_view DTypeName(DType t);  // safetensors spelling: "BF16", "F16", "F32"

inline float Bf16ToF32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t F32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);

}  // namespace crescent
