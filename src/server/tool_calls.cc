#include "server/tool_calls.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <random>
#include <set>

#include "base/json.h"

namespace crescent::server {
namespace json = boost::json;

namespace {

constexpr std::string_view kHermesOpen = "<tool_call>", kHermesClose = "</tool_call>", kPythonTag = "<|python_tag|>";
constexpr size_t kMaxTools = 128;

std::string CallId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("call_{:016x}{:08x}", rng(), static_cast<uint32_t>(rng()));
}

bool ValidName(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// {"name": declared, <args_key>: object} as a call, or nullopt.
std::optional<model::ChatToolCall> AsCall(const ToolRequest& t, const json::value& v) {
  if (!v.is_object()) return std::nullopt;
  const json::object& o = v.get_object();
  const json::value* name = o.if_contains("name");
  if (!name || !name->is_string()) return std::nullopt;
  const std::string n(name->get_string());
  bool declared = false;
  for (const ToolSpec& s : t.tools) declared |= s.name == n;
  if (!declared) return std::nullopt;
  const json::value* args = o.if_contains("arguments");
  if (!args) args = o.if_contains("parameters");
  model::ChatToolCall c;
  c.id = CallId();
  c.name = n;
  if (args == nullptr) {
    c.arguments = "{}";
  } else if (args->is_string()) {  // some models send the arguments as a JSON string
    c.arguments = std::string(args->get_string());
  } else if (args->is_object()) {
    c.arguments = json::serialize(*args);
  } else {
    return std::nullopt;
  }
  return c;
}

std::optional<json::value> Parse(std::string_view text) {
  Result<json::value> v = ParseJson(text, "tool call");
  if (!v.ok()) return std::nullopt;
  return std::move(v).value();
}

}  // namespace

Result<ToolRequest> ParseTools(const json::object& body, std::string* param) {
  ToolRequest t;
  auto fail = [&](const char* p, std::string msg) {
    *param = p;
    return InvalidArgument(std::move(msg));
  };
  const json::value* tools = body.if_contains("tools");
  if (tools && !tools->is_null()) {
    if (!tools->is_array()) return fail("tools", "'tools' must be an array");
    if (tools->get_array().size() > kMaxTools) return fail("tools", fmt::format("at most {} tools", kMaxTools));
    std::set<std::string> names;
    for (const json::value& x : tools->get_array()) {
      const json::object* o = x.if_object();
      const json::value* type = o ? o->if_contains("type") : nullptr;
      if (!o || !type || !type->is_string() || type->get_string() != "function") {
        return fail("tools", "each tool must be {\"type\": \"function\", \"function\": {...}}");
      }
      const json::value* fn = o->if_contains("function");
      if (!fn || !fn->is_object()) return fail("tools", "a tool's 'function' must be an object");
      const json::value* name = fn->get_object().if_contains("name");
      if (!name || !name->is_string() || !ValidName(name->get_string())) {
        return fail("tools", "a function's 'name' must be 1 to 64 letters, digits, '_' or '-'");
      }
      ToolSpec s;
      s.name = std::string(name->get_string());
      if (!names.insert(s.name).second) return fail("tools", fmt::format("function '{}' is declared twice", s.name));
      const json::value* params = fn->get_object().if_contains("parameters");
      if (params && !params->is_null() && !params->is_object()) {
        return fail("tools", fmt::format("function '{}': 'parameters' must be a JSON Schema object", s.name));
      }
      s.parameters = params && params->is_object() ? json::serialize(*params)
                                                   : std::string(R"({"type":"object","properties":{},"additionalProperties":false})");
      s.json = json::serialize(x);
      t.tools.push_back(std::move(s));
    }
  }
  t.choice = t.tools.empty() ? ToolChoice::kNone : ToolChoice::kAuto;
  const json::value* choice = body.if_contains("tool_choice");
  if (choice && !choice->is_null()) {
    if (t.tools.empty()) return fail("tool_choice", "'tool_choice' needs 'tools'");
    if (choice->is_string()) {
      const std::string_view c = choice->get_string();
      if (c == "none") {
        t.choice = ToolChoice::kNone;
      } else if (c == "auto") {
        t.choice = ToolChoice::kAuto;
      } else if (c == "required") {
        t.choice = ToolChoice::kRequired;
      } else {
        return fail("tool_choice", fmt::format("'tool_choice' must be none, auto, required or a function, got '{}'", c));
      }
    } else {
      const json::object* o = choice->if_object();
      const json::value* fn = o ? o->if_contains("function") : nullptr;
      const json::value* name = fn && fn->is_object() ? fn->get_object().if_contains("name") : nullptr;
      if (!name || !name->is_string()) {
        return fail("tool_choice", R"('tool_choice' must be {"type": "function", "function": {"name": ...}})");
      }
      t.choice = ToolChoice::kNamed;
      t.named = std::string(name->get_string());
      bool declared = false;
      for (const ToolSpec& s : t.tools) declared |= s.name == t.named;
      if (!declared) return fail("tool_choice", fmt::format("'tool_choice' names '{}', which is not in 'tools'", t.named));
    }
  }
  if (const json::value* p = body.if_contains("parallel_tool_calls"); p && !p->is_null()) {
    if (!p->is_bool()) return fail("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
    t.parallel = p->get_bool();
  }
  return t;
}

Result<ResponseFormat> ForcedCallFormat(const ToolRequest& t) {
  Result<ResponseFormat> f = InvalidArgument("no forced call");
  if (t.choice == ToolChoice::kNamed) {
    json::value schema;
    for (const ToolSpec& s : t.tools) {
      if (s.name == t.named) schema = *Parse(s.parameters);
    }
    f = CompileResponseFormat(json::object{{"type", "json_schema"}, {"json_schema", json::object{{"schema", std::move(schema)}}}});
  } else {
    // Each function's parameters stay a document of their own (their $refs resolve within them).
    json::array tools;
    for (const ToolSpec& s : t.tools) tools.push_back(json::object{{"name", s.name}, {"parameters", *Parse(s.parameters)}});
    f = CompileResponseFormatSpec(json::serialize(
        json::object{{"type", "tool_calls"}, {"tools", std::move(tools)}, {"parallel_tool_calls", t.parallel}}));
  }
  if (!f.ok()) return InvalidArgument("tools: " + f.status().message());
  return f;
}

ToolOutput ParseToolOutput(const ToolRequest& t, std::string_view text) {
  ToolOutput out;
  if (t.choice == ToolChoice::kNamed) {
    model::ChatToolCall c;
    c.id = CallId();
    c.name = t.named;
    c.arguments = std::string(Trim(text));
    out.calls.push_back(std::move(c));
    return out;
  }
  if (t.choice == ToolChoice::kRequired) {
    if (std::optional<json::value> v = Parse(text); v && v->is_array()) {
      for (const json::value& x : v->get_array()) {
        if (std::optional<model::ChatToolCall> c = AsCall(t, x)) out.calls.push_back(std::move(*c));
      }
    }
    if (out.calls.empty()) out.content = std::string(text);  // cut short by max_tokens: the text as it is
    return out;
  }
  out.content = std::string(text);
  if (t.choice == ToolChoice::kNone) return out;
  std::string_view s = Trim(text);
  if (s.starts_with(kHermesOpen)) {
    std::vector<model::ChatToolCall> calls;
    while (s.starts_with(kHermesOpen)) {
      const size_t close = s.find(kHermesClose);
      if (close == std::string_view::npos) return out;
      std::optional<json::value> v = Parse(Trim(s.substr(kHermesOpen.size(), close - kHermesOpen.size())));
      std::optional<model::ChatToolCall> c = v ? AsCall(t, *v) : std::nullopt;
      if (!c) return out;
      calls.push_back(std::move(*c));
      s = Trim(s.substr(close + kHermesClose.size()));
    }
    if (!s.empty()) return out;  // text after the calls: not a call message
    out.calls = std::move(calls);
    out.content.reset();
    return out;
  }
  if (s.starts_with(kPythonTag)) s = Trim(s.substr(kPythonTag.size()));
  if (s.starts_with("{")) {
    std::optional<json::value> v = Parse(s);
    if (std::optional<model::ChatToolCall> c = v ? AsCall(t, *v) : std::nullopt) {
      out.calls.push_back(std::move(*c));
      out.content.reset();
    }
  }
  return out;
}

bool MayBeToolCall(std::string_view text) {
  const std::string_view s = Trim(text);
  if (s.empty()) return true;
  for (std::string_view marker : {kHermesOpen, kPythonTag, std::string_view("{")}) {
    const size_t n = std::min(s.size(), marker.size());
    if (s.substr(0, n) == marker.substr(0, n)) return true;
  }
  return false;
}

}  // namespace crescent::server
