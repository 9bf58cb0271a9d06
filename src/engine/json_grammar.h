// Structured output's grammar: the shape of a JSON value (free JSON, or a
// subset of JSON Schema the server compiled into JsonNode's; no JSON parsing
// here, STYLE rule 10) and a byte-level matcher over it.
//
// A JsonState is the set of stacks of a nondeterministic pushdown matcher
// (anyOf keeps one stack per branch still alive); Feed advances it by one
// byte, and the state is dead when no stack is left. What it accepts, and so
// what a constrained generation can produce:
//   - JSON with whitespace only inside containers (space, \n, \t, \r; at most
//     kMaxWhitespaceRun bytes in a row), none before or after the top value;
//   - declared object properties in their declared order, optional ones
//     possibly left out, no undeclared ones (a subset of what the schema
//     allows); objects without declared properties take any keys when
//     `additional` names their values' node;
//   - strings without raw control characters, escapes checked, lengths in
//     characters (code points; an escape is one);
//   - numbers of at most 16 integer and 16 fraction digits (and 3 exponent
//     digits); a bounded number has at most 15 digits in all and no exponent,
//     its bounds checked on every prefix (a prefix is kept only if some
//     completion lies within them; the final value compared as the double
//     it parses to, as JSON validators do), bounds within +-1e15;
//   - \u escapes of anything but a surrogate (write such characters raw);
//   - nesting at most kMaxDepth frames deep (a value is not begun where what
//     it needs at the least would not fit), at most kMaxStacks branches alive.
// Every complete text it accepts is valid JSON that satisfies the schema.
// MinBytesToComplete(state) is the fewest bytes that complete the value
// from there: with one token per byte available, a generation that keeps it
// within its remaining token budget always ends in a complete value.
// Thread-safety: JsonGrammar is immutable after Create (its mask cache,
// grammar_mask.h, locks itself); states are values.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace crescent::engine {

enum class JsonKind : uint8_t {
  kObject,    // { ... }
  kArray,     // [ ... ]
  kString,    // "..."
  kNumber,    // any JSON number
  kInteger,   // digits only (and a sign)
  kLiterals,  // one of `literals` exactly (enum, const, true, false, null)
  kAnyOf,     // one of `alternatives`
};

struct JsonNode {
  JsonKind kind = JsonKind::kLiterals;
  // kObject: declared properties, emitted in this order.
  struct Property {
    std::string name;  // unescaped
    int32_t value = 0;
    bool required = false;
  };
  std::vector<Property> properties;
  int32_t additional = -1;  // kObject without properties: the node of any key's value (-1: {} only)
  // kArray
  int32_t items = 0;
  int64_t min_items = 0, max_items = std::numeric_limits<int64_t>::max();
  // kString: in characters
  int64_t min_length = 0, max_length = std::numeric_limits<int64_t>::max();
  // kNumber / kInteger
  double minimum = -std::numeric_limits<double>::infinity();
  double maximum = std::numeric_limits<double>::infinity();
  bool exclusive_minimum = false, exclusive_maximum = false;
  // kLiterals: JSON texts, exactly as they must appear (e.g. "\"red\"", "12", "null")
  std::vector<std::string> literals;
  // kAnyOf
  std::vector<int32_t> alternatives;

  bool bounded() const;  // kNumber / kInteger with a finite bound
};

struct JsonFrame {
  int32_t node = 0;
  uint8_t phase = 0;
  uint8_t ws = 0;      // whitespace bytes in the current run
  uint8_t neg = 0;     // number: a leading '-'
  uint8_t digits = 0;  // number: digits of the current part
  int32_t a = 0;       // object: next property; array: items (when bounded); string: characters; literal: candidate
  int32_t b = 0;       // object: chosen property (-1: a free key); literal / key: position; string: \u's first digit
  int32_t c = 0;       // object key: candidate; string: \u digits left; bounded number: integer digits
  double v = 0;        // bounded number: every digit so far, as an integer (exact: at most 15)
  bool operator==(const JsonFrame&) const = default;
  auto operator<=>(const JsonFrame&) const = default;
};
using JsonStack = std::vector<JsonFrame>;

struct JsonState {
  std::vector<JsonStack> stacks;  // sorted, unique; empty: dead
  bool dead() const { return stacks.empty(); }
  std::string Key() const;  // identifies the state (for caches)
};

class JsonGrammar {
 public:
  static constexpr int kMaxWhitespaceRun = 16;
  static constexpr int kMaxDepth = 48;
  static constexpr int kMaxDigits = 16;
  static constexpr int kMaxBoundedDigits = 15;  // exact in a double
  static constexpr size_t kMaxStacks = 64;

  // Validates the graph (indices, bounds, anyOf cycles, a finite shortest
  // value); `nodes` may refer to each other recursively.
  static Result<std::shared_ptr<const JsonGrammar>> Create(std::vector<JsonNode> nodes, int32_t root);
  // Any JSON object (response_format json_object).
  static std::shared_ptr<const JsonGrammar> AnyObject();
  // Appends the node family of any JSON value to `nodes`; returns its node.
  static int32_t AddAnyValue(std::vector<JsonNode>* nodes);

  JsonState Start() const;
  // The state after `byte`; `out` is reused (its storage kept).
  void Feed(const JsonState& in, uint8_t byte, JsonState* out) const;
  void FeedBytes(JsonState* state, std::string_view bytes) const;
  int64_t MinBytesToComplete(const JsonState& state) const;
  // The top value may end here (the model's EOS may come; a top-level
  // number may also go on).
  bool Complete(const JsonState& state) const;
  // The top value ended and nothing can follow.
  bool Finished(const JsonState& state) const;

  const std::vector<JsonNode>& nodes() const { return nodes_; }
  int32_t root() const { return root_; }
  ~JsonGrammar();

  // The mask cache (grammar_mask.h): per grammar, opaque here.
  struct MaskCache;
  MaskCache& mask_cache() const { return *cache_; }

 private:
  JsonGrammar();
  enum class Act : uint8_t { kReject, kKeep, kPop, kPopRefeed, kPush };
  void Step(JsonStack s, uint8_t c, std::vector<JsonStack>* out) const;
  void PushValue(JsonStack s, int32_t node, uint8_t c, std::vector<JsonStack>* out) const;
  Act StepFrame(JsonFrame& f, uint8_t c, int32_t* child) const;
  // Whitespace between a container's tokens (where `allowed`): true when `c`
  // was whitespace, with *act its fate (runs bounded by kMaxWhitespaceRun).
  bool Whitespace(JsonFrame& f, uint8_t c, bool allowed, Act* act) const;
  Act StepObject(JsonFrame& f, const JsonNode& n, uint8_t c, int32_t* child) const;
  Act StepArray(JsonFrame& f, const JsonNode& n, uint8_t c, int32_t* child) const;
  Act StepString(JsonFrame& f, const JsonNode& n, uint8_t c) const;
  Act StepNumber(JsonFrame& f, const JsonNode& n, uint8_t c) const;
  Act StepNumberRaw(JsonFrame& f, const JsonNode& n, uint8_t c) const;  // without the reachability check
  Act StepLiteral(JsonFrame& f, const JsonNode& n, uint8_t c) const;
  bool NumberFeasible(const JsonFrame& f, const JsonNode& n) const;
  bool NumberCanEnd(const JsonFrame& f, const JsonNode& n) const;
  // Bytes to an allowed value of a bounded number (0: it can end), kInf: none.
  int64_t NumberDistance(const JsonFrame& f, const JsonNode& n) const;
  bool EndsAtEndOfText(const JsonStack& s) const;
  int64_t Remaining(const JsonFrame& f) const;
  int64_t KeyCost(const JsonNode& n, int32_t k, int64_t typed) const;
  int64_t Tail(int32_t node, int32_t next) const;
  int32_t LastCandidate(const JsonNode& n, int32_t from) const;

  std::vector<JsonNode> nodes_;
  int32_t root_ = 0;
  int32_t key_node_ = -1;                    // a plain string: free objects' keys
  std::vector<std::vector<int32_t>> expansions_;  // per node: what it is through anyOf (never an anyOf)
  std::vector<int64_t> min_len_;             // per node: bytes of its shortest value
  std::vector<int32_t> min_depth_;           // per node: frames its shortest value needs
  std::vector<std::vector<std::string>> keys_;          // per object node: each property's key text ("name")
  std::vector<std::vector<int64_t>> req_cost_, req_count_;  // per object node, from property i on
  std::unique_ptr<MaskCache> cache_;
};

}  // namespace crescent::engine
