// JsonGrammar's numbers: the digits of a number frame, and the bounds of a
// bounded one checked on every prefix (json_grammar.h states the rules).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "engine/json_grammar.h"
#include "engine/json_grammar_internal.h"

namespace crescent::engine {
namespace json_grammar_internal {
namespace {


// A bounded number's magnitude: its digits (an exact integer) over 10^fraction
// digits, rounded once, as a JSON parser reads the text.
double Magnitude(const JsonFrame& f, bool in_fraction) {
  if (!in_fraction || f.digits == 0) return f.v;
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.0fe-%d", f.v, static_cast<int>(f.digits));
  return std::strtod(buf, nullptr);
}
}  // namespace

bool InBounds(const JsonNode& n, double x) {
  return (x > n.minimum || (x == n.minimum && !n.exclusive_minimum)) &&
         (x < n.maximum || (x == n.maximum && !n.exclusive_maximum));
}

int64_t IntDigits(double x) {
  int64_t d = 1;
  for (double p = 10; p <= x && d < 40; p *= 10) ++d;
  return d;
}

// Bytes of the shortest number within the node's bounds (kInf: none short enough).
int64_t ShortestNumber(const JsonNode& n) {
  if (!n.bounded() || InBounds(n, 0)) return 1;
  const bool neg = n.maximum <= 0;
  const double mlo = neg ? -n.maximum : n.minimum;  // the smallest magnitude allowed (or just above it)
  const int max_m = n.kind == JsonKind::kInteger ? 0 : JsonGrammar::kMaxDigits;
  for (int m = 0; m <= max_m; ++m) {
    const double p = std::pow(10.0, m);
    double x = std::ceil(mlo * p) / p;
    for (int t = 0; t < 2; ++t, x += 1 / p) {
      if (x >= 1e15) break;
      if (InBounds(n, neg ? -x : x)) return (neg ? 1 : 0) + IntDigits(x) + (m > 0 ? 1 + m : 0);
    }
  }
  return kInf;
}

}  // namespace json_grammar_internal

using namespace json_grammar_internal;

bool JsonGrammar::NumberFeasible(const JsonFrame& f, const JsonNode& n) const {
  if (!n.bounded()) return true;
  // Bounds on the magnitude (mirrored for a negative number).
  const double mlo = f.neg ? -n.maximum : n.minimum, mhi = f.neg ? -n.minimum : n.maximum;
  const bool elo = f.neg ? n.exclusive_maximum : n.exclusive_minimum;
  const bool ehi = f.neg ? n.exclusive_minimum : n.exclusive_maximum;
  // Whether a magnitude in [a, b) (a attainable; b too when b_in) is allowed.
  auto hit = [&](double a, double b, bool b_in) {
    const double lo = std::max(a, mlo), hi = std::min(b, mhi);
    if (lo < hi) return true;
    if (lo > hi) return false;
    const bool attainable = (lo > a && lo < b) || lo == a || (lo == b && b_in);
    return attainable && !(lo == mlo && elo) && !(lo == mhi && ehi);
  };
  const bool integer = n.kind == JsonKind::kInteger;
  const bool fraction = f.phase == kNumFrac;
  const int room = kMaxBoundedDigits - f.c - (fraction ? f.digits : 0);  // digits that may still come
  const double x = Magnitude(f, fraction);
  switch (f.phase) {
    case kNumSign:
      return hit(0, 1e15, false);
    case kNumZero:
      return integer || room <= 0 ? hit(0, 0, true) : hit(0, 1, false);
    case kNumInt: {
      if (integer || room <= 0 ? hit(x, x, true) : hit(x, x + 1, false)) return true;
      double p = 1;
      for (int k = 1; k <= room; ++k) {
        p *= 10;
        if (integer ? hit(x * p, (x + 1) * p - 1, true) : hit(x * p, (x + 1) * p, false)) return true;
      }
      return false;
    }
    case kNumDot:
      return room > 0 && hit(x, x + 1, false);
    case kNumFrac:
      return room > 0 ? hit(x, x + std::pow(10.0, -f.digits), false) : hit(x, x, true);
    default:
      return true;
  }
}

bool JsonGrammar::NumberCanEnd(const JsonFrame& f, const JsonNode& n) const {
  if (f.phase != kNumZero && f.phase != kNumInt && f.phase != kNumFrac && f.phase != kNumExpDigits) return false;
  if (!n.bounded()) return true;
  const double x = Magnitude(f, f.phase == kNumFrac);
  return InBounds(n, f.neg ? -x : x);
}

int64_t JsonGrammar::NumberDistance(const JsonFrame& f, const JsonNode& n) const {
  if (NumberCanEnd(f, n)) return 0;
  if (!n.bounded()) {
    return f.phase == kNumOpen ? 1 : f.phase == kNumSign || f.phase == kNumDot || f.phase == kNumExp || f.phase == kNumExpSign ? 1 : 0;
  }
  // The fewest digits (and a point) that reach an allowed value, breadth
  // first over the prefixes the bounds keep ("0" with 0 excluded needs ".1";
  // 1 in [100, 200] needs "00").
  std::vector<JsonFrame> level = {f}, next;
  for (int64_t depth = 1; depth <= kMaxBoundedDigits + 2 && !level.empty(); ++depth) {
    next.clear();
    for (const JsonFrame& x : level) {
      for (uint8_t c : std::string_view("0123456789.")) {
        JsonFrame y = x;
        if (StepNumberRaw(y, n, c) != Act::kKeep || !NumberFeasible(y, n)) continue;
        if (NumberCanEnd(y, n)) return depth;
        if (next.size() < 256) next.push_back(y);
      }
    }
    std::swap(level, next);
  }
  return kInf;
}

JsonGrammar::Act JsonGrammar::StepNumber(JsonFrame& f, const JsonNode& n, uint8_t c) const {
  const Act a = StepNumberRaw(f, n, c);
  // A bounded prefix is kept only if some completion of it is allowed.
  if (a == Act::kKeep && n.bounded() && (!NumberFeasible(f, n) || NumberDistance(f, n) >= kInf)) return Act::kReject;
  return a;
}

JsonGrammar::Act JsonGrammar::StepNumberRaw(JsonFrame& f, const JsonNode& n, uint8_t c) const {
  const bool integer = n.kind == JsonKind::kInteger, bounded = n.bounded();
  const int d = c - '0';
  auto end = [&] { return NumberCanEnd(f, n) ? Act::kPopRefeed : Act::kReject; };
  auto digit = [&] {  // one more digit: the integer part's, or the fraction's
    if (bounded) {
      if (f.c + (f.phase == kNumFrac ? f.digits : 0) >= kMaxBoundedDigits) return false;
      f.v = f.v * 10 + d;
    } else if (f.digits >= kMaxDigits) {
      return false;
    }
    ++f.digits;
    if (bounded && f.phase == kNumInt) ++f.c;
    return true;
  };
  switch (f.phase) {
    case kNumOpen:
      if (c == '-') {
        if (n.minimum >= 0) return Act::kReject;  // no "-0" where negatives are out of bounds
        f.neg = 1;
        f.phase = kNumSign;
        return Act::kKeep;
      }
      [[fallthrough]];
    case kNumSign:
      if (!IsDigit(c)) return Act::kReject;
      f.phase = d == 0 ? kNumZero : kNumInt;
      f.digits = 1;
      if (bounded) {
        f.v = d;
        f.c = 1;
      }
      return Act::kKeep;
    case kNumZero:
    case kNumInt:
      if (IsDigit(c)) {
        if (f.phase == kNumZero) return Act::kReject;
        return digit() ? Act::kKeep : Act::kReject;
      }
      if (c == '.' && !integer) {
        f.phase = kNumDot;
        f.digits = 0;
        return Act::kKeep;
      }
      if ((c == 'e' || c == 'E') && !integer && !bounded) {
        f.phase = kNumExp;
        f.digits = 0;
        return Act::kKeep;
      }
      return end();
    case kNumDot:
      if (!IsDigit(c)) return Act::kReject;
      f.phase = kNumFrac;
      return digit() ? Act::kKeep : Act::kReject;
    case kNumFrac:
      if (IsDigit(c)) return digit() ? Act::kKeep : Act::kReject;
      if ((c == 'e' || c == 'E') && !bounded) {
        f.phase = kNumExp;
        f.digits = 0;
        return Act::kKeep;
      }
      return end();
    case kNumExp:
      if (c == '+' || c == '-') {
        f.phase = kNumExpSign;
        return Act::kKeep;
      }
      [[fallthrough]];
    case kNumExpSign:
      if (!IsDigit(c)) return Act::kReject;
      f.phase = kNumExpDigits;
      f.digits = 1;
      return Act::kKeep;
    case kNumExpDigits:
      if (IsDigit(c)) {
        if (f.digits >= 3) return Act::kReject;
        ++f.digits;
        return Act::kKeep;
      }
      return end();
  }
  return Act::kReject;
}

}  // namespace crescent::engine
