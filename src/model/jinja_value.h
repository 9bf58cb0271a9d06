// jinja::Value: the runtime values of crescent's Jinja interpreter, with the
// semantics of @huggingface/jinja (the implementation transformers.js uses for chat
// templates), so rendered prompts match it byte for byte: JavaScript-style number
// printing, loose ==, Python-style truthiness for lists and dicts, insertion-ordered
// objects, and its toJSON for `tojson` and for printing lists and dicts.
// Arrays, objects and namespaces are shared by reference (set ns.x = ... mutates the
// namespace every holder sees), as in the reference.
// Thread-safety: values are not synchronized; one render uses its own values.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace crescent::model::jinja {

struct Value;
class Environment;

// Insertion-ordered string -> value map.
struct Object {
  std::vector<std::pair<std::string, Value>> entries;
  const Value* Find(std::string_view key) const;
  void Set(const std::string& key, Value v);
};

// Positional arguments, then keyword arguments (if any) as a trailing KwArgs value.
using Function = std::function<Result<Value>(std::vector<Value>& args, Environment& env)>;

enum class Kind { kUndefined, kNull, kBool, kInt, kFloat, kString, kArray, kTuple, kObject, kKwArgs, kNamespace, kFunction };

struct Value {
  Kind kind = Kind::kUndefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<std::vector<Value>> arr;  // kArray, kTuple
  std::shared_ptr<Object> obj;              // kObject, kKwArgs, kNamespace
  std::shared_ptr<Function> fn;             // kFunction

  static Value Undefined() { return {}; }
  static Value Null() { Value v; v.kind = Kind::kNull; return v; }
  static Value Bool(bool x) { Value v; v.kind = Kind::kBool; v.b = x; return v; }
  static Value Int(int64_t x) { Value v; v.kind = Kind::kInt; v.i = x; return v; }
  static Value Float(double x) { Value v; v.kind = Kind::kFloat; v.f = x; return v; }
  static Value Str(std::string x) { Value v; v.kind = Kind::kString; v.s = std::move(x); return v; }
  static Value Array(std::vector<Value> items, Kind kind = Kind::kArray);
  static Value MakeObject(Kind kind = Kind::kObject);
  static Value Func(Function fn);

  bool is_array() const { return kind == Kind::kArray || kind == Kind::kTuple; }
  bool is_object() const { return kind == Kind::kObject || kind == Kind::kKwArgs; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat; }
  double number() const { return kind == Kind::kInt ? static_cast<double>(i) : kind == Kind::kBool ? (b ? 1 : 0) : f; }
  const char* TypeName() const;

  bool Truthy() const;
  // What {{ value }} prints.
  std::string ToString() const;
};

struct JsonOptions {
  std::optional<int64_t> indent;
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::optional<std::pair<std::string, std::string>> separators;
};
// The reference's toJSON; undefined prints as null unless !undefined_as_null.
Result<std::string> ToJson(const Value& v, const JsonOptions& options, bool undefined_as_null = true, int depth = 0);

// JavaScript's Number.prototype.toString and JSON.stringify for strings.
std::string JsNumberToString(double d);
std::string JsJsonQuote(std::string_view s);
// JavaScript's == between two runtime values' payloads.
bool LooseEquals(const Value& a, const Value& b);
// Length in UTF-16 code units (JavaScript's String.length).
int64_t JsLength(std::string_view s);

}  // namespace crescent::model::jinja
