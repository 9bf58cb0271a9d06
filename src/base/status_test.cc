#include "base/status.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "base/hash.h"
#include "base/json.h"

namespace crescent {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  return Half(h);
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = NotFound("x");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NotFound: x");
  EXPECT_EQ(s.WithContext("load").message(), "load: x");
}

TEST(StatusTest, ResultPropagates) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_FALSE(Quarter(6).ok());
  EXPECT_EQ(Quarter(6).status().message(), "odd");
}

TEST(HashTest, StreamingEqualsOneShot) {
  std::string a = "hello ", b = "world";
  Hasher128 h;
  h.Update(a.data(), a.size());
  h.Update(b.data(), b.size());
  std::string ab = a + b;
  EXPECT_EQ(h.Finish(), HashBytes128(ab.data(), ab.size()));
  EXPECT_NE(HashBytes128("a", 1), HashBytes128("b", 1));
  EXPECT_EQ(HashBytes128("a", 1).ToHex().size(), 32u);
}

TEST(HashTest, ScatterAndHashCopiesPartsAndHashesEverything) {
  std::vector<std::byte> src(300'000);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<std::byte>(i * 7 + 3);
  std::vector<std::byte> a(1000), b(200'000), c(100'000, std::byte{0x55});
  // [a: 1000][skip 10][b: 200000][skip rest of the bytes into c's absence]
  std::vector<ScatterPart> parts = {{a.data(), a.size()}, {nullptr, 10}, {b.data(), b.size()}, {c.data(), 98'990}};
  EXPECT_EQ(ScatterAndHash64(parts, src.data(), src.size()), HashBytes64(src.data(), src.size()));
  EXPECT_TRUE(std::equal(a.begin(), a.end(), src.begin()));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), src.begin() + 1010));
  EXPECT_TRUE(std::equal(c.begin(), c.begin() + 98'990, src.begin() + 201'010));
  EXPECT_EQ(c[98'990], std::byte{0x55});  // past the parts: untouched
  std::vector<std::byte> one(src.size());
  std::vector<ScatterPart> single = {{one.data(), one.size()}};
  EXPECT_EQ(ScatterAndHash64(single, src.data(), src.size()), HashBytes64(src.data(), src.size()));
  EXPECT_EQ(one, src);
}

TEST(JsonReaderTest, NamesTheField) {
  auto v = ParseJson(R"({"a": 3, "b": "x", "c": 1.5, "d": null})", "t");
  ASSERT_TRUE(v.ok());
  JsonReader r(*v, "t");
  EXPECT_EQ(r.Int("a"), 3);
  EXPECT_EQ(r.IntOr("d", 7), 7);
  EXPECT_DOUBLE_EQ(r.Number("c"), 1.5);
  EXPECT_TRUE(r.status().ok());
  r.Int("b");
  EXPECT_EQ(r.status().message(), "t: field 'b': expected an integer, got string");
  JsonReader r2(*v, "t");
  r2.Int("zzz");
  EXPECT_EQ(r2.status().message(), "t: field 'zzz': missing");
  EXPECT_FALSE(ParseJson("{", "t").ok());
}

}  // namespace
}  // namespace crescent
