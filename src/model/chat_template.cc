#include "model/chat_template.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>

#include "base/json.h"
#include "model/jinja_interpreter.h"
#include "model/jinja_lexer.h"
#include "model/jinja_parser.h"

namespace crescent::model {

namespace json = boost::json;

struct ChatTemplate::Program {
  std::vector<jinja::NodePtr> nodes;
};

namespace {

// An array index key ("0", "17"): JavaScript enumerates those first, ascending.
bool IsIndexKey(std::string_view k) {
  if (k.empty() || k.size() > 9 || (k.size() > 1 && k[0] == '0')) return false;
  return std::all_of(k.begin(), k.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The reference's convertToRuntimeValues applied to parsed JSON.
jinja::Value FromJson(const json::value& v) {
  using jinja::Value;
  switch (v.kind()) {
    case json::kind::null: return Value::Null();
    case json::kind::bool_: return Value::Bool(v.get_bool());
    case json::kind::int64: return Value::Int(v.get_int64());
    case json::kind::uint64: return Value::Int(static_cast<int64_t>(v.get_uint64()));
    case json::kind::double_: {
      double d = v.get_double();
      if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15) return Value::Int(static_cast<int64_t>(d));
      return Value::Float(d);
    }
    case json::kind::string: return Value::Str(std::string(v.get_string()));
    case json::kind::array: {
      std::vector<Value> items;
      for (const auto& x : v.get_array()) items.push_back(FromJson(x));
      return Value::Array(std::move(items));
    }
    case json::kind::object: {
      Value o = Value::MakeObject();
      std::vector<const json::key_value_pair*> index_keys;
      for (const auto& kv : v.get_object()) {
        if (IsIndexKey(kv.key())) index_keys.push_back(&kv);
      }
      std::sort(index_keys.begin(), index_keys.end(),
                [](auto* a, auto* b) { return std::stoll(std::string(a->key())) < std::stoll(std::string(b->key())); });
      for (auto* kv : index_keys) o.obj->Set(std::string(kv->key()), FromJson(kv->value()));
      for (const auto& kv : v.get_object()) {
        if (!IsIndexKey(kv.key())) o.obj->Set(std::string(kv.key()), FromJson(kv.value()));
      }
      return o;
    }
  }
  return Value::Undefined();
}

}  // namespace

Result<ChatTemplate> ChatTemplate::Create(std::string_view source) {
  ASSIGN_OR_RETURN(std::vector<jinja::Token> tokens, jinja::Tokenize(source));
  auto program = std::make_shared<Program>();
  ASSIGN_OR_RETURN(program->nodes, jinja::Parse(tokens));
  RETURN_IF_ERROR(jinja::CheckSupported(program->nodes));
  ChatTemplate t;
  t.program_ = std::move(program);
  return t;
}

Result<std::string> ChatTemplate::RenderJson(std::string_view context_json) const {
  ASSIGN_OR_RETURN(json::value ctx, ParseJson(context_json, "chat template context"));
  if (!ctx.is_object()) return InvalidArgument("chat template context: expected a JSON object");
  jinja::Value v = FromJson(ctx);
  return jinja::Render(program_->nodes, v.obj->entries);
}

Result<std::string> ChatTemplate::Render(std::span<const ChatMessage> messages, const ChatTemplateInputs& in) const {
  json::object ctx;
  json::array msgs;
  for (const ChatMessage& m : messages) {
    json::object o;
    o["role"] = m.role;
    if (m.content) {
      o["content"] = *m.content;
    } else {
      o["content"] = nullptr;
    }
    if (m.reasoning_content) o["reasoning_content"] = *m.reasoning_content;
    if (!m.tool_calls.empty()) {
      json::array calls;
      for (const ChatToolCall& c : m.tool_calls) {
        json::object call;
        if (!c.id.empty()) call["id"] = c.id;
        call["type"] = c.type;
        call["function"] = json::object{{"name", c.name}, {"arguments", c.arguments}};
        calls.push_back(std::move(call));
      }
      o["tool_calls"] = std::move(calls);
    }
    if (!m.tool_call_id.empty()) o["tool_call_id"] = m.tool_call_id;
    if (!m.name.empty()) o["name"] = m.name;
    msgs.push_back(std::move(o));
  }
  ctx["messages"] = std::move(msgs);
  ctx["add_generation_prompt"] = in.add_generation_prompt;
  ctx["bos_token"] = in.bos_token;
  ctx["eos_token"] = in.eos_token;
  if (!in.tools_json.empty()) {
    json::array tools;
    for (const std::string& t : in.tools_json) {
      ASSIGN_OR_RETURN(json::value tv, ParseJson(t, "tool"));
      tools.push_back(std::move(tv));
    }
    ctx["tools"] = std::move(tools);
  }
  if (!in.extra_json.empty()) {
    ASSIGN_OR_RETURN(json::value extra, ParseJson(in.extra_json, "chat template variables"));
    if (!extra.is_object()) return InvalidArgument("chat template variables: expected a JSON object");
    for (const auto& kv : extra.get_object()) ctx[kv.key()] = kv.value();
  }
  jinja::Value v = FromJson(json::value(std::move(ctx)));
  return jinja::Render(program_->nodes, v.obj->entries);
}

}  // namespace crescent::model
