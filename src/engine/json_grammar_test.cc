#include "engine/json_grammar.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <random>

#include "base/json.h"
#include "engine/grammar_mask.h"

namespace crescent::engine {
namespace {

bool Accepts(const JsonGrammar& g, std::string_view text) {
  JsonState s = g.Start();
  g.FeedBytes(&s, text);
  return !s.dead() && g.Complete(s);
}

bool Alive(const JsonGrammar& g, std::string_view text) {
  JsonState s = g.Start();
  g.FeedBytes(&s, text);
  return !s.dead();
}

TEST(JsonGrammarTest, AnyObjectAcceptsJsonObjectsOnly) {
  auto g = JsonGrammar::AnyObject();
  for (const char* ok : {"{}", R"({"a":1})", R"({"a": [1, 2.5, -3e+2, true, null, {"b": "c\n\u00e9"}]})",
                         "{\n  \"k\": \"\xC3\xA9t\xC3\xA9\",\n  \"n\": 0.25\n}", R"({"":{}})"}) {
    EXPECT_TRUE(Accepts(*g, ok)) << ok;
  }
  for (const char* bad : {"[]", "1", R"({"a":1,})", R"({"a" 1})", R"({"a":01})", R"({"a":"x)"
                          "\x01"
                          R"("})",
                          R"({"a":tru})", R"({a:1})", R"({"a":1}})", R"( {})", R"({"a":"\q"})", R"({"a":1.})"}) {
    EXPECT_FALSE(Accepts(*g, bad)) << bad;
  }
  JsonState s = g->Start();
  g->FeedBytes(&s, "{\"a\":1}");
  EXPECT_TRUE(g->Finished(s));  // nothing may follow the closing brace
  // The shortest completion: close the string, a colon, a value, the brace.
  s = g->Start();
  g->FeedBytes(&s, R"({"ab)");
  EXPECT_EQ(g->MinBytesToComplete(s), 4);  // "  :  0  }
  JsonState t = g->Start();
  g->FeedBytes(&t, std::string(JsonGrammar::kMaxWhitespaceRun, ' ').insert(0, "{"));
  EXPECT_FALSE(t.dead());
  g->FeedBytes(&t, " ");
  EXPECT_TRUE(t.dead());  // whitespace runs are bounded
}

// {"name": string(1..5), "age": integer [0, 120], "tag"?: "x"|"y", "score": number (0, 1]}
std::shared_ptr<const JsonGrammar> PersonGrammar() {
  std::vector<JsonNode> nodes(6);
  nodes[0].kind = JsonKind::kObject;
  nodes[0].properties = {{"name", 1, true}, {"age", 2, true}, {"tag", 3, false}, {"score", 4, true}};
  nodes[1].kind = JsonKind::kString;
  nodes[1].min_length = 1;
  nodes[1].max_length = 5;
  nodes[2].kind = JsonKind::kInteger;
  nodes[2].minimum = 0;
  nodes[2].maximum = 120;
  nodes[3].literals = {"\"x\"", "\"y\""};
  nodes[4].kind = JsonKind::kNumber;
  nodes[4].minimum = 0;
  nodes[4].exclusive_minimum = true;
  nodes[4].maximum = 1;
  nodes[5].kind = JsonKind::kArray;  // unused
  nodes[5].items = 1;
  return *JsonGrammar::Create(std::move(nodes), 0);
}

TEST(JsonGrammarTest, SchemaPropertiesBoundsAndEnums) {
  auto g = PersonGrammar();
  EXPECT_TRUE(Accepts(*g, R"({"name":"bob","age":42,"score":0.5})"));
  EXPECT_TRUE(Accepts(*g, R"({"name": "\u00e9", "age": 120, "tag": "y", "score": 1})"));
  EXPECT_FALSE(Accepts(*g, R"({"age":42,"name":"bob","score":1})"));     // declared order
  EXPECT_FALSE(Accepts(*g, R"({"name":"bob","score":1})"));              // a required one missing
  EXPECT_FALSE(Alive(*g, R"({"name":"toolong")"));                       // maxLength
  EXPECT_FALSE(Alive(*g, R"({"name":"")"));                              // minLength
  EXPECT_FALSE(Alive(*g, R"({"name":"b","age":121)"));                   // maximum
  EXPECT_FALSE(Alive(*g, R"({"name":"b","age":-)"));                     // minimum 0: no sign
  EXPECT_FALSE(Alive(*g, R"({"name":"b","age":1.5)"));                   // an integer
  EXPECT_FALSE(Alive(*g, R"({"name":"b","age":1,"tag":"z")"));           // enum
  EXPECT_FALSE(Accepts(*g, R"({"name":"b","age":1,"score":0})"));        // exclusive minimum
  EXPECT_FALSE(Alive(*g, R"({"name":"b","age":1,"score":1.5)"));
  EXPECT_FALSE(Alive(*g, R"({"name":"b","age":1,"score":2)"));
  EXPECT_FALSE(Alive(*g, R"({"name":"b","age":1,"extra":1)"));           // undeclared
  EXPECT_TRUE(Alive(*g, R"({"name":"b","age":12)"));                     // 120 still reachable
  EXPECT_FALSE(Alive(*g, R"({"name":"b","age":130)"));
  // Shortest completion of {"name":"b : ","age":0,"score":1} less what is typed.
  JsonState s = g->Start();
  g->FeedBytes(&s, R"({"name":"b)");
  EXPECT_EQ(g->MinBytesToComplete(s), static_cast<int64_t>(std::string(R"(","age":0,"score":1})").size()));
}

TEST(JsonGrammarTest, AnyOfRecursionAndRefusals) {
  // A tree: {"v": integer, "kids"?: [tree]} or null.
  std::vector<JsonNode> nodes(5);
  nodes[0].kind = JsonKind::kAnyOf;
  nodes[0].alternatives = {1, 4};
  nodes[1].kind = JsonKind::kObject;
  nodes[1].properties = {{"v", 2, true}, {"kids", 3, false}};
  nodes[2].kind = JsonKind::kInteger;
  nodes[3].kind = JsonKind::kArray;
  nodes[3].items = 0;
  nodes[4].literals = {"null"};
  auto g = *JsonGrammar::Create(nodes, 0);
  EXPECT_TRUE(Accepts(*g, "null"));
  EXPECT_TRUE(Accepts(*g, R"({"v":1,"kids":[null,{"v":2,"kids":[]}]})"));
  EXPECT_FALSE(Accepts(*g, R"({"v":1,"kids":[1]})"));
  // A required property that contains itself has no finite value.
  std::vector<JsonNode> loop(1);
  loop[0].kind = JsonKind::kObject;
  loop[0].properties = {{"self", 0, true}};
  EXPECT_FALSE(JsonGrammar::Create(loop, 0).ok());
  std::vector<JsonNode> cyc(2);
  cyc[0].kind = cyc[1].kind = JsonKind::kAnyOf;
  cyc[0].alternatives = {1};
  cyc[1].alternatives = {0};
  EXPECT_FALSE(JsonGrammar::Create(cyc, 0).ok());
  std::vector<JsonNode> bounds(1);
  bounds[0].kind = JsonKind::kInteger;
  bounds[0].minimum = 0.2;
  bounds[0].maximum = 0.8;
  EXPECT_FALSE(JsonGrammar::Create(bounds, 0).ok());  // no integer within
  // Enum values where one is a prefix of another: 1 ends by what follows.
  std::vector<JsonNode> e(2);
  e[0].kind = JsonKind::kArray;
  e[0].items = 1;
  e[1].literals = {"12", "1"};
  auto eg = *JsonGrammar::Create(e, 0);
  EXPECT_TRUE(Accepts(*eg, "[1,12,1]"));
  EXPECT_FALSE(Accepts(*eg, "[13]"));
}

std::shared_ptr<const JsonGrammar> NumberGrammar(JsonKind kind, double lo, double hi, bool excl_lo = false, bool excl_hi = false) {
  std::vector<JsonNode> n(1);
  n[0].kind = kind;
  n[0].minimum = lo;
  n[0].maximum = hi;
  n[0].exclusive_minimum = excl_lo;
  n[0].exclusive_maximum = excl_hi;
  return *JsonGrammar::Create(std::move(n), 0);
}

TEST(JsonGrammarTest, TopLevelNumbersEndAtTheEndAndBoundsAreExact) {
  auto g = NumberGrammar(JsonKind::kInteger, 1, 5);
  JsonState s = g->Start();
  g->FeedBytes(&s, "5");
  EXPECT_TRUE(g->Complete(s));    // EOS may end it
  EXPECT_FALSE(g->Finished(s));   // (a number could go on; here its bounds say no digit can)
  EXPECT_FALSE(Alive(*g, "6"));
  EXPECT_FALSE(Alive(*g, "0"));
  // Decimal bounds compared as the parsed double, as a validator does.
  EXPECT_FALSE(Accepts(*NumberGrammar(JsonKind::kNumber, 0.3, 1, true), "0.3"));
  EXPECT_TRUE(Accepts(*NumberGrammar(JsonKind::kNumber, 0.3, 1, true), "0.31"));
  EXPECT_TRUE(Accepts(*NumberGrammar(JsonKind::kNumber, 0, 0.3), "0.3"));
  EXPECT_TRUE(Accepts(*NumberGrammar(JsonKind::kNumber, 0.3, 0.3), "0.3"));
  EXPECT_FALSE(Accepts(*NumberGrammar(JsonKind::kNumber, -1, -0.3, false, true), "-0.3"));
  EXPECT_TRUE(Accepts(*NumberGrammar(JsonKind::kNumber, -1, -0.3, false, true), "-0.4"));
  // No dead ends: under (0, 1], zeros after the point stop while a digit can still follow.
  auto pos = NumberGrammar(JsonKind::kNumber, 0, 1, true);
  JsonState z = pos->Start();
  pos->FeedBytes(&z, "0.");
  for (int i = 0; i < 40; ++i) {
    JsonState next = z;
    pos->FeedBytes(&next, "0");
    if (next.dead()) break;
    z = next;
  }
  EXPECT_LT(pos->MinBytesToComplete(z), 3);
  pos->FeedBytes(&z, "7");
  EXPECT_TRUE(pos->Complete(z));
}

TEST(JsonGrammarTest, BranchesAndDepthAreBounded) {
  // {"type": ["array", "array"], "items": {"$ref": "#"}}: two recursive
  // branches that share every prefix.
  std::vector<JsonNode> n(3);
  n[0].kind = JsonKind::kAnyOf;
  n[0].alternatives = {1, 2};
  n[1].kind = n[2].kind = JsonKind::kArray;
  n[1].items = n[2].items = 0;
  auto g = *JsonGrammar::Create(n, 0);
  JsonState s = g->Start();
  for (int i = 0; i < 60; ++i) {
    JsonState next = s;
    g->FeedBytes(&next, "[");
    if (next.dead()) break;
    s = next;
    EXPECT_LE(s.stacks.size(), JsonGrammar::kMaxStacks);
  }
  EXPECT_LE(s.stacks.front().size(), static_cast<size_t>(JsonGrammar::kMaxDepth));
  const int64_t close = g->MinBytesToComplete(s);
  g->FeedBytes(&s, std::string(static_cast<size_t>(close), ']'));
  EXPECT_TRUE(g->Complete(s)) << "the deepest nesting still closes";
  // Lone surrogates are refused (parsers reject them); other escapes are fine.
  auto obj = JsonGrammar::AnyObject();
  EXPECT_FALSE(Alive(*obj, R"({"a":"\ud8)"));
  EXPECT_TRUE(Accepts(*obj, R"({"a":"\u00e9\uFFFD\n"})"));
}

// A vocabulary of every printable byte and some longer pieces.
std::vector<std::string> SmallVocab() {
  std::vector<std::string> v;
  for (int c = 0x20; c < 0x7f; ++c) v.push_back(std::string(1, static_cast<char>(c)));
  for (const char* t : {"{\"", "\":", "\",\"", "\"}", "true", "null", "name", "age", "12", "  ", "\n", "},{", "\\n",
                        "\xC3\xA9", "abc\"", "\"a\"", ", "}) {
    v.push_back(t);
  }
  v.push_back("");  // an id that is never allowed (a special token)
  return v;
}

TEST(GrammarMaskTest, MaskAdmitsWhatTheMatcherAdmits) {
  auto g = PersonGrammar();
  const std::vector<std::string> vocab = SmallVocab();
  auto table = TokenTable::FromTexts(vocab);
  for (const char* prefix : {"", "{", R"({"name":")", R"({"name":"ab)", R"({"name":"ab","age":1)", R"({"name":"a","age":0,)"}) {
    JsonState s = g->Start();
    g->FeedBytes(&s, prefix);
    ASSERT_FALSE(s.dead()) << prefix;
    auto mask = MaskFor(*g, *table, s, -1);
    int64_t n = 0;
    for (size_t id = 0; id < vocab.size(); ++id) {
      JsonState t = s;
      g->FeedBytes(&t, vocab[id]);
      const bool want = !vocab[id].empty() && !t.dead();
      EXPECT_EQ(mask->test(static_cast<int32_t>(id)), want) << prefix << " + '" << vocab[id] << "'";
      n += want;
    }
    EXPECT_EQ(mask->allowed, n);
  }
  // Cached: the same state's mask is the same object.
  JsonState s = g->Start();
  EXPECT_EQ(MaskFor(*g, *table, s, -1), MaskFor(*g, *table, s, -1));
}

TEST(GrammarMaskTest, ValuesTheVocabularyCannotWriteAreRefused) {
  std::vector<JsonNode> n(1);
  n[0].literals = {"\"caf\xC3\xA9\"", "\"tea\""};
  auto g = *JsonGrammar::Create(n, 0);
  std::vector<std::string> vocab = SmallVocab();
  EXPECT_TRUE(CheckWritable(*g, *TokenTable::FromTexts(vocab)).ok());  // it has \xC3\xA9 whole
  vocab.erase(std::find(vocab.begin(), vocab.end(), "\xC3\xA9"));
  Status s = CheckWritable(*g, *TokenTable::FromTexts(vocab));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("caf"), std::string::npos);
}

// Random tokens under the mask with a budget always end in a value that parses
// and fits: free JSON and the schema, from many seeds and budgets.
TEST(GrammarMaskTest, RandomWalksWithinTheBudgetEndInValidJson) {
  const std::vector<std::string> vocab = SmallVocab();
  auto table = TokenTable::FromTexts(vocab);
  for (auto g : {JsonGrammar::AnyObject(), PersonGrammar()}) {
    std::mt19937 rng(7);
    for (int run = 0; run < 60; ++run) {
      const int64_t budget = 40 + run % 20;  // the person's shortest value is 33 bytes
      JsonState s = g->Start();
      std::string text;
      bool ended = false;
      for (int64_t left = budget; left > 0 && !ended; --left) {
        auto mask = MaskFor(*g, *table, s, left);
        std::vector<int32_t> ok;
        for (size_t id = 0; id < vocab.size(); ++id) {
          if (mask->test(static_cast<int32_t>(id))) ok.push_back(static_cast<int32_t>(id));
        }
        if (mask->end_allowed && (ok.empty() || rng() % 4 == 0)) break;
        ASSERT_FALSE(ok.empty()) << text;
        const int32_t t = ok[rng() % ok.size()];
        text += vocab[t];
        g->FeedBytes(&s, vocab[t]);
        ASSERT_FALSE(s.dead()) << text;
        ended = g->Finished(s);
      }
      ASSERT_TRUE(g->Complete(s)) << "budget " << budget << ": " << text;
      Result<boost::json::value> v = ParseJson(text, "output");
      ASSERT_TRUE(v.ok()) << text;
      EXPECT_TRUE(v->is_object()) << text;
    }
  }
}

}  // namespace
}  // namespace crescent::engine
