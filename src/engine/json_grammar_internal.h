// What json_grammar.cc and json_grammar_number.cc share: the frames' phases,
// the "no completion" distance and the number helpers. Internal to the grammar.
#pragma once

#include <cstdint>
#include <limits>

#include "engine/json_grammar.h"

namespace crescent::engine::json_grammar_internal {

constexpr int64_t kInf = int64_t{1} << 40;
constexpr int64_t kNoLimit = std::numeric_limits<int64_t>::max();

enum ObjPhase : uint8_t { kObjOpen, kObjFirst, kObjKey, kObjColon, kObjValue, kObjAfter, kObjComma };
enum ArrPhase : uint8_t { kArrOpen, kArrFirst, kArrAfter, kArrComma };
enum StrPhase : uint8_t { kStrOpen, kStrBody, kStrEsc, kStrHex };
enum NumPhase : uint8_t { kNumOpen, kNumSign, kNumZero, kNumInt, kNumDot, kNumFrac, kNumExp, kNumExpSign, kNumExpDigits };

inline bool IsDigit(uint8_t c) { return c >= '0' && c <= '9'; }

// Whether x is within the node's bounds (exclusive ones honoured).
bool InBounds(const JsonNode& n, double x);
// Bytes of the shortest number within the node's bounds (kInf: none short enough).
int64_t ShortestNumber(const JsonNode& n);

}  // namespace crescent::engine::json_grammar_internal
