#include "model/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "model/tokenizer_unicode.h"

namespace crescent::model::jinja {

const Value* Object::Find(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Object::Set(const std::string& key, Value v) {
  for (auto& [k, old] : entries) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  entries.emplace_back(key, std::move(v));
}

Value Value::Array(std::vector<Value> items, Kind kind) {
  Value v;
  v.kind = kind;
  v.arr = std::make_shared<std::vector<Value>>(std::move(items));
  return v;
}

Value Value::MakeObject(Kind kind) {
  Value v;
  v.kind = kind;
  v.obj = std::make_shared<Object>();
  return v;
}

Value Value::Func(Function fn) {
  Value v;
  v.kind = Kind::kFunction;
  v.fn = std::make_shared<Function>(std::move(fn));
  return v;
}

const char* Value::TypeName() const {
  switch (kind) {
    case Kind::kUndefined: return "UndefinedValue";
    case Kind::kNull: return "NullValue";
    case Kind::kBool: return "BooleanValue";
    case Kind::kInt: return "IntegerValue";
    case Kind::kFloat: return "FloatValue";
    case Kind::kString: return "StringValue";
    case Kind::kArray: return "ArrayValue";
    case Kind::kTuple: return "TupleValue";
    case Kind::kObject: return "ObjectValue";
    case Kind::kKwArgs: return "KeywordArgumentsValue";
    case Kind::kNamespace: return "NamespaceValue";
    case Kind::kFunction: return "FunctionValue";
  }
  return "?";
}

bool Value::Truthy() const {
  switch (kind) {
    case Kind::kUndefined:
    case Kind::kNull: return false;
    case Kind::kBool: return b;
    case Kind::kInt: return i != 0;
    case Kind::kFloat: return f != 0 && !std::isnan(f);
    case Kind::kString: return !s.empty();
    case Kind::kArray:
    case Kind::kTuple: return !arr->empty();
    case Kind::kObject:
    case Kind::kKwArgs: return !obj->entries.empty();
    case Kind::kNamespace:
    case Kind::kFunction: return true;
  }
  return false;
}

int64_t JsLength(std::string_view s) {
  int64_t n = 0;
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp = NextCodePoint(s, &i);
    n += cp >= 0x10000 ? 2 : 1;
  }
  return n;
}

std::string JsNumberToString(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  if (d == 0) return "0";
  std::string sign = d < 0 ? "-" : "";
  d = std::fabs(d);
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // d.ddde[+-]XX, shortest round-trip digits
  size_t e = sci.find('e');
  std::string digits;
  for (size_t k = 0; k < e; ++k) {
    if (sci[k] != '.') digits.push_back(sci[k]);
  }
  int exp = std::stoi(sci.substr(e + 1));
  int k = static_cast<int>(digits.size());
  int n = exp + 1;  // position of the decimal point
  std::string out;
  if (k <= n && n <= 21) {
    out = digits + std::string(static_cast<size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out = digits.substr(0, static_cast<size_t>(n)) + "." + digits.substr(static_cast<size_t>(n));
  } else if (-6 < n && n <= 0) {
    out = "0." + std::string(static_cast<size_t>(-n), '0') + digits;
  } else {
    std::string m = digits.substr(0, 1);
    if (k > 1) m += "." + digits.substr(1);
    out = m + "e" + (n - 1 >= 0 ? "+" : "-") + std::to_string(std::abs(n - 1));
  }
  return sign + out;
}

std::string JsJsonQuote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

namespace {

std::string AsciiSafe(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t b = i;
    char32_t cp = NextCodePoint(s, &i);
    if (cp < 0x7F) {
      out.append(s, b, i - b);
      continue;
    }
    auto unit = [&](unsigned u) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out += buf;
    };
    if (cp >= 0x10000) {
      // The reference's regex covers \x7f-\uffff only: astral pairs pass through.
      out.append(s, b, i - b);
    } else {
      unit(static_cast<unsigned>(cp));
    }
  }
  return out;
}

std::string Repeat(const std::string& s, int64_t n) {
  std::string out;
  for (int64_t i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

Result<std::string> ToJson(const Value& v, const JsonOptions& o, bool undefined_as_null, int depth) {
  std::string item_sep, key_sep;
  bool indent = o.indent.has_value() && *o.indent != 0;
  if (o.separators) {
    item_sep = o.separators->first;
    key_sep = o.separators->second;
  } else if (indent) {
    item_sep = ",";
    key_sep = ": ";
  } else {
    item_sep = ", ";
    key_sep = ": ";
  }
  switch (v.kind) {
    case Kind::kNull: return std::string("null");
    case Kind::kUndefined: return std::string(undefined_as_null ? "null" : "undefined");
    case Kind::kBool: return std::string(v.b ? "true" : "false");
    case Kind::kInt: return std::to_string(v.i);
    case Kind::kFloat: return std::isfinite(v.f) ? JsNumberToString(v.f) : std::string("null");
    case Kind::kString: {
      std::string r = JsJsonQuote(v.s);
      return o.ensure_ascii ? AsciiSafe(r) : r;
    }
    case Kind::kTuple: return InvalidArgument("Cannot convert to JSON: TupleValue");  // as the reference
    case Kind::kArray:
    case Kind::kObject:
    case Kind::kKwArgs:
    case Kind::kNamespace: {
      std::string indent_value = indent ? std::string(static_cast<size_t>(std::max<int64_t>(*o.indent, 0)), ' ') : "";
      std::string base = "\n" + Repeat(indent_value, depth);
      std::string child = base + indent_value;
      std::vector<std::string> core;
      if (v.is_array()) {
        for (const Value& x : *v.arr) {
          ASSIGN_OR_RETURN(std::string s, ToJson(x, o, undefined_as_null, depth + 1));
          core.push_back(std::move(s));
        }
        std::string out = "[";
        if (indent && !core.empty()) {
          out += child;
          for (size_t k = 0; k < core.size(); ++k) out += (k ? item_sep + child : "") + core[k];
          out += base;
        } else {
          for (size_t k = 0; k < core.size(); ++k) out += (k ? item_sep : "") + core[k];
        }
        return out + "]";
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.obj->entries) entries.push_back(&e);
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
      }
      for (const auto* e : entries) {
        std::string key = JsJsonQuote(e->first);
        if (o.ensure_ascii) key = AsciiSafe(key);
        ASSIGN_OR_RETURN(std::string val, ToJson(e->second, o, undefined_as_null, depth + 1));
        std::string item = key + key_sep + val;
        core.push_back(indent ? child + item : item);
      }
      std::string out = "{";
      for (size_t k = 0; k < core.size(); ++k) out += (k ? item_sep : "") + core[k];
      if (indent && !core.empty()) out += base;
      return out + "}";
    }
    case Kind::kFunction: return InvalidArgument("Cannot convert to JSON: FunctionValue");
  }
  return std::string("null");
}

std::string Value::ToString() const {
  switch (kind) {
    case Kind::kUndefined: return "undefined";
    case Kind::kNull: return "null";
    case Kind::kBool: return b ? "true" : "false";
    case Kind::kInt: return std::to_string(i);
    case Kind::kFloat:
      if (f == 0 && std::signbit(f)) return "-0.0";
      if (std::isfinite(f) && std::floor(f) == f && std::fabs(f) < 1e21) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%.1f", f);
        return buf;
      }
      return JsNumberToString(f);
    case Kind::kString: return s;
    case Kind::kFunction: return "[function]";
    default: {
      auto r = ToJson(*this, JsonOptions{}, /*undefined_as_null=*/false);
      return r.ok() ? *r : "";
    }
  }
}

bool LooseEquals(const Value& a, const Value& b) {
  auto nullish = [](const Value& v) { return v.kind == Kind::kUndefined || v.kind == Kind::kNull; };
  if (nullish(a) || nullish(b)) return nullish(a) && nullish(b);
  bool an = a.is_number() || a.kind == Kind::kBool, bn = b.is_number() || b.kind == Kind::kBool;
  if (a.kind == Kind::kString && b.kind == Kind::kString) return a.s == b.s;
  if (an && bn) return a.number() == b.number();
  if ((an && b.kind == Kind::kString) || (a.kind == Kind::kString && bn)) {
    const std::string& s = a.kind == Kind::kString ? a.s : b.s;
    double n = a.kind == Kind::kString ? b.number() : a.number();
    std::string_view t = TrimJsEnd(TrimJsStart(s));
    if (t.empty()) return n == 0;
    char* end = nullptr;
    std::string tmp(t);
    double x = std::strtod(tmp.c_str(), &end);
    return end == tmp.c_str() + tmp.size() && x == n;
  }
  if (a.is_array() && b.is_array()) return a.arr == b.arr;
  if (a.obj && b.obj) return a.obj == b.obj;
  if (a.kind == Kind::kFunction && b.kind == Kind::kFunction) return a.fn == b.fn;
  return false;
}

}  // namespace crescent::model::jinja
