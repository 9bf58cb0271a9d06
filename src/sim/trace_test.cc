#include "sim/trace.h"

#include <gtest/gtest.h>

namespace crescent::sim {
namespace {

TEST(TraceTest, ParsesLinesAndSortsByTimestamp) {
  const char* text =
      "{\"timestamp\": 5, \"input_length\": 700, \"output_length\": 3, \"hash_ids\": [0, 1]}\n"
      "\n"
      "{\"timestamp\": 2, \"input_length\": 100, \"output_length\": 1, \"hash_ids\": [7]}\n";
  Result<Trace> t = ParseTrace(text, "t.jsonl");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->requests.size(), 2u);
  EXPECT_EQ(t->requests[0].timestamp_ms, 2);
  EXPECT_EQ(t->Keys(t->requests[0]).size(), 1u);
  EXPECT_EQ(t->Keys(t->requests[0])[0], conductor::TraceBlockKey(7));
  EXPECT_EQ(t->requests[1].input_tokens, 700);
  EXPECT_EQ(t->Keys(t->requests[1])[1], conductor::TraceBlockKey(1));
  Trace p = t->Prefix(1);
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.Keys(p.requests[0])[0], conductor::TraceBlockKey(7));
}

TEST(TraceTest, MalformedLinesNameTheirLine) {
  const std::string good = "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0]}\n";
  struct Case {
    std::string line, want;
  } cases[] = {
      {"{\"timestamp\": 0, \"input_length\": 10", "t.jsonl:3: malformed JSON"},
      {"{\"timestamp\": 0, \"output_length\": 1, \"hash_ids\": []}", "t.jsonl:3: field 'input_length': missing"},
      {"{\"timestamp\": 0, \"input_length\": \"x\", \"output_length\": 1, \"hash_ids\": []}",
       "t.jsonl:3: field 'input_length': expected an integer"},
      {"{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 1, \"hash_ids\": []}",
       "t.jsonl:3: field 'input_length': must be positive"},
      {"{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [-1]}",
       "t.jsonl:3: field 'hash_ids': expected non-negative integers"},
      {"{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1}", "t.jsonl:3: field 'hash_ids'"},
      {"[1, 2]", "t.jsonl:3: expected a JSON object"},
  };
  for (const Case& c : cases) {
    Result<Trace> t = ParseTrace(good + good + c.line + "\n" + good, "t.jsonl");
    ASSERT_FALSE(t.ok()) << c.line;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find(c.want), std::string::npos) << t.status().message();
  }
}

TEST(TraceTest, EmptyAndMissingFiles) {
  EXPECT_FALSE(ParseTrace("\n\n", "e").ok());
  Result<Trace> t = LoadTrace("/nonexistent/trace.jsonl");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
}

TEST(TraceTest, FormatRoundTrips) {
  const char* text =
      "{\"timestamp\": 0, \"input_length\": 700, \"output_length\": 3, \"hash_ids\": [0, 1]}\n"
      "{\"timestamp\": 9, \"input_length\": 100, \"output_length\": 0, \"hash_ids\": [18446744073709551615]}\n";
  Trace t = *ParseTrace(text, "t");
  EXPECT_EQ(FormatTrace(t), text);
}

}  // namespace
}  // namespace crescent::sim
