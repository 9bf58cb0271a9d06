// GCC 12 reports a false -Wrestrict inside std::string's operator+ (GCC bug
// 105329); string building here is ordinary.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include "model/jinja_filters.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "model/jinja_builtins.h"
#include "model/tokenizer_unicode.h"

namespace crescent::model::jinja {

namespace {
Status Err(const std::string& m) { return TemplateError(m); }
}  // namespace

Result<bool> ApplyTest(const std::string& t, const Value& v, const Value* other) {
  if (t == "boolean") return v.kind == Kind::kBool;
  if (t == "callable") return v.kind == Kind::kFunction;
  if (t == "odd" || t == "even") {
    if (v.kind != Kind::kInt) return Err("cannot " + t + " on " + v.TypeName());
    return (v.i % 2 != 0) == (t == "odd");
  }
  if (t == "false") return v.kind == Kind::kBool && !v.b;
  if (t == "true") return v.kind == Kind::kBool && v.b;
  if (t == "none") return v.kind == Kind::kNull;
  if (t == "string") return v.kind == Kind::kString;
  if (t == "number") return v.is_number();
  if (t == "integer") return v.kind == Kind::kInt;
  if (t == "iterable") return v.kind == Kind::kArray || v.kind == Kind::kString;
  if (t == "mapping") return v.is_object();
  if (t == "sequence") return v.is_array() || v.is_object() || v.kind == Kind::kString;
  if (t == "lower") return v.kind == Kind::kString && v.s == JsToLower(v.s);
  if (t == "upper") return v.kind == Kind::kString && v.s == JsToUpper(v.s);
  if (t == "defined") return v.kind != Kind::kUndefined;
  if (t == "undefined") return v.kind == Kind::kUndefined;
  if (t == "equalto" || t == "eq") return other && StrictEquals(v, *other);  // `x is eq` alone: no operand
  return Err("Unknown test: " + t);
}

Result<Value> ApplyFilter(const Value& v, const std::string& name, Environment& env) {
  {
    if (name == "safe") return v;
    if (name == "tojson") {
      ASSIGN_OR_RETURN(std::string s, ToJson(v, JsonOptions{}));
      return Value::Str(s);
    }
    if (v.is_array()) {
      const auto& a = *v.arr;
      if (name == "list") return v;
      if (name == "first") return a.empty() ? Value::Undefined() : a.front();
      if (name == "last") return a.empty() ? Value::Undefined() : a.back();
      if (name == "length") return Value::Int(static_cast<int64_t>(a.size()));
      if (name == "reverse") return Value::Array(std::vector<Value>(a.rbegin(), a.rend()));
      if (name == "sort") {
        std::vector<Value> s = a;
        std::stable_sort(s.begin(), s.end(), [](const Value& x, const Value& y) { return CompareValues(x, y) < 0; });
        return Value::Array(std::move(s));
      }
      if (name == "join") {
        std::string out;
        for (const Value& x : a) out += PayloadString(x);
        return Value::Str(out);
      }
      if (name == "string") {
        ASSIGN_OR_RETURN(std::string s, ToJson(v, JsonOptions{}, false));
        return Value::Str(s);
      }
      if (name == "unique") {
        std::vector<Value> out;
        for (const Value& x : a) {
          if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return StrictEquals(x, y); })) out.push_back(x);
        }
        return Value::Array(std::move(out));
      }
      return Err("Unknown ArrayValue filter: " + name);
    }
    if (v.kind == Kind::kString) {
      if (name == "length") return Value::Int(JsLength(v.s));
      if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
        Value fn = StringBuiltin(v, name);
        std::vector<Value> none;
        return (*fn.fn)(none, env);
      }
      if (name == "trim") return Value::Str(std::string(TrimJsEnd(TrimJsStart(v.s))));
      if (name == "indent") {
        std::string out;
        size_t b = 0;
        bool first = true;
        while (true) {
          size_t e = v.s.find('\n', b);
          std::string line = v.s.substr(b, e == std::string::npos ? std::string::npos : e - b);
          out += (first ? "" : "\n") + ((first || line.empty()) ? line : "    " + line);
          first = false;
          if (e == std::string::npos) break;
          b = e + 1;
        }
        return Value::Str(out);
      }
      if (name == "join" || name == "string") return v;
      if (name == "int") return Value::Int(std::strtoll(std::string(TrimJsStart(v.s)).c_str(), nullptr, 10));
      if (name == "float") return Value::Float(std::strtod(std::string(TrimJsStart(v.s)).c_str(), nullptr));
      return Err("Unknown StringValue filter: " + name);
    }
    if (v.is_number()) {
      if (name == "abs") {
        if (v.kind == Kind::kInt && v.i == INT64_MIN) return Err("integer overflow in abs");
        return v.kind == Kind::kInt ? Value::Int(std::llabs(v.i)) : Value::Float(std::fabs(v.f));
      }
      if (name == "int") {
        const double x = std::floor(v.number());
        if (!(std::fabs(x) < 9.2e18)) return Err("int: " + v.ToString() + " is not a representable integer");
        return Value::Int(static_cast<int64_t>(x));
      }
      if (name == "float") return Value::Float(v.number());
      if (name == "string") return Value::Str(v.ToString());
      return Err("Unknown NumericValue filter: " + name);
    }
    if (v.is_object()) {
      if (name == "items") return (*ObjectBuiltin(v, "items").fn)(*std::make_unique<std::vector<Value>>(), env);
      if (name == "length") return Value::Int(static_cast<int64_t>(v.obj->entries.size()));
      Value b = ObjectBuiltin(v, name);
      if (b.kind == Kind::kFunction) {
        std::vector<Value> none;
        return (*b.fn)(none, env);
      }
      return Err("Unknown ObjectValue filter: " + name);
    }
    if (v.kind == Kind::kBool) {
      if (name == "bool") return v;
      if (name == "int") return Value::Int(v.b ? 1 : 0);
      if (name == "float") return Value::Float(v.b ? 1 : 0);
      if (name == "string") return Value::Str(v.b ? "true" : "false");
      return Err("Unknown BooleanValue filter: " + name);
    }
    return Err("Cannot apply filter \"" + name + "\" to type: " + v.TypeName());
  }
}

Result<Value> ApplyFilter(const Value& v, const std::string& name, std::vector<Value> args,
                          const std::shared_ptr<Object>& kw, Environment& env) {
  auto kwarg = [&](const char* k) -> const Value* { return kw->Find(k); };
  if (name == "tojson") {
    JsonOptions o;
    if (const Value* x = kwarg("indent")) {
      if (x->kind == Kind::kInt) {
        o.indent = x->i;
      } else if (x->kind != Kind::kNull) {
        return Err("If set, indent must be a number");
      }
    }
    if (const Value* x = kwarg("ensure_ascii")) o.ensure_ascii = x->Truthy();
    if (const Value* x = kwarg("sort_keys")) o.sort_keys = x->Truthy();
    if (const Value* x = kwarg("separators")) {
      if (x->is_array() && x->arr->size() == 2 && (*x->arr)[0].kind == Kind::kString && (*x->arr)[1].kind == Kind::kString) {
        o.separators = std::make_pair((*x->arr)[0].s, (*x->arr)[1].s);
      } else if (x->kind != Kind::kNull) {
        return Err("separators must be a tuple of two strings");
      }
    }
    ASSIGN_OR_RETURN(std::string s, ToJson(v, o));
    return Value::Str(s);
  }
  if (name == "join") {
    std::vector<std::string> parts;
    if (v.kind == Kind::kString) {
      parts = CodePoints(v.s);
    } else if (v.is_array()) {
      for (const Value& x : *v.arr) parts.push_back(PayloadString(x));
    } else {
      return Err("Cannot apply filter \"join\" to type: " + std::string(v.TypeName()));
    }
    Value sep = !args.empty() ? args[0] : kwarg("separator") ? *kwarg("separator") : Value::Str("");
    if (sep.kind != Kind::kString) return Err("separator must be a string");
    std::string out;
    for (size_t k = 0; k < parts.size(); ++k) out += (k ? sep.s : "") + parts[k];
    return Value::Str(out);
  }
  if (name == "default") {
    Value dflt = !args.empty() ? args[0] : Value::Str("");
    bool boolean = args.size() > 1 ? args[1].Truthy() : kwarg("boolean") ? kwarg("boolean")->Truthy() : false;
    if (v.kind == Kind::kUndefined || (boolean && !v.Truthy())) return dflt;
    return v;
  }
  if (name == "int" || name == "float") {
    if (v.kind == Kind::kString) {
      std::string t(TrimJsStart(v.s));
      char* end = nullptr;
      if (name == "int") {
        long long x = std::strtoll(t.c_str(), &end, 10);
        if (end == t.c_str()) return !args.empty() ? args[0] : kwarg("default") ? *kwarg("default") : Value::Int(0);
        return Value::Int(x);
      }
      double x = std::strtod(t.c_str(), &end);
      if (end == t.c_str()) return !args.empty() ? args[0] : kwarg("default") ? *kwarg("default") : Value::Float(0);
      return Value::Float(x);
    }
    if (v.is_number()) return v;
    if (v.kind == Kind::kBool) return name == "int" ? Value::Int(v.b) : Value::Float(v.b);
    return Err("Cannot apply filter \"" + name + "\" to type: " + v.TypeName());
  }
  if (v.is_array()) {
    if (name == "selectattr" || name == "rejectattr") {
      bool select = name == "selectattr";
      if (args.empty() || args[0].kind != Kind::kString) return Err("arguments of `" + name + "` must be strings");
      std::vector<Value> out;
      for (const Value& item : *v.arr) {
        if (!item.is_object() && item.kind != Kind::kNamespace) return Err("`" + name + "` can only be applied to array of objects");
        const Value* a = item.obj->Find(args[0].s);
        bool r = false;
        if (a && a->kind != Kind::kUndefined) {
          if (args.size() > 1) {
            ASSIGN_OR_RETURN(r, ApplyTest(args[1].s, *a, args.size() > 2 ? &args[2] : nullptr));
          } else {
            r = a->Truthy();
          }
        }
        if (r == select) out.push_back(item);
      }
      return Value::Array(std::move(out));
    }
    if (name == "map") {
      const Value* attr = kwarg("attribute");
      if (!attr) return Err("`map` expressions without `attribute` set are not currently supported.");
      std::vector<Value> out;
      for (const Value& item : *v.arr) {
        if (!item.is_object() && item.kind != Kind::kNamespace) return Err("items in map must be an object");
        const Value* x = item.obj->Find(attr->s);
        out.push_back(x ? *x : (kwarg("default") ? *kwarg("default") : Value::Undefined()));
      }
      return Value::Array(std::move(out));
    }
    if (name == "sort") {
      bool reverse = !args.empty() ? args[0].Truthy() : kwarg("reverse") ? kwarg("reverse")->Truthy() : false;
      std::vector<Value> s = *v.arr;
      std::stable_sort(s.begin(), s.end(), [&](const Value& x, const Value& y) {
        int c = CompareValues(x, y);
        return reverse ? c > 0 : c < 0;
      });
      return Value::Array(std::move(s));
    }
    return Err("Unknown ArrayValue filter: " + name);
  }
  if (v.kind == Kind::kString) {
    if (name == "indent") {
      int64_t width = !args.empty() && args[0].kind == Kind::kInt ? args[0].i
                      : kwarg("width") && kwarg("width")->kind == Kind::kInt ? kwarg("width")->i : 4;
      bool first = args.size() > 1 ? args[1].Truthy() : kwarg("first") ? kwarg("first")->Truthy() : false;
      bool blank = args.size() > 2 ? args[2].Truthy() : kwarg("blank") ? kwarg("blank")->Truthy() : false;
      if (width > (int64_t{1} << 16)) return Err("indent: width " + std::to_string(width) + " is too large");
      std::string pad(static_cast<size_t>(std::max<int64_t>(width, 0)), ' '), out;
      size_t b = 0;
      for (int line = 0;; ++line) {
        size_t e = v.s.find('\n', b);
        std::string l = v.s.substr(b, e == std::string::npos ? std::string::npos : e - b);
        out += (line ? "\n" : "") + (((!first && line == 0) || (!blank && l.empty())) ? l : pad + l);
        if (e == std::string::npos) break;
        b = e + 1;
      }
      return Value::Str(out);
    }
    if (name == "replace") {
      Value fn = StringBuiltin(v, "replace");
      Value kwv = Value::MakeObject(Kind::kKwArgs);
      kwv.obj = kw;
      args.push_back(kwv);
      return (*fn.fn)(args, env);
    }
    return Err("Unknown StringValue filter: " + name);
  }
  if (v.is_object()) {
    Value b = ObjectBuiltin(v, name);
    if (b.kind == Kind::kFunction) return (*b.fn)(args, env);
    return Err("Unknown ObjectValue filter: " + name);
  }
  return Err("Cannot apply filter \"" + name + "\" to type: " + v.TypeName());
}

}  // namespace crescent::model::jinja
