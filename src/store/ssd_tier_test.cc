// The SSD tier on real files in a temp directory: round trips through
// io_uring, a reopen finds every record again under the same node id, and a
// torn file, a bad header, a leftover temporary or a flipped byte is
// skipped or reported, never served.
#include "store/ssd_tier.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

namespace crescent::store {
namespace {

// A record (header block + bytes) in 4 KiB-aligned memory.
struct Record {
  std::vector<std::byte> storage;
  std::byte* base = nullptr;
  Record(const Key& key, size_t size, uint64_t seed) : storage(RecordBytes(size) + kBlock) {
    base = reinterpret_cast<std::byte*>((reinterpret_cast<uintptr_t>(storage.data()) + kBlock - 1) & ~(kBlock - 1));
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < size; ++i) base[kBlock + i] = static_cast<std::byte>(rng());
    RecordHeader h = MakeHeader(key, size, Checksum({base + kBlock, size}), 7);
    std::memcpy(base, &h, sizeof(h));
  }
  std::span<const std::byte> bytes(size_t size) const { return {base + kBlock, size}; }
};

class SsdTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crescent-ssd-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<SsdTier> Open(uint64_t capacity = 256 << 20) {
    SsdTierOptions o;
    o.dir = dir_;
    o.capacity = capacity;
    auto t = SsdTier::Open(o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(t).value() : nullptr;
  }
  std::string dir_;
};

TEST_F(SsdTierTest, RoundTripsAndSurvivesAReopen) {
  std::vector<std::pair<Key, size_t>> objs = {{{1, 0}, 1}, {{2, 0}, 4095}, {{3, 0}, 4096}, {{4, 9}, 8 << 20},
                                              {{5, 0}, (3 << 20) + 17}};
  std::vector<uint64_t> locs;
  std::string id;
  {
    auto t = Open();
    ASSERT_TRUE(t);
    id = t->node_id();
    for (size_t i = 0; i < objs.size(); ++i) {
      Record r(objs[i].first, objs[i].second, i);
      Result<uint64_t> loc = t->WriteRecord(r.base);
      ASSERT_TRUE(loc.ok()) << loc.status().ToString();
      locs.push_back(*loc);
      std::vector<std::byte> out(objs[i].second);
      ASSERT_TRUE(t->Read(*loc, objs[i].first, out).ok());
      EXPECT_TRUE(std::equal(out.begin(), out.end(), r.bytes(objs[i].second).begin()));
    }
    std::printf("O_DIRECT %s\n", t->direct() ? "on" : "off (refused by the filesystem)");
  }
  auto t = Open();  // as a restarted node would
  ASSERT_TRUE(t);
  EXPECT_EQ(t->node_id(), id);
  EXPECT_EQ(t->scan_report().records, objs.size());
  std::vector<SsdObject> held = t->Objects();
  ASSERT_EQ(held.size(), objs.size());
  for (size_t i = 0; i < objs.size(); ++i) {
    Record r(objs[i].first, objs[i].second, i);
    std::vector<std::byte> out(objs[i].second);
    ASSERT_TRUE(t->Read(locs[i], objs[i].first, out).ok());
    EXPECT_TRUE(std::equal(out.begin(), out.end(), r.bytes(objs[i].second).begin()));
  }
  EXPECT_EQ(t->Read(locs[0], Key{99, 0}, std::span<std::byte>()).code(), StatusCode::kNotFound);
  t->Remove(locs[0]);
  EXPECT_FALSE(std::filesystem::exists(t->PathOf(locs[0])));
  std::vector<std::byte> out(1);
  EXPECT_EQ(t->Read(locs[0], objs[0].first, out).code(), StatusCode::kNotFound);
}

TEST_F(SsdTierTest, DamagedFilesAreSkippedOrCaughtNeverServed) {
  uint64_t torn, flipped, bad, good;
  {
    auto t = Open();
    Record a({1, 0}, 100000, 1), b({2, 0}, 100000, 2), c({3, 0}, 100000, 3), d({4, 0}, 5000, 4);
    torn = *t->WriteRecord(a.base);
    flipped = *t->WriteRecord(b.base);
    bad = *t->WriteRecord(c.base);
    good = *t->WriteRecord(d.base);
    ASSERT_EQ(truncate(t->PathOf(torn).c_str(), 50000), 0);  // a write cut short
    {
      std::fstream f(t->PathOf(flipped), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(kBlock + 777);
      char ch;
      f.seekg(kBlock + 777);
      f.get(ch);
      f.seekp(kBlock + 777);
      f.put(static_cast<char>(ch ^ 0x10));
    }
    {
      std::fstream f(t->PathOf(bad), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(20);
      f.put('x');
    }
    std::ofstream(dir_ + "/99.tmp") << "half a write";
  }
  auto t = Open();
  const SsdScanReport& r = t->scan_report();
  EXPECT_EQ(r.torn, 1u);
  EXPECT_EQ(r.bad_headers, 1u);
  EXPECT_EQ(r.temporaries, 1u);
  EXPECT_EQ(r.records, 2u);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/99.tmp"));
  std::vector<std::byte> out(100000);
  Status s = t->Read(flipped, Key{2, 0}, out);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << "a flipped byte must be caught by the checksum";
  EXPECT_EQ(t->Read(torn, Key{1, 0}, out).code(), StatusCode::kNotFound);
  std::vector<std::byte> small(5000);
  EXPECT_TRUE(t->Read(good, Key{4, 0}, small).ok());
}

// A header whose checksum matches but whose size no record of this tier can
// have (past its capacity; 2^64 - 100 wrapped RecordBytes' rounding to one
// block) is a bad header, not an object of 16 EiB.
TEST_F(SsdTierTest, AHeaderSizedPastTheCapacityIsRefused) {
  {
    auto t = Open();
    Record d({4, 0}, 5000, 4);
    ASSERT_TRUE(t->WriteRecord(d.base).ok());
  }
  for (uint64_t size : {~uint64_t{0} - 100, uint64_t{1} << 40}) {
    RecordHeader h = MakeHeader(Key{9, 9}, size, 0, 5);
    std::string block(kBlock * 2, '\0');
    std::memcpy(block.data(), &h, sizeof(h));
    std::ofstream(dir_ + "/5.rec", std::ios::binary) << block;
    auto t = Open();
    EXPECT_EQ(t->scan_report().bad_headers, 1u) << size;
    EXPECT_EQ(t->scan_report().records, 1u);
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/5.rec"));
  }
}

TEST_F(SsdTierTest, AFullTierRefusesWrites) {
  auto t = Open(RecordBytes(1 << 20) * 2);
  Record r({1, 0}, 1 << 20, 1);
  ASSERT_TRUE(t->WriteRecord(r.base).ok());
  ASSERT_TRUE(t->WriteRecord(r.base).ok());
  Result<uint64_t> third = t->WriteRecord(r.base);
  EXPECT_EQ(third.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(t->used(), 2 * RecordBytes(1 << 20));
  std::vector<std::byte> junk(kBlock * 2, std::byte{0});
  EXPECT_EQ(t->WriteRecord(junk.data()).status().code(), StatusCode::kInvalidArgument) << "no valid header";
}

}  // namespace
}  // namespace crescent::store
