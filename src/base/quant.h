// Tensor element formats of GGUF files: plain (F32, F16, BF16) and ggml's
// block-quantized types, with their byte layouts exactly as ggml defines them
// (ggml-common.h), a scalar dequantizer that is the reference for every fast
// kernel, and quantizers used by `make-model --format gguf` and
// `--quantization`.
//
// A row of K elements is K / block_elems blocks laid end to end (K must be a
// multiple of block_elems). Blocks, little-endian, "half" = IEEE f16:
//
//   Q8_0  (32 elems, 34 B):  half d; int8 qs[32]            x = d * q
//   Q4_0  (32 elems, 18 B):  half d; u8 qs[16]              x[j] = d * ((qs[j] & 15) - 8),
//                                                          x[j+16] = d * ((qs[j] >> 4) - 8)
//   Q4_K (256 elems, 144 B): half d, dmin; u8 scales[12]; u8 qs[128]
//       8 sub-blocks of 32 with 6-bit scale sc and min m (packed in scales[]):
//       x = d * sc * q - dmin * m, q a nibble of qs (sub-blocks 2i and 2i+1 are
//       the low and high nibbles of qs[32i .. 32i+31])
//   Q5_K (256 elems, 176 B): half d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
//       as Q4_K with a fifth bit from qh: bit 2i (2i+1) of qh[l] for sub-block
//       2i (2i+1), element l
//   Q6_K (256 elems, 210 B): u8 ql[128]; u8 qh[64]; int8 scales[16]; half d
//       16 sub-blocks of 16 with 8-bit signed scales; x = d * sc * (q - 32),
//       q = 4 low bits from ql, 2 high bits from qh
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/status.h"

namespace crescent {

enum class QuantType : uint8_t { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K, kQ5_K, kQ6_K };

// ggml's type ids (the numbers a GGUF tensor info carries).
std::optional<QuantType> QuantTypeFromGgml(uint32_t ggml_type);
uint32_t GgmlTypeId(QuantType t);
// A name for errors and flags for any ggml id ("Q4_K", "IQ2_XS", "type 99").
std::string GgmlTypeName(uint32_t ggml_type);
std::string_view QuantTypeName(QuantType t);  // "F32", "Q8_0", "Q4_K", ...
// "q8_0", "q4_k", ... (flag spelling, case-insensitive) -> the type.
Result<QuantType> ParseQuantType(std::string_view name);

int64_t QuantBlockElems(QuantType t);  // 1 for plain types
int64_t QuantBlockBytes(QuantType t);  // bytes of one block (or element)
bool IsBlockQuantized(QuantType t);

// Bytes of `elems` elements; InvalidArgument when elems is not a whole number
// of blocks or the size overflows int64.
Result<int64_t> QuantBytes(QuantType t, int64_t elems);

// x[0 .. k) from one row of `k` elements in `t`. REQUIRES: k is a multiple of
// QuantBlockElems(t); src holds QuantBytes(t, k) bytes.
void DequantizeRow(QuantType t, const void* src, float* dst, int64_t k);

// One row of k floats into `t` (round to nearest). REQUIRES as above; dst holds
// QuantBytes(t, k) bytes. Non-finite inputs are quantized as 0.
void QuantizeRow(QuantType t, const float* src, void* dst, int64_t k);

// ggml's block structs, for kernels that read them in place.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
struct BlockQ4K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};
struct BlockQ5K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
struct BlockQ6K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4K) == 144 &&
              sizeof(BlockQ5K) == 176 && sizeof(BlockQ6K) == 210);

// Sub-block j (0..7) of a Q4_K/Q5_K block: its 6-bit scale and min.
void KQuantScaleMin(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m);

}  // namespace crescent
