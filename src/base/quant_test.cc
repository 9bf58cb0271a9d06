// ggml's block layouts read as ggml defines them (blocks built byte by byte
// from ggml-common.h's structs, not by our quantizer), and the quantizers'
// round trip within each type's error.
#include "base/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "base/dtype.h"

namespace crescent {
namespace {

TEST(QuantTest, SizesAndIdsAreGgmls) {
  struct Row {
    QuantType t;
    uint32_t id;
    int64_t elems, bytes;
  };
  for (const Row& r : {Row{QuantType::kF32, 0, 1, 4}, Row{QuantType::kF16, 1, 1, 2}, Row{QuantType::kBF16, 30, 1, 2},
                       Row{QuantType::kQ4_0, 2, 32, 18}, Row{QuantType::kQ8_0, 8, 32, 34},
                       Row{QuantType::kQ4_K, 12, 256, 144}, Row{QuantType::kQ5_K, 13, 256, 176},
                       Row{QuantType::kQ6_K, 14, 256, 210}}) {
    EXPECT_EQ(GgmlTypeId(r.t), r.id);
    EXPECT_EQ(QuantTypeFromGgml(r.id), r.t);
    EXPECT_EQ(QuantBlockElems(r.t), r.elems);
    EXPECT_EQ(QuantBlockBytes(r.t), r.bytes);
    EXPECT_EQ(ParseQuantType(QuantTypeName(r.t)).value(), r.t);
  }
  EXPECT_FALSE(QuantTypeFromGgml(3).has_value());
  EXPECT_EQ(GgmlTypeName(3), "Q4_1");
  EXPECT_EQ(GgmlTypeName(16), "IQ2_XXS");
  EXPECT_EQ(GgmlTypeName(1000), "type 1000");
  EXPECT_EQ(ParseQuantType("q4_k").value(), QuantType::kQ4_K);
  EXPECT_FALSE(ParseQuantType("q3_k").ok());
  EXPECT_EQ(QuantBytes(QuantType::kQ4_K, 512).value(), 288);
  EXPECT_FALSE(QuantBytes(QuantType::kQ4_K, 300).ok()) << "not a whole block";
  EXPECT_FALSE(QuantBytes(QuantType::kQ8_0, -32).ok());
  EXPECT_FALSE(QuantBytes(QuantType::kF32, int64_t{1} << 62).ok()) << "overflow";
  EXPECT_TRUE(QuantBytes(QuantType::kQ6_K, int64_t{1} << 62).ok()) << "2^54 blocks of 210 bytes fit";
}

TEST(QuantTest, Q8_0AndQ4_0ReadAsGgmlWritesThem) {
  uint8_t q8[34];
  const uint16_t half = F32ToF16(0.5f);
  std::memcpy(q8, &half, 2);
  for (int i = 0; i < 32; ++i) q8[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 16));
  float y[32];
  DequantizeRow(QuantType::kQ8_0, q8, y, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.5f * (i - 16)) << i;

  uint8_t q4[18];
  const uint16_t two = F32ToF16(2.0f);
  std::memcpy(q4, &two, 2);
  for (int j = 0; j < 16; ++j) q4[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  DequantizeRow(QuantType::kQ4_0, q4, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * (j - 8)) << "low nibbles are elements 0..15";
    EXPECT_EQ(y[j + 16], 2.0f * (7 - j)) << "high nibbles are elements 16..31";
  }
}

// scales[12] of a K-quant block from 8 (scale, min) pairs, bit by bit as
// ggml's get_scale_min_k4 reads them.
void PackK(const int* sc, const int* m, uint8_t* s) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

constexpr int kSc[8] = {1, 2, 3, 4, 17, 33, 50, 63};
constexpr int kMin[8] = {0, 5, 10, 63, 20, 40, 48, 16};

TEST(QuantTest, Q4KAndQ5KReadAsGgmlWritesThem) {
  BlockQ4K b{};
  b.d = F32ToF16(1.0f);
  b.dmin = F32ToF16(0.5f);
  PackK(kSc, kMin, b.scales);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    KQuantScaleMin(b.scales, j, &sc, &m);
    EXPECT_EQ(sc, kSc[j]);
    EXPECT_EQ(m, kMin[j]);
  }
  for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>((i % 16) | (((i + 3) % 16) << 4));
  float y[256];
  DequantizeRow(QuantType::kQ4_K, &b, y, 256);
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32, chunk = e / 64, l = e % 32;
    const uint8_t byte = b.qs[32 * chunk + l];
    const int q = sub % 2 == 0 ? byte & 15 : byte >> 4;
    EXPECT_EQ(y[e], 1.0f * kSc[sub] * q - 0.5f * kMin[sub]) << e;
  }

  BlockQ5K c{};
  c.d = F32ToF16(0.25f);
  c.dmin = F32ToF16(1.0f);
  PackK(kSc, kMin, c.scales);
  for (int i = 0; i < 128; ++i) c.qs[i] = static_cast<uint8_t>((i * 7) & 0xff);
  for (int i = 0; i < 32; ++i) c.qh[i] = static_cast<uint8_t>(0xA5 ^ (i * 13));
  DequantizeRow(QuantType::kQ5_K, &c, y, 256);
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32, chunk = e / 64, l = e % 32;
    const uint8_t byte = c.qs[32 * chunk + l];
    const int q = (sub % 2 == 0 ? byte & 15 : byte >> 4) + ((c.qh[l] >> sub) & 1) * 16;
    EXPECT_EQ(y[e], 0.25f * kSc[sub] * q - 1.0f * kMin[sub]) << e;
  }
}

TEST(QuantTest, Q6KReadsAsGgmlWritesIt) {
  BlockQ6K b{};
  b.d = F32ToF16(0.125f);
  for (int i = 0; i < 16; ++i) b.scales[i] = static_cast<int8_t>(i * 9 - 70);
  for (int i = 0; i < 128; ++i) b.ql[i] = static_cast<uint8_t>((i * 29 + 5) & 0xff);
  for (int i = 0; i < 64; ++i) b.qh[i] = static_cast<uint8_t>((i * 53 + 11) & 0xff);
  float y[256];
  DequantizeRow(QuantType::kQ6_K, &b, y, 256);
  for (int e = 0; e < 256; ++e) {
    // Half h of 128; inside it quarter r (0..3) of 32 and position l.
    const int h = e / 128, r = (e % 128) / 32, l = e % 32;
    const uint8_t lo = b.ql[64 * h + l + (r % 2) * 32];
    const int low = r < 2 ? lo & 15 : lo >> 4;
    const int high = (b.qh[32 * h + l] >> (2 * r)) & 3;
    EXPECT_EQ(y[e], 0.125f * b.scales[e / 16] * ((low | (high << 4)) - 32)) << e;
  }
}

TEST(QuantTest, EachQuantizerRoundTripsWithinItsTypesError) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t k = 4096;
  std::vector<float> x(k), y(k);
  for (auto& v : x) v = dist(rng) * 0.02f;
  x[5] = 0.3f;  // an outlier, as real weights have
  struct Case {
    QuantType t;
    double max_rel_rms;
  };
  for (const Case& c : {Case{QuantType::kF16, 1e-3}, Case{QuantType::kBF16, 5e-3}, Case{QuantType::kQ8_0, 0.01},
                        Case{QuantType::kQ6_K, 0.03}, Case{QuantType::kQ5_K, 0.06}, Case{QuantType::kQ4_K, 0.12},
                        Case{QuantType::kQ4_0, 0.15}}) {
    std::vector<uint8_t> q(static_cast<size_t>(QuantBytes(c.t, k).value()));
    QuantizeRow(c.t, x.data(), q.data(), k);
    DequantizeRow(c.t, q.data(), y.data(), k);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < k; ++i) err += (x[i] - y[i]) * (x[i] - y[i]), ref += x[i] * x[i];
    EXPECT_LT(std::sqrt(err / ref), c.max_rel_rms) << QuantTypeName(c.t);
  }
}

TEST(QuantTest, NonFiniteAndZeroBlocksQuantizeToFiniteValues) {
  std::vector<float> x(256, 0.0f), y(256);
  x[3] = NAN;
  x[100] = INFINITY;
  x[200] = 1.0f;
  for (QuantType t : {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_K, QuantType::kQ5_K, QuantType::kQ6_K}) {
    std::vector<uint8_t> q(static_cast<size_t>(QuantBytes(t, 256).value()));
    QuantizeRow(t, x.data(), q.data(), 256);
    DequantizeRow(t, q.data(), y.data(), 256);
    for (int i = 0; i < 256; ++i) ASSERT_TRUE(std::isfinite(y[i])) << QuantTypeName(t) << " " << i;
    EXPECT_NEAR(y[200], 1.0f, 0.1f) << QuantTypeName(t);
    std::vector<float> zeros(256, 0.0f);
    QuantizeRow(t, zeros.data(), q.data(), 256);
    DequantizeRow(t, q.data(), y.data(), 256);
    for (int i = 0; i < 256; ++i) ASSERT_EQ(y[i], 0.0f) << QuantTypeName(t);
  }
}

}  // namespace
}  // namespace crescent
