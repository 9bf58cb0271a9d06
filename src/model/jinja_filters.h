// Jinja tests (`x is defined`) and filters (`x | tojson(indent=2)`) with
// @huggingface/jinja's semantics, on evaluated values: the interpreter evaluates
// the operand and the arguments, these apply the named test or filter. An
// unknown name, or one that does not apply to the value's type, is the
// reference's error message as a template error.
// Thread-safety: pure functions of their arguments (env is only passed on to
// built-in methods that take it).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "model/jinja_interpreter.h"
#include "model/jinja_value.h"

namespace crescent::model::jinja {

// `v is name` (other: the operand of `is equalto x`, or null).
Result<bool> ApplyTest(const std::string& name, const Value& v, const Value* other = nullptr);

// `v | name`, without arguments.
Result<Value> ApplyFilter(const Value& v, const std::string& name, Environment& env);

// `v | name(args..., key=value...)`.
Result<Value> ApplyFilter(const Value& v, const std::string& name, std::vector<Value> args,
                          const std::shared_ptr<Object>& kw, Environment& env);

}  // namespace crescent::model::jinja
