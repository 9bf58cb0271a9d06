#include "base/status.h"

#include <gtest/gtest.h>

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
