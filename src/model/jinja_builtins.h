// Built-ins of the Jinja interpreter, with @huggingface/jinja's semantics: string
// methods (strip, split, replace, startswith, ...), dict methods (get, items, keys,
// values), the global functions (namespace, range, raise_exception, strftime_now,
// true/false/none), and the JavaScript-flavoured helpers they share.
// Thread-safety: pure functions; the functions they return capture values only.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "model/jinja_interpreter.h"
#include "model/jinja_value.h"

namespace crescent::model::jinja {

Status TemplateError(const std::string& message);  // InvalidArgument("chat template: ...")

// Code points of a string (JavaScript's Array.from(string)).
std::vector<std::string> CodePoints(const std::string& s);
// JavaScript's String(value.value): what `+` and `~` concatenate.
std::string PayloadString(const Value& v);
// JavaScript's === on payloads (numbers by value, containers by identity).
bool StrictEquals(const Value& a, const Value& b);
// Python slice [start:stop:step] with the reference's clamping.
std::vector<Value> SliceOf(const std::vector<Value>& a, std::optional<int64_t> start, std::optional<int64_t> stop,
                           std::optional<int64_t> step);
std::vector<std::string> SliceOf(const std::vector<std::string>& a, std::optional<int64_t> start,
                                 std::optional<int64_t> stop, std::optional<int64_t> step);
// Sort order of the `sort` filter (numbers, then case-insensitive strings).
int CompareValues(const Value& a, const Value& b);

// `obj.name` / `str.name` when not a field: a bound method, a value (str.length),
// or undefined.
Value ObjectBuiltin(const Value& self, const std::string& name);
Value StringBuiltin(const Value& self, const std::string& name);

std::string Strftime(const std::string& format);  // %Y %m %d %b %B %H %M %%, local time
void AddGlobals(Environment* root);

}  // namespace crescent::model::jinja
