#include "base/quant.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>

#include "base/dtype.h"

namespace crescent {

namespace {

struct TypeInfo {
  QuantType type;
  uint32_t ggml;
  std::string_view name;
  int64_t elems, bytes;
};

constexpr TypeInfo kTypes[] = {
    {QuantType::kF32, 0, "F32", 1, 4},        {QuantType::kF16, 1, "F16", 1, 2},
    {QuantType::kBF16, 30, "BF16", 1, 2},     {QuantType::kQ8_0, 8, "Q8_0", 32, 34},
    {QuantType::kQ4_0, 2, "Q4_0", 32, 18},    {QuantType::kQ4_K, 12, "Q4_K", 256, 144},
    {QuantType::kQ5_K, 13, "Q5_K", 256, 176}, {QuantType::kQ6_K, 14, "Q6_K", 256, 210},
};

const TypeInfo& Info(QuantType t) { return kTypes[static_cast<int>(t)]; }

float Half(uint16_t h) { return F16ToF32(h); }

int Nearest(float x) { return static_cast<int>(std::lrintf(x)); }

// Finite copy of a block's inputs (NaN and infinities quantize as 0).
void Clean(const float* src, float* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = std::isfinite(src[i]) ? src[i] : 0.0f;
}

void DequantQ8_0(const BlockQ8_0* b, float* y) {
  const float d = Half(b->d);
  for (int i = 0; i < 32; ++i) y[i] = d * static_cast<float>(b->qs[i]);
}

void QuantQ8_0(const float* x, BlockQ8_0* b) {
  float amax = 0;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
  b->d = F32ToF16(d);
  // roundf (half away from zero), as ggml's reference.
  for (int i = 0; i < 32; ++i) b->qs[i] = static_cast<int8_t>(std::clamp(std::round(x[i] * id), -127.0f, 127.0f));
}

void DequantQ4_0(const BlockQ4_0* b, float* y) {
  const float d = Half(b->d);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>((b->qs[j] & 15) - 8);
    y[j + 16] = d * static_cast<float>((b->qs[j] >> 4) - 8);
  }
}

void QuantQ4_0(const float* x, BlockQ4_0* b) {
  // The value of largest magnitude maps to -8, as ggml does.
  float amax = 0, max = 0;
  for (int i = 0; i < 32; ++i) {
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  }
  const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
  b->d = F32ToF16(d);
  for (int j = 0; j < 16; ++j) {
    // ggml truncates x/d + 8.5 (values are >= 0 there, so this rounds half up).
    const int lo = std::min(15, static_cast<int>(x[j] * id + 8.5f)), hi = std::min(15, static_cast<int>(x[j + 16] * id + 8.5f));
    b->qs[j] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

// The 6-bit scale/min packing of Q4_K and Q5_K (inverse of KQuantScaleMin).
void PackScaleMin(const uint8_t* ls, const uint8_t* lm, uint8_t* scales) {
  std::memset(scales, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales[j] = ls[j];
      scales[j + 4] = lm[j];
    } else {
      scales[j + 4] = static_cast<uint8_t>((ls[j] & 15) | ((lm[j] & 15) << 4));
      scales[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      scales[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
  }
}

// Per sub-block of 32: x ≈ d*sc*q - dmin*m with q in [0, qmax]. Writes the
// packed scales, d and dmin, and the levels L[256].
void QuantKAffine(const float* x, int qmax, uint16_t* d_out, uint16_t* dmin_out, uint8_t* scales, uint8_t* L) {
  float scale[8], mins[8], max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float lo = 0, hi = 0;  // the min is clamped to <= 0, as ggml's
    for (int i = 0; i < 32; ++i) lo = std::min(lo, x[32 * j + i]), hi = std::max(hi, x[32 * j + i]);
    scale[j] = (hi - lo) / static_cast<float>(qmax);
    mins[j] = -lo;
    max_scale = std::max(max_scale, scale[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float is = max_scale > 0 ? 63.0f / max_scale : 0.0f, im = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(std::min(63, Nearest(is * scale[j])));
    lm[j] = static_cast<uint8_t>(std::min(63, Nearest(im * mins[j])));
  }
  PackScaleMin(ls, lm, scales);
  *d_out = F32ToF16(max_scale / 63.0f);
  *dmin_out = F32ToF16(max_min / 63.0f);
  const float d = Half(*d_out), dmin = Half(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    const float sd = d * ls[j], m = dmin * lm[j];
    for (int i = 0; i < 32; ++i) {
      const int q = sd > 0 ? Nearest((x[32 * j + i] + m) / sd) : 0;
      L[32 * j + i] = static_cast<uint8_t>(std::clamp(q, 0, qmax));
    }
  }
}

void DequantQ4K(const BlockQ4K* b, float* y) {
  const float d = Half(b->d), dmin = Half(b->dmin);
  const uint8_t* q = b->qs;
  for (int j = 0; j < 8; j += 2, q += 32) {
    uint8_t sc0, m0, sc1, m1;
    KQuantScaleMin(b->scales, j, &sc0, &m0);
    KQuantScaleMin(b->scales, j + 1, &sc1, &m1);
    for (int l = 0; l < 32; ++l) *y++ = d * sc0 * (q[l] & 15) - dmin * m0;
    for (int l = 0; l < 32; ++l) *y++ = d * sc1 * (q[l] >> 4) - dmin * m1;
  }
}

void QuantQ4K(const float* x, BlockQ4K* b) {
  uint8_t L[256];
  QuantKAffine(x, 15, &b->d, &b->dmin, b->scales, L);
  for (int j = 0; j < 256; j += 64) {
    for (int l = 0; l < 32; ++l) b->qs[j / 2 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
  }
}

void DequantQ5K(const BlockQ5K* b, float* y) {
  const float d = Half(b->d), dmin = Half(b->dmin);
  const uint8_t* ql = b->qs;
  for (int j = 0; j < 8; j += 2, ql += 32) {
    uint8_t sc0, m0, sc1, m1;
    KQuantScaleMin(b->scales, j, &sc0, &m0);
    KQuantScaleMin(b->scales, j + 1, &sc1, &m1);
    const uint8_t u0 = static_cast<uint8_t>(1u << j), u1 = static_cast<uint8_t>(2u << j);
    for (int l = 0; l < 32; ++l) *y++ = d * sc0 * ((ql[l] & 15) + (b->qh[l] & u0 ? 16 : 0)) - dmin * m0;
    for (int l = 0; l < 32; ++l) *y++ = d * sc1 * ((ql[l] >> 4) + (b->qh[l] & u1 ? 16 : 0)) - dmin * m1;
  }
}

void QuantQ5K(const float* x, BlockQ5K* b) {
  uint8_t L[256];
  QuantKAffine(x, 31, &b->d, &b->dmin, b->scales, L);
  std::memset(b->qh, 0, sizeof(b->qh));
  for (int j = 0, n = 0; j < 256; j += 64, n += 2) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t lo = L[j + l], hi = L[j + l + 32];
      b->qs[j / 2 + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
      if (lo > 15) b->qh[l] |= static_cast<uint8_t>(1u << n);
      if (hi > 15) b->qh[l] |= static_cast<uint8_t>(2u << n);
    }
  }
}

void DequantQ6K(const BlockQ6K* b, float* y) {
  const float d = Half(b->d);
  const uint8_t* ql = b->ql;
  const uint8_t* qh = b->qh;
  const int8_t* sc = b->scales;
  for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * sc[is] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
  }
}

void QuantQ6K(const float* x, BlockQ6K* b) {
  // Per sub-block of 16 a signed scale that maps its largest magnitude to -32,
  // then the 16 scales to int8 against the largest of them.
  float scale[16], amax_scale = 0, max_scale = 0;
  for (int s = 0; s < 16; ++s) {
    float amax = 0, max = 0;
    for (int i = 0; i < 16; ++i) {
      if (std::fabs(x[16 * s + i]) > amax) amax = std::fabs(x[16 * s + i]), max = x[16 * s + i];
    }
    scale[s] = max / -32.0f;
    if (std::fabs(scale[s]) > amax_scale) amax_scale = std::fabs(scale[s]), max_scale = scale[s];
  }
  const float iscale = max_scale != 0 ? -128.0f / max_scale : 0.0f;
  b->d = F32ToF16(iscale != 0 ? 1.0f / iscale : 0.0f);
  const float d = Half(b->d);
  uint8_t L[256];
  for (int s = 0; s < 16; ++s) {
    b->scales[s] = static_cast<int8_t>(std::clamp(Nearest(iscale * scale[s]), -128, 127));
    const float sd = d * b->scales[s];
    for (int i = 0; i < 16; ++i) {
      const int q = sd != 0 ? Nearest(x[16 * s + i] / sd) : 0;
      L[16 * s + i] = static_cast<uint8_t>(std::clamp(q, -32, 31) + 32);
    }
  }
  for (int j = 0; j < 256; j += 128) {
    uint8_t* ql = b->ql + j / 2;
    uint8_t* qh = b->qh + j / 4;
    for (int l = 0; l < 32; ++l) {
      const uint8_t* q = L + j + l;
      ql[l] = static_cast<uint8_t>((q[0] & 15) | ((q[64] & 15) << 4));
      ql[l + 32] = static_cast<uint8_t>((q[32] & 15) | ((q[96] & 15) << 4));
      qh[l] = static_cast<uint8_t>((q[0] >> 4) | ((q[32] >> 4) << 2) | ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
    }
  }
}

}  // namespace

std::optional<QuantType> QuantTypeFromGgml(uint32_t ggml_type) {
  for (const auto& t : kTypes) {
    if (t.ggml == ggml_type) return t.type;
  }
  return std::nullopt;
}

uint32_t GgmlTypeId(QuantType t) { return Info(t).ggml; }

std::string GgmlTypeName(uint32_t ggml_type) {
  if (auto t = QuantTypeFromGgml(ggml_type)) return std::string(QuantTypeName(*t));
  // ggml's other types, named so an error says what the file holds.
  static constexpr std::pair<uint32_t, std::string_view> kOthers[] = {
      {3, "Q4_1"},     {6, "Q5_0"},    {7, "Q5_1"},    {9, "Q8_1"},     {10, "Q2_K"},    {11, "Q3_K"},
      {15, "Q8_K"},    {16, "IQ2_XXS"}, {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"},   {20, "IQ4_NL"},
      {21, "IQ3_S"},   {22, "IQ2_S"},  {23, "IQ4_XS"}, {24, "I8"},      {25, "I16"},     {26, "I32"},
      {27, "I64"},     {28, "F64"},    {29, "IQ1_M"},  {34, "TQ1_0"},   {35, "TQ2_0"},   {39, "MXFP4"}};
  for (const auto& [id, name] : kOthers) {
    if (id == ggml_type) return std::string(name);
  }
  return "type " + std::to_string(ggml_type);
}

std::string_view QuantTypeName(QuantType t) { return Info(t).name; }

Result<QuantType> ParseQuantType(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& t : kTypes) {
    std::string n(t.name);
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (n == lower) return t.type;
  }
  return InvalidArgument("unknown tensor type '" + std::string(name) + "' (f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k)");
}

int64_t QuantBlockElems(QuantType t) { return Info(t).elems; }
int64_t QuantBlockBytes(QuantType t) { return Info(t).bytes; }
bool IsBlockQuantized(QuantType t) { return Info(t).elems > 1; }

Result<int64_t> QuantBytes(QuantType t, int64_t elems) {
  const TypeInfo& info = Info(t);
  if (elems < 0 || elems % info.elems != 0) {
    return InvalidArgument(std::to_string(elems) + " elements is not a whole number of " + std::string(info.name) +
                           " blocks of " + std::to_string(info.elems));
  }
  const int64_t blocks = elems / info.elems;
  if (blocks > INT64_MAX / info.bytes) return InvalidArgument("tensor size overflows");
  return blocks * info.bytes;
}

void KQuantScaleMin(const uint8_t* q, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 15) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void DequantizeRow(QuantType t, const void* src, float* dst, int64_t k) {
  const auto* p = static_cast<const uint8_t*>(src);
  const int64_t be = QuantBlockElems(t), bb = QuantBlockBytes(t);
  switch (t) {
    case QuantType::kF32: std::memcpy(dst, src, static_cast<size_t>(k) * 4); return;
    case QuantType::kF16:
    case QuantType::kBF16:
      for (int64_t i = 0; i < k; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = t == QuantType::kF16 ? F16ToF32(h) : Bf16ToF32(h);
      }
      return;
    default: break;
  }
  for (int64_t b = 0; b < k / be; ++b, p += bb, dst += be) {
    switch (t) {
      case QuantType::kQ8_0: DequantQ8_0(reinterpret_cast<const BlockQ8_0*>(p), dst); break;
      case QuantType::kQ4_0: DequantQ4_0(reinterpret_cast<const BlockQ4_0*>(p), dst); break;
      case QuantType::kQ4_K: DequantQ4K(reinterpret_cast<const BlockQ4K*>(p), dst); break;
      case QuantType::kQ5_K: DequantQ5K(reinterpret_cast<const BlockQ5K*>(p), dst); break;
      case QuantType::kQ6_K: DequantQ6K(reinterpret_cast<const BlockQ6K*>(p), dst); break;
      default: CHECK(false) << "unreachable";
    }
  }
}

void QuantizeRow(QuantType t, const float* src, void* dst, int64_t k) {
  auto* p = static_cast<uint8_t*>(dst);
  switch (t) {
    case QuantType::kF32: std::memcpy(dst, src, static_cast<size_t>(k) * 4); return;
    case QuantType::kF16:
    case QuantType::kBF16:
      for (int64_t i = 0; i < k; ++i) {
        const uint16_t h = t == QuantType::kF16 ? F32ToF16(src[i]) : F32ToBf16(src[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      return;
    default: break;
  }
  const int64_t be = QuantBlockElems(t), bb = QuantBlockBytes(t);
  float x[256];
  for (int64_t b = 0; b < k / be; ++b, p += bb, src += be) {
    Clean(src, x, static_cast<int>(be));
    switch (t) {
      case QuantType::kQ8_0: QuantQ8_0(x, reinterpret_cast<BlockQ8_0*>(p)); break;
      case QuantType::kQ4_0: QuantQ4_0(x, reinterpret_cast<BlockQ4_0*>(p)); break;
      case QuantType::kQ4_K: QuantQ4K(x, reinterpret_cast<BlockQ4K*>(p)); break;
      case QuantType::kQ5_K: QuantQ5K(x, reinterpret_cast<BlockQ5K*>(p)); break;
      case QuantType::kQ6_K: QuantQ6K(x, reinterpret_cast<BlockQ6K*>(p)); break;
      default: CHECK(false) << "unreachable";
    }
  }
}

}  // namespace crescent
