#include "engine/json_grammar.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "engine/grammar_mask.h"
#include "engine/json_grammar_internal.h"

namespace crescent::engine {
using namespace json_grammar_internal;
namespace {

bool IsWs(uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool IsHex(uint8_t c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int HexValue(uint8_t c) { return IsDigit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

int64_t Add(int64_t a, int64_t b) { return std::min(kInf, a + b); }

std::string JsonQuote(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c < 0x20) {
      static const char* hex = "0123456789abcdef";
      o += "\\u00";
      o += hex[c >> 4];
      o += hex[c & 15];
    } else {
      o += static_cast<char>(c);
    }
  }
  return o + "\"";
}

}  // namespace

bool JsonNode::bounded() const {
  return (kind == JsonKind::kNumber || kind == JsonKind::kInteger) && (std::isfinite(minimum) || std::isfinite(maximum));
}


std::string JsonState::Key() const {
  std::string k;
  for (const JsonStack& s : stacks) {
    const uint32_t n = static_cast<uint32_t>(s.size());
    k.append(reinterpret_cast<const char*>(&n), sizeof(n));
    for (const JsonFrame& f : s) {
      const int32_t ints[4] = {f.node, f.a, f.b, f.c};
      const uint8_t bytes[4] = {f.phase, f.ws, f.neg, f.digits};
      k.append(reinterpret_cast<const char*>(ints), sizeof(ints));
      k.append(reinterpret_cast<const char*>(bytes), sizeof(bytes));
      k.append(reinterpret_cast<const char*>(&f.v), sizeof(f.v));
    }
  }
  return k;
}

JsonGrammar::JsonGrammar() : cache_(std::make_unique<MaskCache>()) {}
JsonGrammar::~JsonGrammar() = default;

int32_t JsonGrammar::AddAnyValue(std::vector<JsonNode>* nodes) {
  const int32_t any = static_cast<int32_t>(nodes->size());
  JsonNode n;
  n.kind = JsonKind::kAnyOf;
  nodes->push_back(n);
  JsonNode obj;
  obj.kind = JsonKind::kObject;
  obj.additional = any;
  JsonNode arr;
  arr.kind = JsonKind::kArray;
  arr.items = any;
  JsonNode str;
  str.kind = JsonKind::kString;
  JsonNode num;
  num.kind = JsonKind::kNumber;
  JsonNode lit;
  lit.literals = {"true", "false", "null"};
  for (JsonNode* x : {&obj, &arr, &str, &num, &lit}) {
    (*nodes)[any].alternatives.push_back(static_cast<int32_t>(nodes->size()));
    nodes->push_back(std::move(*x));
  }
  return any;
}

std::shared_ptr<const JsonGrammar> JsonGrammar::AnyObject() {
  static const std::shared_ptr<const JsonGrammar> g = [] {
    std::vector<JsonNode> nodes;
    const int32_t any = AddAnyValue(&nodes);
    Result<std::shared_ptr<const JsonGrammar>> r = Create(std::move(nodes), any + 1);  // AddAnyValue's object
    return *r;
  }();
  return g;
}

Result<std::shared_ptr<const JsonGrammar>> JsonGrammar::Create(std::vector<JsonNode> nodes, int32_t root) {
  const int32_t count = static_cast<int32_t>(nodes.size());
  auto valid = [&](int32_t i) { return i >= 0 && i < count; };
  if (!valid(root)) return InvalidArgument("the grammar's root is not one of its nodes");
  for (int32_t i = 0; i < count; ++i) {
    JsonNode& n = nodes[i];
    switch (n.kind) {
      case JsonKind::kObject: {
        if (n.additional != -1 && !valid(n.additional)) return InvalidArgument("an object's value node is out of range");
        std::set<std::string> names;
        for (const JsonNode::Property& p : n.properties) {
          if (!valid(p.value)) return InvalidArgument("a property's node is out of range");
          if (!names.insert(p.name).second) return InvalidArgument("property '" + p.name + "' is declared twice");
        }
        break;
      }
      case JsonKind::kArray:
        if (!valid(n.items)) return InvalidArgument("an array's item node is out of range");
        if (n.min_items < 0 || n.min_items > n.max_items) return InvalidArgument("minItems is above maxItems");
        if (n.min_items > (int64_t{1} << 20)) return InvalidArgument("minItems is too large");
        break;
      case JsonKind::kString:
        if (n.min_length < 0 || n.min_length > n.max_length) return InvalidArgument("minLength is above maxLength");
        if (n.max_length > (int64_t{1} << 30)) n.max_length = kNoLimit;  // no bound anyone reaches
        if (n.min_length > (int64_t{1} << 30)) return InvalidArgument("minLength is too large");
        break;
      case JsonKind::kInteger:
        // Whole-number bounds, inclusive: no prefix can then aim only at an excluded value.
        if (std::isfinite(n.minimum)) {
          n.minimum = n.exclusive_minimum ? std::floor(n.minimum) + 1 : std::ceil(n.minimum);
        }
        if (std::isfinite(n.maximum)) {
          n.maximum = n.exclusive_maximum ? std::ceil(n.maximum) - 1 : std::floor(n.maximum);
        }
        n.exclusive_minimum = n.exclusive_maximum = false;
        [[fallthrough]];
      case JsonKind::kNumber:
        if (std::isnan(n.minimum) || std::isnan(n.maximum) || n.minimum > n.maximum ||
            (n.minimum == n.maximum && (n.exclusive_minimum || n.exclusive_maximum))) {
          return InvalidArgument("no number lies within the bounds");
        }
        if (std::abs(n.minimum) >= 1e15 && std::isfinite(n.minimum)) return InvalidArgument("minimum beyond 1e15");
        if (std::abs(n.maximum) >= 1e15 && std::isfinite(n.maximum)) return InvalidArgument("maximum beyond 1e15");
        break;
      case JsonKind::kLiterals:
        if (n.literals.empty()) return InvalidArgument("an enum has no values");
        for (const std::string& l : n.literals) {
          if (l.empty()) return InvalidArgument("an empty literal");
        }
        std::sort(n.literals.begin(), n.literals.end());
        n.literals.erase(std::unique(n.literals.begin(), n.literals.end()), n.literals.end());
        break;
      case JsonKind::kAnyOf:
        if (n.alternatives.empty()) return InvalidArgument("anyOf has no alternatives");
        for (int32_t a : n.alternatives) {
          if (!valid(a)) return InvalidArgument("an anyOf alternative is out of range");
        }
        break;
    }
  }
  std::shared_ptr<JsonGrammar> g(new JsonGrammar());
  g->nodes_ = std::move(nodes);
  g->root_ = root;
  JsonNode key;
  key.kind = JsonKind::kString;
  g->key_node_ = static_cast<int32_t>(g->nodes_.size());
  g->nodes_.push_back(key);
  const size_t n = g->nodes_.size();
  // What each node is, through anyOf (a cycle of anyOf alone never starts a value).
  g->expansions_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    std::vector<int32_t> todo = {static_cast<int32_t>(i)};
    std::set<int32_t> seen;
    while (!todo.empty()) {
      const int32_t x = todo.back();
      todo.pop_back();
      if (!seen.insert(x).second) continue;
      if (g->nodes_[x].kind != JsonKind::kAnyOf) {
        g->expansions_[i].push_back(x);
      } else {
        for (auto it = g->nodes_[x].alternatives.rbegin(); it != g->nodes_[x].alternatives.rend(); ++it) todo.push_back(*it);
      }
    }
    if (g->expansions_[i].empty()) return InvalidArgument("anyOf refers only to itself");
  }
  g->keys_.resize(n);
  g->req_cost_.resize(n);
  g->req_count_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const JsonNode& x = g->nodes_[i];
    for (const JsonNode::Property& p : x.properties) g->keys_[i].push_back(JsonQuote(p.name));
    g->req_cost_[i].assign(x.properties.size() + 1, 0);
    g->req_count_[i].assign(x.properties.size() + 1, 0);
  }
  // Shortest values: a fixpoint from "none" (recursion through properties and items).
  g->min_len_.assign(n, kInf);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < n; ++i) {
      const JsonNode& x = g->nodes_[i];
      int64_t m = kInf;
      switch (x.kind) {
        case JsonKind::kObject: {
          auto& cost = g->req_cost_[i];
          auto& cnt = g->req_count_[i];
          for (size_t k = x.properties.size(); k-- > 0;) {
            const JsonNode::Property& p = x.properties[k];
            cost[k] = cost[k + 1];
            cnt[k] = cnt[k + 1];
            if (p.required) {
              cost[k] = Add(cost[k], Add(static_cast<int64_t>(g->keys_[i][k].size()) + 1, g->min_len_[p.value]));
              cnt[k] += 1;
            }
          }
          m = Add(2 + std::max<int64_t>(0, cnt[0] - 1), cost[0]);
          break;
        }
        case JsonKind::kArray:
          m = x.min_items == 0 ? 2
                               : Add(2 + x.min_items - 1, x.min_items >= kInf ? kInf : std::min(kInf, x.min_items * g->min_len_[x.items]));
          break;
        case JsonKind::kString:
          m = Add(2, x.min_length);
          break;
        case JsonKind::kNumber:
        case JsonKind::kInteger:
          m = ShortestNumber(x);
          break;
        case JsonKind::kLiterals:
          for (const std::string& l : x.literals) m = std::min<int64_t>(m, static_cast<int64_t>(l.size()));
          break;
        case JsonKind::kAnyOf:
          for (int32_t a : x.alternatives) m = std::min(m, g->min_len_[a]);
          break;
      }
      if (m < g->min_len_[i]) {
        g->min_len_[i] = m;
        changed = true;
      }
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (g->min_len_[i] >= kInf) {
      return InvalidArgument(g->nodes_[i].bounded() ? "no number of at most 16 digits lies within the bounds"
                                                    : "the schema has no finite value (a required property or item "
                                                      "that contains itself)");
    }
  }
  // The fewest frames a node's shortest value needs (a value is not begun
  // where that would pass kMaxDepth).
  g->min_depth_.assign(n, 1 << 20);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < n; ++i) {
      const JsonNode& x = g->nodes_[i];
      int32_t d = 1;
      switch (x.kind) {
        case JsonKind::kObject:
          for (const JsonNode::Property& p : x.properties) {
            if (p.required) d = std::max(d, 1 + g->min_depth_[p.value]);
          }
          break;
        case JsonKind::kArray:
          if (x.min_items > 0) d = 1 + g->min_depth_[x.items];
          break;
        case JsonKind::kAnyOf:
          d = 1 << 20;
          for (int32_t a : x.alternatives) d = std::min(d, g->min_depth_[a]);
          break;
        default:
          break;
      }
      d = std::min(d, 1 << 20);
      if (d < g->min_depth_[i]) {
        g->min_depth_[i] = d;
        changed = true;
      }
    }
  }
  if (g->min_depth_[root] > kMaxDepth) return InvalidArgument("the schema nests deeper than 48 levels");
  return std::shared_ptr<const JsonGrammar>(std::move(g));
}

bool JsonGrammar::EndsAtEndOfText(const JsonStack& s) const {
  // Frames that end by what follows them (a number; a literal another one
  // extends) end at the end of the text too; nothing else may be left open.
  for (size_t i = s.size(); i-- > 0;) {
    const JsonFrame& f = s[i];
    const JsonNode& n = nodes_[f.node];
    bool ends = false;
    if (n.kind == JsonKind::kNumber || n.kind == JsonKind::kInteger) {
      ends = NumberCanEnd(f, n);
    } else if (n.kind == JsonKind::kLiterals) {
      ends = f.phase == 1 && n.literals[f.a].size() == static_cast<size_t>(f.b);
    }
    if (!ends) return false;
  }
  return true;
}

bool JsonGrammar::Complete(const JsonState& state) const {
  return std::any_of(state.stacks.begin(), state.stacks.end(), [&](const JsonStack& s) { return EndsAtEndOfText(s); });
}

bool JsonGrammar::Finished(const JsonState& state) const {
  return !state.stacks.empty() &&
         std::all_of(state.stacks.begin(), state.stacks.end(), [](const JsonStack& s) { return s.empty(); });
}

JsonState JsonGrammar::Start() const {
  JsonState s;
  for (int32_t x : expansions_[root_]) s.stacks.push_back({JsonFrame{x}});
  std::sort(s.stacks.begin(), s.stacks.end());
  return s;
}

void JsonGrammar::Feed(const JsonState& in, uint8_t byte, JsonState* out) const {
  out->stacks.clear();
  for (const JsonStack& s : in.stacks) Step(s, byte, &out->stacks);
  if (out->stacks.size() > 1) {
    std::sort(out->stacks.begin(), out->stacks.end());
    out->stacks.erase(std::unique(out->stacks.begin(), out->stacks.end()), out->stacks.end());
    // Branches that share a prefix may multiply (anyOf of recursive
    // alternatives): those kept are still valid parses, so the state never dies of it.
    if (out->stacks.size() > kMaxStacks) out->stacks.resize(kMaxStacks);
  }
}

void JsonGrammar::FeedBytes(JsonState* state, std::string_view bytes) const {
  JsonState next;
  for (char ch : bytes) {
    Feed(*state, static_cast<uint8_t>(ch), &next);
    std::swap(*state, next);
    if (state->dead()) return;
  }
}

void JsonGrammar::Step(JsonStack s, uint8_t c, std::vector<JsonStack>* out) const {
  for (;;) {
    if (s.empty()) return;  // the top value ended: nothing may follow
    int32_t child = -1;
    switch (StepFrame(s.back(), c, &child)) {
      case Act::kReject:
        return;
      case Act::kKeep:
        out->push_back(std::move(s));
        return;
      case Act::kPop:
        s.pop_back();
        out->push_back(std::move(s));
        return;
      case Act::kPopRefeed:
        s.pop_back();
        continue;
      case Act::kPush:
        PushValue(std::move(s), child, c, out);
        return;
    }
  }
}

void JsonGrammar::PushValue(JsonStack s, int32_t node, uint8_t c, std::vector<JsonStack>* out) const {
  const std::vector<int32_t>& ex = expansions_[node];
  for (size_t i = 0; i < ex.size(); ++i) {
    if (s.size() + static_cast<size_t>(min_depth_[ex[i]]) > static_cast<size_t>(kMaxDepth)) continue;
    JsonStack t = i + 1 == ex.size() ? std::move(s) : s;
    t.push_back(JsonFrame{ex[i]});
    Step(std::move(t), c, out);
  }
}

JsonGrammar::Act JsonGrammar::StepFrame(JsonFrame& f, uint8_t c, int32_t* child) const {
  const JsonNode& n = nodes_[f.node];
  switch (n.kind) {
    case JsonKind::kObject:
      return StepObject(f, n, c, child);
    case JsonKind::kArray:
      return StepArray(f, n, c, child);
    case JsonKind::kString:
      return StepString(f, n, c);
    case JsonKind::kNumber:
    case JsonKind::kInteger:
      return StepNumber(f, n, c);
    case JsonKind::kLiterals:
      return StepLiteral(f, n, c);
    case JsonKind::kAnyOf:
      break;  // expanded when pushed
  }
  return Act::kReject;
}

int32_t JsonGrammar::LastCandidate(const JsonNode& n, int32_t from) const {
  for (int32_t k = from; k < static_cast<int32_t>(n.properties.size()); ++k) {
    if (n.properties[k].required) return k;
  }
  return static_cast<int32_t>(n.properties.size()) - 1;
}

bool JsonGrammar::Whitespace(JsonFrame& f, uint8_t c, bool allowed, Act* act) const {
  if (allowed && IsWs(c)) {
    *act = f.ws >= kMaxWhitespaceRun ? Act::kReject : Act::kKeep;
    if (*act == Act::kKeep) ++f.ws;
    return true;
  }
  f.ws = 0;  // any other byte ends the run
  return false;
}

JsonGrammar::Act JsonGrammar::StepObject(JsonFrame& f, const JsonNode& n, uint8_t c, int32_t* child) const {
  const bool free = n.properties.empty();
  if (Act ws; Whitespace(f, c, f.phase != kObjOpen && f.phase != kObjKey, &ws)) return ws;
  switch (f.phase) {
    case kObjOpen:
      if (c != '{') return Act::kReject;
      f.phase = kObjFirst;
      f.a = 0;
      return Act::kKeep;
    case kObjFirst:
    case kObjComma:
      if (c == '}' && f.phase == kObjFirst && (free || req_count_[f.node][f.a] == 0)) return Act::kPop;
      if (c != '"') return Act::kReject;
      if (free) {
        if (n.additional < 0) return Act::kReject;
        f.phase = kObjColon;
        f.b = -1;
        *child = key_node_;
        return Act::kPush;
      }
      if (f.a >= static_cast<int32_t>(n.properties.size())) return Act::kReject;
      f.phase = kObjKey;
      f.c = f.a;  // the first candidate
      f.b = 1;    // bytes of the key typed: its opening quote
      return Act::kKeep;
    case kObjKey: {
      const std::vector<std::string>& keys = keys_[f.node];
      const std::string& typed = keys[f.c];
      const size_t pos = static_cast<size_t>(f.b);
      const int32_t last = LastCandidate(n, f.a);
      for (int32_t k = f.c; k <= last; ++k) {
        const std::string& key = keys[k];
        if (key.size() <= pos || static_cast<uint8_t>(key[pos]) != c || key.compare(0, pos, typed, 0, pos) != 0) continue;
        f.c = k;
        f.b = static_cast<int32_t>(pos + 1);
        if (key.size() == pos + 1) {  // the closing quote: a key is never a prefix of another
          f.phase = kObjColon;
          f.b = k;
        }
        return Act::kKeep;
      }
      return Act::kReject;
    }
    case kObjColon:
      if (c != ':') return Act::kReject;
      f.phase = kObjValue;
      return Act::kKeep;
    case kObjValue:
      *child = f.b < 0 ? n.additional : n.properties[f.b].value;
      f.a = f.b < 0 ? 0 : f.b + 1;
      f.phase = kObjAfter;
      return Act::kPush;
    case kObjAfter:
      if (c == ',' && (free || f.a < static_cast<int32_t>(n.properties.size()))) {
        f.phase = kObjComma;
        return Act::kKeep;
      }
      if (c == '}' && (free || req_count_[f.node][f.a] == 0)) return Act::kPop;
      return Act::kReject;
  }
  return Act::kReject;
}

JsonGrammar::Act JsonGrammar::StepArray(JsonFrame& f, const JsonNode& n, uint8_t c, int32_t* child) const {
  // Items are counted only against bounds (an uncounted array's states repeat: its masks are cached).
  const bool counted = n.min_items > 0 || n.max_items != kNoLimit;
  if (Act ws; Whitespace(f, c, f.phase != kArrOpen, &ws)) return ws;
  switch (f.phase) {
    case kArrOpen:
      if (c != '[') return Act::kReject;
      f.phase = kArrFirst;
      return Act::kKeep;
    case kArrFirst:
      if (c == ']') return n.min_items == 0 ? Act::kPop : Act::kReject;
      if (n.max_items == 0) return Act::kReject;
      f.phase = kArrAfter;
      f.a = counted ? 1 : 0;
      *child = n.items;
      return Act::kPush;
    case kArrAfter:
      if (c == ',' && (!counted || f.a < n.max_items)) {
        f.phase = kArrComma;
        return Act::kKeep;
      }
      if (c == ']' && (!counted || f.a >= n.min_items)) return Act::kPop;
      return Act::kReject;
    case kArrComma:
      f.phase = kArrAfter;
      if (counted) ++f.a;
      *child = n.items;
      return Act::kPush;
  }
  return Act::kReject;
}

JsonGrammar::Act JsonGrammar::StepString(JsonFrame& f, const JsonNode& n, uint8_t c) const {
  const bool counting = n.min_length > 0 || n.max_length != kNoLimit;
  switch (f.phase) {
    case kStrOpen:
      if (c != '"') return Act::kReject;
      f.phase = kStrBody;
      return Act::kKeep;
    case kStrBody:
      if (c == '"') return f.a >= n.min_length ? Act::kPop : Act::kReject;
      if (c < 0x20) return Act::kReject;
      if ((c & 0xC0) != 0x80 && counting) {  // a character starts
        if (f.a >= n.max_length) return Act::kReject;
        ++f.a;
      }
      if (c == '\\') f.phase = kStrEsc;
      return Act::kKeep;
    case kStrEsc:
      if (c == 'u') {
        f.phase = kStrHex;
        f.c = 4;
        return Act::kKeep;
      }
      if (std::strchr("\"\\/bfnrt", c) == nullptr || c == 0) return Act::kReject;
      f.phase = kStrBody;
      return Act::kKeep;
    case kStrHex:
      if (!IsHex(c)) return Act::kReject;
      if (f.c == 4) f.b = HexValue(c);
      if (f.c == 3 && f.b == 0xD && HexValue(c) >= 8) return Act::kReject;  // a surrogate: lone ones do not parse
      if (--f.c == 0) f.phase = kStrBody;
      return Act::kKeep;
  }
  return Act::kReject;
}

JsonGrammar::Act JsonGrammar::StepLiteral(JsonFrame& f, const JsonNode& n, uint8_t c) const {
  const std::vector<std::string>& lits = n.literals;  // sorted: a literal comes before those it prefixes
  const size_t pos = static_cast<size_t>(f.b);
  const std::string& typed = lits[f.a];
  for (size_t k = static_cast<size_t>(f.a); k < lits.size() && lits[k].compare(0, pos, typed, 0, pos) == 0; ++k) {
    if (lits[k].size() <= pos || static_cast<uint8_t>(lits[k][pos]) != c) continue;
    f.phase = 1;  // typing
    f.a = static_cast<int32_t>(k);
    f.b = static_cast<int32_t>(pos + 1);
    if (lits[k].size() == pos + 1) {
      // Complete; it ends here unless a longer one goes on from it (12 after 1).
      const bool longer = k + 1 < lits.size() && lits[k + 1].compare(0, pos + 1, lits[k]) == 0;
      return longer ? Act::kKeep : Act::kPop;
    }
    return Act::kKeep;
  }
  if (typed.size() == pos && pos > 0) return Act::kPopRefeed;  // complete, and `c` is not part of it
  return Act::kReject;
}

int64_t JsonGrammar::Tail(int32_t node, int32_t next) const {
  return Add(1 + req_count_[node][next], req_cost_[node][next]);
}

int64_t JsonGrammar::KeyCost(const JsonNode& n, int32_t k, int64_t typed) const {
  const int32_t node = static_cast<int32_t>(&n - nodes_.data());
  const int64_t key = static_cast<int64_t>(keys_[node][k].size()) - typed;
  return Add(Add(key + 1, min_len_[n.properties[k].value]), Tail(node, k + 1));
}

int64_t JsonGrammar::Remaining(const JsonFrame& f) const {
  const JsonNode& n = nodes_[f.node];
  if (f.phase == 0) return min_len_[f.node];  // every kind's phase 0: nothing typed yet
  switch (n.kind) {
    case JsonKind::kObject: {
      if (n.properties.empty()) {
        const int64_t value = n.additional < 0 ? kInf : min_len_[n.additional];
        switch (f.phase) {
          case kObjFirst:
          case kObjAfter:
            return 1;
          case kObjColon:
            return Add(2, value);
          case kObjValue:
            return Add(1, value);
          case kObjComma:
            return Add(4, value);
          default:
            return kInf;
        }
      }
      auto best_key = [&](int32_t from, int32_t typed_from, int64_t typed) {
        int64_t m = kInf;
        const int32_t last = LastCandidate(n, from);
        const std::string& typed_key = keys_[f.node][typed_from];
        for (int32_t k = typed_from; k <= last; ++k) {
          if (keys_[f.node][k].compare(0, static_cast<size_t>(typed), typed_key, 0, static_cast<size_t>(typed)) != 0) {
            continue;
          }
          m = std::min(m, KeyCost(n, k, typed));
        }
        return m;
      };
      switch (f.phase) {
        case kObjFirst:
          return req_count_[f.node][f.a] == 0 ? 1 : best_key(f.a, f.a, 0);
        case kObjComma:
          return best_key(f.a, f.a, 0);
        case kObjKey:
          return best_key(f.a, f.c, f.b);
        case kObjColon:
          return Add(Add(1, min_len_[n.properties[f.b].value]), Tail(f.node, f.b + 1));
        case kObjValue:
          return Add(min_len_[n.properties[f.b].value], Tail(f.node, f.b + 1));
        case kObjAfter:
          return Tail(f.node, f.a);
        default:
          return kInf;
      }
    }
    case JsonKind::kArray: {
      const int64_t m = min_len_[n.items];
      auto need = [&](int64_t have) { return std::max<int64_t>(0, n.min_items - have); };
      switch (f.phase) {
        case kArrFirst:
          return n.min_items == 0 ? 1 : Add(n.min_items, std::min(kInf, n.min_items * m));
        case kArrAfter:
          return Add(1, std::min(kInf, need(f.a) * (m + 1)));
        case kArrComma:
          return Add(m + 1, std::min(kInf, need(f.a + 1) * (m + 1)));
        default:
          return kInf;
      }
    }
    case JsonKind::kString: {
      const int64_t left = std::max<int64_t>(0, n.min_length - f.a) + 1;
      switch (f.phase) {
        case kStrBody:
          return left;
        case kStrEsc:
          return left + 1;
        case kStrHex:
          return left + f.c;
        default:
          return kInf;
      }
    }
    case JsonKind::kNumber:
    case JsonKind::kInteger: {
      const int64_t d = NumberDistance(f, n);
      return d >= kInf ? 1 : d;  // a kept prefix always has a completion
    }
    case JsonKind::kLiterals: {
      int64_t m = kInf;
      const std::string& typed = n.literals[f.a];
      for (size_t k = static_cast<size_t>(f.a);
           k < n.literals.size() && n.literals[k].compare(0, static_cast<size_t>(f.b), typed, 0, static_cast<size_t>(f.b)) == 0;
           ++k) {
        m = std::min<int64_t>(m, static_cast<int64_t>(n.literals[k].size()) - f.b);
      }
      return m;
    }
    case JsonKind::kAnyOf:
      break;
  }
  return kInf;
}

int64_t JsonGrammar::MinBytesToComplete(const JsonState& state) const {
  int64_t best = kInf;
  for (const JsonStack& s : state.stacks) {
    int64_t sum = 0;
    for (const JsonFrame& f : s) sum = Add(sum, Remaining(f));
    best = std::min(best, sum);
  }
  return best;
}

}  // namespace crescent::engine
