// Jinja interpreter: evaluates a parsed template with @huggingface/jinja's rules
// (scoping: `set` inside a for loop stays in the loop, so templates use
// namespace(); loop.index/index0/first/last/length/revindex/previtem/nextitem;
// Python-like string methods; the filters and tests chat templates use).
//
// CheckSupported walks a parsed template and names the first filter or test this
// interpreter does not implement, so an unsupported template fails when the model
// loads instead of at the first request.
// Thread-safety: Render is reentrant; a parsed template may be rendered from many
// threads at once (each render has its own environment and values).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "model/jinja_ast.h"
#include "model/jinja_value.h"

namespace crescent::model::jinja {

// A variable scope; lookups fall back to the parent.
class Environment {
 public:
  explicit Environment(Environment* parent) : parent_(parent) {}
  void Set(const std::string& name, Value v) { vars_[name] = std::move(v); }
  Value Lookup(const std::string& name) const;

 private:
  Environment* parent_;
  std::unordered_map<std::string, Value> vars_;
};

Status CheckSupported(const std::vector<NodePtr>& program);

// Renders `program` with `globals` (messages, add_generation_prompt, ...) on top of
// the built-ins (namespace, range, raise_exception, strftime_now, true/false/none).
Result<std::string> Render(const std::vector<NodePtr>& program,
                           const std::vector<std::pair<std::string, Value>>& globals);

}  // namespace crescent::model::jinja
