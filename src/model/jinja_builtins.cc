// GCC 12 reports a false -Wrestrict inside std::string's operator+ (GCC bug
// 105329); string building here is ordinary.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include "model/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "model/tokenizer_unicode.h"

namespace crescent::model::jinja {

Status TemplateError(const std::string& m) { return InvalidArgument("chat template: " + m); }

std::vector<std::string> CodePoints(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t b = i;
    NextCodePoint(s, &i);
    out.push_back(s.substr(b, i - b));
  }
  return out;
}

std::string PayloadString(const Value& v) {  // JavaScript's String(value.value)
  switch (v.kind) {
    case Kind::kInt: return std::to_string(v.i);
    case Kind::kFloat: return JsNumberToString(v.f);
    case Kind::kBool: return v.b ? "true" : "false";
    case Kind::kString: return v.s;
    case Kind::kNull: return "null";
    case Kind::kUndefined: return "undefined";
    case Kind::kArray:
    case Kind::kTuple: {
      std::string out;
      for (size_t k = 0; k < v.arr->size(); ++k) out += (k ? "," : "") + (*v.arr)[k].ToString();
      return out;
    }
    default: return "[object Map]";
  }
}

bool StrictEquals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.number() == b.number();
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kString: return a.s == b.s;
    case Kind::kBool: return a.b == b.b;
    case Kind::kNull:
    case Kind::kUndefined: return true;
    default: return LooseEquals(a, b);
  }
}

namespace {

// Python-style slice with the reference's clamping.
template <typename T>
std::vector<T> SliceOfImpl(const std::vector<T>& a, std::optional<int64_t> start, std::optional<int64_t> stop,
                       std::optional<int64_t> step_opt) {
  int64_t n = static_cast<int64_t>(a.size());
  int64_t step = step_opt.value_or(1);
  std::vector<T> out;
  if (step == 0) return out;
  int64_t s, e;
  if (step > 0) {
    s = start.value_or(0);
    s = s < 0 ? std::max<int64_t>(n + s, 0) : std::min(s, n);
    e = stop.value_or(n);
    e = e < 0 ? std::max<int64_t>(n + e, 0) : std::min(e, n);
    for (int64_t i = s; i < e; i = step < e - i ? i + step : e) out.push_back(a[static_cast<size_t>(i)]);
  } else {
    s = start.value_or(n - 1);
    s = s < 0 ? std::max<int64_t>(n + s, -1) : std::min(s, n - 1);
    e = stop.value_or(-1);
    e = e < -1 ? std::max<int64_t>(n + e, -1) : std::min(e, n - 1);
    for (int64_t i = s; i > e; i += step) out.push_back(a[static_cast<size_t>(i)]);
  }
  return out;
}

}  // namespace

int CompareValues(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.number() < b.number() ? -1 : a.number() > b.number() ? 1 : 0;
  if (a.kind == Kind::kString && b.kind == Kind::kString) {
    std::string x = JsToLower(a.s), y = JsToLower(b.s);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return 0;
}

std::vector<Value> SliceOf(const std::vector<Value>& a, std::optional<int64_t> start, std::optional<int64_t> stop,
                           std::optional<int64_t> step) {
  return SliceOfImpl(a, start, stop, step);
}
std::vector<std::string> SliceOf(const std::vector<std::string>& a, std::optional<int64_t> start,
                                 std::optional<int64_t> stop, std::optional<int64_t> step) {
  return SliceOfImpl(a, start, stop, step);
}

Value ObjectBuiltin(const Value& self, const std::string& name) {
  std::shared_ptr<Object> obj = self.obj;
  if (name == "get") {
    return Value::Func([obj](std::vector<Value>& a, Environment&) -> Result<Value> {
      if (a.empty() || a[0].kind != Kind::kString) return TemplateError("Object key must be a string");
      const Value* v = obj->Find(a[0].s);
      if (v) return *v;
      return a.size() > 1 ? a[1] : Value::Null();
    });
  }
  if (name == "items" || name == "keys" || name == "values") {
    return Value::Func([obj, name](std::vector<Value>&, Environment&) -> Result<Value> {
      std::vector<Value> out;
      for (const auto& [k, v] : obj->entries) {
        if (name == "items") out.push_back(Value::Array({Value::Str(k), v}));
        if (name == "keys") out.push_back(Value::Str(k));
        if (name == "values") out.push_back(v);
      }
      return Value::Array(std::move(out));
    });
  }
  return Value::Undefined();
}

Value StringBuiltin(const Value& self, const std::string& name) {
  std::string s = self.s;
  auto fn = [](auto f) { return Value::Func(f); };
  if (name == "upper") return fn([s](std::vector<Value>&, Environment&) -> Result<Value> { return Value::Str(JsToUpper(s)); });
  if (name == "lower") return fn([s](std::vector<Value>&, Environment&) -> Result<Value> { return Value::Str(JsToLower(s)); });
  if (name == "strip") {
    return fn([s](std::vector<Value>&, Environment&) -> Result<Value> { return Value::Str(std::string(TrimJsEnd(TrimJsStart(s)))); });
  }
  if (name == "rstrip") return fn([s](std::vector<Value>&, Environment&) -> Result<Value> { return Value::Str(std::string(TrimJsEnd(s))); });
  if (name == "lstrip") return fn([s](std::vector<Value>&, Environment&) -> Result<Value> { return Value::Str(std::string(TrimJsStart(s))); });
  if (name == "title") {
    return fn([s](std::vector<Value>&, Environment&) -> Result<Value> {
      std::string out = s;
      auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
      for (size_t i = 0; i < out.size(); ++i) {
        if (word(out[i]) && (i == 0 || !word(out[i - 1]))) out[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[i])));
      }
      return Value::Str(out);
    });
  }
  if (name == "capitalize") {
    return fn([s](std::vector<Value>&, Environment&) -> Result<Value> {
      if (s.empty()) return Value::Str("");
      size_t i = 0;
      NextCodePoint(s, &i);
      return Value::Str(JsToUpper(s.substr(0, i)) + s.substr(i));
    });
  }
  if (name == "length") return Value::Int(JsLength(s));
  if (name == "startswith" || name == "endswith") {
    bool start = name == "startswith";
    return fn([s, start, name](std::vector<Value>& a, Environment&) -> Result<Value> {
      if (a.empty()) return TemplateError(name + "() requires at least one argument");
      auto test = [&](const std::string& p) {
        return start ? s.compare(0, p.size(), p) == 0 && s.size() >= p.size()
                     : s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
      };
      if (a[0].kind == Kind::kString) return Value::Bool(test(a[0].s));
      if (a[0].is_array()) {
        for (const Value& x : *a[0].arr) {
          if (x.kind != Kind::kString) return TemplateError(name + "() tuple elements must be strings");
          if (test(x.s)) return Value::Bool(true);
        }
        return Value::Bool(false);
      }
      return TemplateError(name + "() argument must be a string or tuple of strings");
    });
  }
  if (name == "split") {
    return fn([s](std::vector<Value>& a, Environment&) -> Result<Value> {
      Value sep = a.size() > 0 ? a[0] : Value::Null();
      int64_t maxsplit = a.size() > 1 && a[1].kind == Kind::kInt ? a[1].i : -1;
      std::vector<Value> out;
      if (sep.kind == Kind::kNull) {
        std::string_view t = TrimJsStart(s);
        // Runs of non-whitespace (JS \S).
        size_t i = 0;
        while (i < t.size()) {
          size_t j = i;
          while (j < t.size()) {
            size_t k = j;
            if (IsJsWhitespace(NextCodePoint(t, &k))) break;
            j = k;
          }
          if (j > i) {
            if (maxsplit != -1 && static_cast<int64_t>(out.size()) >= maxsplit) {
              out.push_back(Value::Str(std::string(t.substr(i))));
              break;
            }
            out.push_back(Value::Str(std::string(t.substr(i, j - i))));
          }
          if (j >= t.size()) break;
          size_t k = j;
          NextCodePoint(t, &k);
          i = k;
        }
      } else if (sep.kind == Kind::kString) {
        if (sep.s.empty()) return TemplateError("empty separator");
        size_t b = 0;
        std::vector<std::string> parts;
        while (true) {
          size_t p = s.find(sep.s, b);
          if (p == std::string::npos) break;
          parts.push_back(s.substr(b, p - b));
          b = p + sep.s.size();
        }
        parts.push_back(s.substr(b));
        if (maxsplit != -1 && static_cast<int64_t>(parts.size()) > maxsplit) {
          std::string rest;
          for (size_t k = static_cast<size_t>(maxsplit); k < parts.size(); ++k) rest += (k > static_cast<size_t>(maxsplit) ? sep.s : "") + parts[k];
          parts.resize(static_cast<size_t>(maxsplit));
          parts.push_back(rest);
        }
        for (auto& p : parts) out.push_back(Value::Str(std::move(p)));
      } else {
        return TemplateError("sep argument must be a string or null");
      }
      return Value::Array(std::move(out));
    });
  }
  if (name == "replace") {
    return fn([s](std::vector<Value>& a, Environment&) -> Result<Value> {
      if (a.size() < 2 || a[0].kind != Kind::kString || a[1].kind != Kind::kString) {
        return TemplateError("replace() arguments must be strings");
      }
      int64_t count = -1;
      if (a.size() > 2) {
        const Value* c = &a[2];
        Value tmp;
        if (c->kind == Kind::kKwArgs) {
          const Value* f = c->obj->Find("count");
          tmp = f ? *f : Value::Null();
          c = &tmp;
        }
        if (c->kind == Kind::kInt) count = c->i;
      }
      if (count == 0) return Value::Str(s);
      const std::string& from = a[0].s;
      const std::string& to = a[1].s;
      std::string out;
      int64_t left = count < 0 ? INT64_MAX : count;
      if (from.empty()) {
        auto cps = CodePoints(s);
        for (size_t k = 0; k <= cps.size(); ++k) {
          if (left > 0) {
            out += to;
            --left;
          }
          if (k < cps.size()) out += cps[k];
        }
        return Value::Str(out);
      }
      size_t b = 0;
      while (left > 0) {
        size_t p = s.find(from, b);
        if (p == std::string::npos) break;
        out.append(s, b, p - b);
        out += to;
        b = p + from.size();
        --left;
      }
      out.append(s, b, std::string::npos);
      return Value::Str(out);
    });
  }
  return Value::Undefined();
}

std::string Strftime(const std::string& fmt) {
  static const char* kLong[] = {"January", "February", "March", "April", "May", "June", "July",
                                "August", "September", "October", "November", "December"};
  static const char* kShort[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  auto pad2 = [](int v) { return (v < 10 ? "0" : "") + std::to_string(v); };
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      out.push_back(fmt[i]);
      continue;
    }
    char c = fmt[++i];
    switch (c) {
      case 'Y': out += std::to_string(tm.tm_year + 1900); break;
      case 'm': out += pad2(tm.tm_mon + 1); break;
      case 'd': out += pad2(tm.tm_mday); break;
      case 'b': out += kShort[tm.tm_mon]; break;
      case 'B': out += kLong[tm.tm_mon]; break;
      case 'H': out += pad2(tm.tm_hour); break;
      case 'M': out += pad2(tm.tm_min); break;
      case '%': out += "%"; break;
      default: out += std::string("%") + c;
    }
  }
  return out;
}

void AddGlobals(Environment* env) {
  Environment& root = *env;
  root.Set("namespace", Value::Func([](std::vector<Value>& args, Environment&) -> Result<Value> {
    Value ns = Value::MakeObject(Kind::kNamespace);
    std::vector<Value> pos = args;
    Value kw;
    if (!pos.empty() && pos.back().kind == Kind::kKwArgs) {
      kw = pos.back();
      pos.pop_back();
    }
    if (pos.size() > 1) return TemplateError("namespace expected at most 1 argument");
    if (pos.size() == 1) {
      if (pos[0].is_object()) {
        for (const auto& [k, v] : pos[0].obj->entries) ns.obj->Set(k, v);
      } else {
        return TemplateError("namespace expected an object");
      }
    }
    if (kw.obj) {
      for (const auto& [k, v] : kw.obj->entries) ns.obj->Set(k, v);
    }
    return ns;
  }));
  root.Set("false", Value::Bool(false));
  root.Set("true", Value::Bool(true));
  root.Set("none", Value::Null());
  root.Set("False", Value::Bool(false));
  root.Set("True", Value::Bool(true));
  root.Set("None", Value::Null());
  root.Set("raise_exception", Value::Func([](std::vector<Value>& args, Environment&) -> Result<Value> {
    return Status(StatusCode::kInvalidArgument, args.empty() ? "undefined" : PayloadString(args[0]));
  }));
  root.Set("range", Value::Func([](std::vector<Value>& args, Environment&) -> Result<Value> {
    std::vector<double> a;
    for (const Value& v : args) {
      if (v.kind != Kind::kKwArgs) a.push_back(v.number());
    }
    if (a.empty()) return TemplateError("range expects arguments");
    double start = a.size() > 1 ? a[0] : 0, stop = a.size() > 1 ? a[1] : a[0], step = a.size() > 2 ? a[2] : 1;
    if (step == 0) return TemplateError("range() step must not be zero");
    // A list of at most 2^20 integers (a template loops over messages, not
    // billions), each exact in a double.
    constexpr double kMaxRange = 1 << 20;
    if (!(std::fabs(start) <= 0x1p53 && std::fabs(stop) <= 0x1p53 && std::fabs(step) <= 0x1p53) ||
        (stop - start) / step > kMaxRange) {
      return TemplateError("range() of more than 1048576 items or past 2^53");
    }
    std::vector<Value> out;
    for (double i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(Value::Int(static_cast<int64_t>(i)));
    return Value::Array(std::move(out));
  }));
  root.Set("strftime_now", Value::Func([](std::vector<Value>& args, Environment&) -> Result<Value> {
    return Value::Str(Strftime(args.empty() ? "" : PayloadString(args[0])));
  }));
}

}  // namespace crescent::model::jinja
