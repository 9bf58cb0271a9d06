// LargeBuffer: zeroed, aligned, writable to its last byte, moved without a
// double unmap, and an impossible size is an error, not a crash.
#include "base/large_buffer.h"

#include <gtest/gtest.h>

#include <cstring>

namespace crescent {
namespace {

TEST(LargeBufferTest, ZeroedAlignedAndWritableToTheEnd) {
  for (size_t bytes : {size_t{1}, size_t{4095}, size_t{4097}, size_t{3} << 20, (size_t{2} << 20) + 1}) {
    auto b = LargeBuffer::Allocate(bytes);
    ASSERT_TRUE(b.ok()) << bytes;
    ASSERT_EQ(b->size(), bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % (bytes >= (size_t{2} << 20) ? (size_t{2} << 20) : 4096), 0u);
    for (size_t i = 0; i < bytes; i += 4096) EXPECT_EQ(b->data()[i], 0) << i;
    EXPECT_EQ(b->data()[bytes - 1], 0);
    std::memset(b->data(), 0xAB, bytes);
    EXPECT_EQ(b->data()[bytes - 1], 0xAB);
  }
}

TEST(LargeBufferTest, MovesOwnership) {
  auto a = LargeBuffer::Allocate(size_t{5} << 20);
  ASSERT_TRUE(a.ok());
  uint8_t* p = a->data();
  p[123] = 7;
  LargeBuffer b = std::move(*a);
  EXPECT_EQ(a->data(), nullptr);
  EXPECT_EQ(a->size(), 0u);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.data()[123], 7);
  LargeBuffer c;
  c = std::move(b);
  EXPECT_EQ(c.data()[123], 7);
  c = LargeBuffer::Allocate(10).value();  // the old mapping is released, the new one held
  EXPECT_EQ(c.size(), 10u);
  c.data()[9] = 1;
}

TEST(LargeBufferTest, AnImpossibleSizeIsAnError) {
  for (size_t bytes : {size_t{1} << 62, ~size_t{0}, ~size_t{0} - 4000}) {
    auto b = LargeBuffer::Allocate(bytes);
    EXPECT_FALSE(b.ok()) << bytes;
    EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted);
  }
}

}  // namespace
}  // namespace crescent
