#include "server/response_format.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <cmath>
#include <list>
#include <map>
#include <set>
#include <unordered_map>

#include "base/json.h"
#include "engine/json_grammar.h"
#include "base/thread_annotations.h"

namespace crescent::server {
namespace json = boost::json;
using engine::JsonGrammar;
using engine::JsonKind;
using engine::JsonNode;

namespace {

constexpr size_t kMaxNodes = 20000;
constexpr int kMaxSchemaDepth = 64;

// Keywords that constrain values in ways the grammar does not express.
const std::set<std::string, std::less<>>& Unsupported() {
  static const std::set<std::string, std::less<>> s = {
      "pattern",          "format",          "multipleOf",      "uniqueItems",       "prefixItems",
      "contains",         "minContains",     "maxContains",     "not",               "if",
      "then",             "else",            "minProperties",   "maxProperties",     "patternProperties",
      "propertyNames",    "dependentRequired", "dependentSchemas", "dependencies",   "unevaluatedProperties",
      "unevaluatedItems", "additionalItems", "contentEncoding", "contentMediaType",  "contentSchema",
      "$dynamicRef",      "$recursiveRef"};
  return s;
}

// Keywords that constrain values (beside a combiner or an enum they would be
// another condition to meet at once, which the grammar does not intersect).
const std::set<std::string, std::less<>>& Constraints() {
  static const std::set<std::string, std::less<>> s = {
      "type",      "properties", "required", "additionalProperties", "items",   "minItems",         "maxItems",
      "minLength", "maxLength",  "minimum",  "maximum",              "enum",    "exclusiveMinimum", "exclusiveMaximum",
      "const",     "anyOf",      "oneOf",    "allOf",                "$ref"};
  return s;
}

// The keyword beside `self` that constrains too ("" when none; `allowed` may stand beside it).
std::string OtherConstraint(const json::object& o, std::string_view self, std::string_view allowed = "") {
  for (const auto& [k, v] : o) {
    const std::string_view key(k);
    if (key != self && key != allowed && Constraints().contains(key)) return std::string(key);
  }
  return "";
}

// Whether a value is of a JSON Schema type.
bool OfType(const json::value& v, std::string_view type) {
  if (type == "string") return v.is_string();
  if (type == "integer") return v.is_int64() || v.is_uint64() || (v.is_double() && std::nearbyint(v.get_double()) == v.get_double());
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_bool();
  if (type == "null") return v.is_null();
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  return false;
}

// Canonical JSON text of a value: what an enum or const must appear as.
std::string Literal(const json::value& v) {
  if (v.is_double()) {
    const double d = v.get_double();
    if (std::nearbyint(d) == d && std::fabs(d) < 1e15) return fmt::format("{}", static_cast<int64_t>(d));
    return fmt::format("{}", d);
  }
  return json::serialize(v);
}

class SchemaCompiler {
 public:
  // One schema document (its $refs resolve within it).
  Result<int32_t> CompileDocument(const json::value& doc, const std::string& where) {
    const json::value* outer = root_;
    root_ = &doc;
    Result<int32_t> r = Compile(doc, where, 0);
    root_ = outer;
    return r;
  }

  // The calls of `tools` ({"name", "parameters"} each; each parameters its own document):
  // [{"name": N, "arguments": <N's parameters>}, ...], at least one, at most one unless parallel.
  Result<int32_t> CompileCalls(const json::array& tools, bool parallel) {
    JsonNode any;
    any.kind = JsonKind::kAnyOf;
    for (const json::value& t : tools) {
      const json::object* o = t.if_object();
      const json::value* name = o ? o->if_contains("name") : nullptr;
      const json::value* params = o ? o->if_contains("parameters") : nullptr;
      if (!name || !name->is_string() || !params) return InvalidArgument("tool_calls: each tool needs a name and parameters");
      JsonNode lit;
      lit.literals = {json::serialize(*name)};
      const int32_t name_node = Add(std::move(lit));
      Result<int32_t> args = CompileDocument(*params, fmt::format("tools.{}.parameters", std::string_view(name->get_string())));
      if (!args.ok()) return args.status();
      JsonNode call;
      call.kind = JsonKind::kObject;
      call.properties = {{"name", name_node, true}, {"arguments", *args, true}};
      any.alternatives.push_back(Add(std::move(call)));
    }
    if (any.alternatives.empty()) return InvalidArgument("tool_calls: no tools");
    const int32_t item = Add(std::move(any));
    JsonNode array;
    array.kind = JsonKind::kArray;
    array.items = item;
    array.min_items = 1;
    if (!parallel) array.max_items = 1;
    return Add(std::move(array));
  }

  Result<std::shared_ptr<const JsonGrammar>> Finish(int32_t root) {
    Result<std::shared_ptr<const JsonGrammar>> g = JsonGrammar::Create(std::move(nodes_), root);
    if (!g.ok()) return InvalidArgument("response_format schema: " + g.status().message());
    return g;
  }

 private:
  int32_t Add(JsonNode n) {
    nodes_.push_back(std::move(n));
    return static_cast<int32_t>(nodes_.size() - 1);
  }
  int32_t Any() {
    if (any_ < 0) any_ = JsonGrammar::AddAnyValue(&nodes_);
    return any_;
  }
  Status Fail(const std::string& where, const std::string& what) {
    return InvalidArgument(fmt::format("response_format {}: {}", where, what));
  }

  Result<int32_t> Compile(const json::value& v, const std::string& where, int depth) {
    if (depth > kMaxSchemaDepth) return Fail(where, "the schema nests too deeply");
    if (nodes_.size() > kMaxNodes) return Fail(where, "the schema is too large");
    if (v.is_bool()) {
      if (v.get_bool()) return Any();
      return Fail(where, "the schema 'false' allows no value");
    }
    if (!v.is_object()) return Fail(where, fmt::format("a schema must be an object, got {}", JsonKindName(v)));
    const json::object& o = v.get_object();
    for (const auto& [k, x] : o) {
      if (Unsupported().contains(std::string_view(k))) {
        return Fail(where, fmt::format("'{}' is not supported", std::string_view(k)));
      }
    }
    if (const json::value* ref = o.if_contains("$ref")) {
      if (std::string other = OtherConstraint(o, "$ref"); !other.empty()) {
        return Fail(where, fmt::format("'$ref' beside '{}' is not supported", other));
      }
      return CompileRef(*ref, where, depth);
    }
    for (const char* combiner : {"anyOf", "oneOf"}) {
      if (const json::value* alts = o.if_contains(combiner)) {
        if (std::string other = OtherConstraint(o, combiner); !other.empty()) {
          return Fail(where, fmt::format("'{}' beside '{}' is not supported", combiner, other));
        }
        if (!alts->is_array() || alts->get_array().empty()) return Fail(where, fmt::format("'{}' must be a non-empty array", combiner));
        JsonNode n;
        n.kind = JsonKind::kAnyOf;
        const json::array& a = alts->get_array();
        for (size_t i = 0; i < a.size(); ++i) {
          Result<int32_t> c = Compile(a[i], fmt::format("{}.{}[{}]", where, combiner, i), depth + 1);
          if (!c.ok()) return c.status();
          n.alternatives.push_back(*c);
        }
        return Add(std::move(n));
      }
    }
    if (const json::value* all = o.if_contains("allOf")) {
      if (!all->is_array() || all->get_array().size() != 1) return Fail(where, "'allOf' is supported with one schema only");
      if (std::string other = OtherConstraint(o, "allOf"); !other.empty()) {
        return Fail(where, fmt::format("'allOf' beside '{}' is not supported", other));
      }
      return Compile(all->get_array()[0], where + ".allOf[0]", depth + 1);
    }
    for (const char* key : {"const", "enum"}) {
      const json::value* e = o.if_contains(key);
      if (!e) continue;
      if (std::string other = OtherConstraint(o, key, "type"); !other.empty()) {
        return Fail(where, fmt::format("'{}' beside '{}' is not supported", key, other));
      }
      std::vector<const json::value*> values;
      if (std::string_view(key) == "const") {
        values.push_back(e);
      } else {
        if (!e->is_array() || e->get_array().empty()) return Fail(where, "'enum' must be a non-empty array");
        for (const json::value& x : e->get_array()) values.push_back(&x);
      }
      // With a type beside it, the values of that type (of one of those types).
      std::vector<std::string> types;
      if (const json::value* t = o.if_contains("type")) {
        if (t->is_string()) types.emplace_back(t->get_string());
        if (t->is_array()) {
          for (const json::value& x : t->get_array()) {
            if (x.is_string()) types.emplace_back(x.get_string());
          }
        }
      }
      JsonNode n;
      for (const json::value* x : values) {
        if (types.empty() || std::any_of(types.begin(), types.end(), [&](const std::string& t) { return OfType(*x, t); })) {
          n.literals.push_back(Literal(*x));
        }
      }
      if (n.literals.empty()) return Fail(where, fmt::format("no '{}' value is of the 'type' beside it", key));
      return Add(std::move(n));
    }
    std::vector<std::string> types;
    if (const json::value* t = o.if_contains("type")) {
      if (t->is_string()) {
        types.emplace_back(t->get_string());
      } else if (t->is_array() && !t->get_array().empty()) {
        for (const json::value& x : t->get_array()) {
          if (!x.is_string()) return Fail(where, "'type' must be a string or a list of strings");
          types.emplace_back(x.get_string());
        }
      } else {
        return Fail(where, "'type' must be a string or a non-empty list of strings");
      }
    } else if (o.contains("properties") || o.contains("additionalProperties") || o.contains("required")) {
      types = {"object"};
    } else if (o.contains("items") || o.contains("minItems") || o.contains("maxItems")) {
      types = {"array"};
    } else if (o.contains("minLength") || o.contains("maxLength")) {
      types = {"string"};
    } else if (o.contains("minimum") || o.contains("maximum") || o.contains("exclusiveMinimum") ||
               o.contains("exclusiveMaximum")) {
      types = {"number"};
    } else {
      return Any();  // no constraint: any value
    }
    if (types.size() == 1) return CompileTyped(o, types[0], where, depth);
    JsonNode n;
    n.kind = JsonKind::kAnyOf;
    for (const std::string& t : types) {
      Result<int32_t> c = CompileTyped(o, t, where, depth);
      if (!c.ok()) return c.status();
      n.alternatives.push_back(*c);
    }
    return Add(std::move(n));
  }

  Result<int64_t> Count(const json::object& o, const char* key, const std::string& where) {
    const json::value* v = o.if_contains(key);
    if (!v) return int64_t{-1};
    if (v->is_int64() && v->get_int64() >= 0) return v->get_int64();
    if (v->is_uint64()) return std::numeric_limits<int64_t>::max();
    if (v->is_double() && v->get_double() >= 0 && std::nearbyint(v->get_double()) == v->get_double() &&
        v->get_double() < 9e18) {
      return static_cast<int64_t>(v->get_double());
    }
    return Fail(where, fmt::format("'{}' must be a non-negative integer", key));
  }

  Result<int32_t> CompileTyped(const json::object& o, const std::string& type, const std::string& where, int depth) {
    JsonNode n;
    if (type == "object") {
      n.kind = JsonKind::kObject;
      std::set<std::string> required;
      if (const json::value* req = o.if_contains("required")) {
        if (!req->is_array()) return Fail(where, "'required' must be an array of strings");
        for (const json::value& x : req->get_array()) {
          if (!x.is_string()) return Fail(where, "'required' must be an array of strings");
          required.insert(std::string(x.get_string()));
        }
      }
      const json::value* props = o.if_contains("properties");
      if (props && !props->is_object()) return Fail(where, "'properties' must be an object");
      const int32_t self = Add(JsonNode{});  // its slot: properties may refer back to it
      if (props) {
        for (const auto& [k, x] : props->get_object()) {
          const std::string name(k);
          Result<int32_t> c = Compile(x, where + ".properties." + name, depth + 1);
          if (!c.ok()) return c.status();
          n.properties.push_back({name, *c, required.contains(name)});
          required.erase(name);
        }
      }
      if (!required.empty()) return Fail(where, fmt::format("required property '{}' is not in 'properties'", *required.begin()));
      if (n.properties.empty()) {
        const json::value* add = o.if_contains("additionalProperties");
        if (add == nullptr || (add->is_bool() && add->get_bool())) {
          n.additional = Any();
        } else if (add->is_bool()) {
          n.additional = -1;  // {} only
        } else {
          Result<int32_t> c = Compile(*add, where + ".additionalProperties", depth + 1);
          if (!c.ok()) return c.status();
          n.additional = *c;
        }
      }
      nodes_[static_cast<size_t>(self)] = std::move(n);
      return self;
    }
    if (type == "array") {
      n.kind = JsonKind::kArray;
      const json::value* items = o.if_contains("items");
      if (items && items->is_array()) return Fail(where, "'items' as a list (tuples) is not supported");
      const int32_t self = Add(JsonNode{});
      if (items) {
        Result<int32_t> c = Compile(*items, where + ".items", depth + 1);
        if (!c.ok()) return c.status();
        n.items = *c;
      } else {
        n.items = Any();
      }
      ASSIGN_OR_RETURN(int64_t lo, Count(o, "minItems", where));
      ASSIGN_OR_RETURN(int64_t hi, Count(o, "maxItems", where));
      if (lo >= 0) n.min_items = lo;
      if (hi >= 0) n.max_items = hi;
      nodes_[static_cast<size_t>(self)] = std::move(n);
      return self;
    }
    if (type == "string") {
      n.kind = JsonKind::kString;
      ASSIGN_OR_RETURN(int64_t lo, Count(o, "minLength", where));
      ASSIGN_OR_RETURN(int64_t hi, Count(o, "maxLength", where));
      if (lo >= 0) n.min_length = lo;
      if (hi >= 0) n.max_length = hi;
      return Add(std::move(n));
    }
    if (type == "number" || type == "integer") {
      n.kind = type == "number" ? JsonKind::kNumber : JsonKind::kInteger;
      auto num = [&](const char* key, double* out) -> Status {
        const json::value* v = o.if_contains(key);
        if (!v) return Status::Ok();
        if (!v->is_number()) return Fail(where, fmt::format("'{}' must be a number", key));
        *out = v->to_number<double>();
        return Status::Ok();
      };
      RETURN_IF_ERROR(num("minimum", &n.minimum));
      RETURN_IF_ERROR(num("maximum", &n.maximum));
      // exclusiveMinimum: a number (draft 6 on), or a boolean beside minimum (draft 4).
      for (bool lower : {true, false}) {
        const char* key = lower ? "exclusiveMinimum" : "exclusiveMaximum";
        const json::value* v = o.if_contains(key);
        if (!v) continue;
        bool& flag = lower ? n.exclusive_minimum : n.exclusive_maximum;
        double& bound = lower ? n.minimum : n.maximum;
        if (v->is_bool()) {
          flag = v->get_bool();
        } else if (v->is_number()) {
          const double x = v->to_number<double>();
          if (lower ? x >= bound : x <= bound) {
            bound = x;
            flag = true;
          }
        } else {
          return Fail(where, fmt::format("'{}' must be a number", key));
        }
      }
      return Add(std::move(n));
    }
    if (type == "boolean") {
      n.literals = {"false", "true"};
      return Add(std::move(n));
    }
    if (type == "null") {
      n.literals = {"null"};
      return Add(std::move(n));
    }
    return Fail(where, fmt::format("type '{}' is not supported (object, array, string, number, integer, boolean, null)", type));
  }

  Result<int32_t> CompileRef(const json::value& ref, const std::string& where, int depth) {
    if (!ref.is_string()) return Fail(where, "'$ref' must be a string");
    const std::string r(ref.get_string());
    if (auto it = refs_.find({root_, r}); it != refs_.end()) return it->second;
    const json::value* target = nullptr;
    if (r == "#") {
      target = root_;
    } else {
      for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
        const std::string p(prefix);
        if (r.compare(0, p.size(), p) != 0) continue;
        const std::string name = r.substr(p.size());
        const json::value* defs = root_->is_object() ? root_->get_object().if_contains(p.substr(2, p.size() - 3)) : nullptr;
        if (defs && defs->is_object()) target = defs->get_object().if_contains(name);
      }
    }
    if (target == nullptr) return Fail(where, fmt::format("'$ref' '{}' does not name a schema in #/$defs or #/definitions", r));
    // An alias slot first, so that a recursive reference finds it.
    JsonNode alias;
    alias.kind = JsonKind::kAnyOf;
    const int32_t slot = Add(std::move(alias));
    refs_[{root_, r}] = slot;
    Result<int32_t> c = Compile(*target, r, depth + 1);
    if (!c.ok()) return c.status();
    nodes_[static_cast<size_t>(slot)].alternatives = {*c};
    return slot;
  }

  const json::value* root_ = nullptr;  // the document being compiled
  std::vector<JsonNode> nodes_;
  std::map<std::pair<const json::value*, std::string>, int32_t> refs_;
  int32_t any_ = -1;
};

// Compiled grammars by spec: the same schema shares its masks.
class GrammarCache {
 public:
  std::shared_ptr<const JsonGrammar> Get(const std::string& spec) {
    MutexLock l(mu_);
    auto it = map_.find(spec);
    if (it == map_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second.second);
    return it->second.first;
  }
  void Put(const std::string& spec, std::shared_ptr<const JsonGrammar> g) {
    MutexLock l(mu_);
    if (map_.contains(spec)) return;
    order_.push_front(spec);
    map_.emplace(spec, std::make_pair(std::move(g), order_.begin()));
    if (map_.size() > 64) {
      map_.erase(order_.back());
      order_.pop_back();
    }
  }

 private:
  Mutex mu_;
  std::list<std::string> order_;
  std::unordered_map<std::string, std::pair<std::shared_ptr<const JsonGrammar>, std::list<std::string>::iterator>> map_;
};

GrammarCache& Cache() {
  static GrammarCache* c = new GrammarCache();
  return *c;
}

}  // namespace

namespace {

// `internal`: also the split's own spec of forced tool calls,
// {"type":"tool_calls","tools":[{"name","parameters"}],"parallel_tool_calls":bool}.
Result<ResponseFormat> Compile(const json::value& v, bool internal) {
  if (!v.is_object()) return InvalidArgument(fmt::format("'response_format' must be an object, got {}", JsonKindName(v)));
  const json::object& o = v.get_object();
  const json::value* type = o.if_contains("type");
  if (type == nullptr || !type->is_string()) return InvalidArgument("'response_format.type' must be a string");
  const std::string t(type->get_string());
  ResponseFormat f;
  if (t == "text") return f;
  if (t == "json_object") {
    f.grammar = JsonGrammar::AnyObject();
    f.spec = R"({"type":"json_object"})";
    return f;
  }
  if (t == "tool_calls" && internal) {
    const json::value* tools = o.if_contains("tools");
    const json::value* parallel = o.if_contains("parallel_tool_calls");
    if (!tools || !tools->is_array() || !parallel || !parallel->is_bool()) return InvalidArgument("tool_calls: a malformed spec");
    f.spec = json::serialize(v);
    if ((f.grammar = Cache().Get(f.spec))) return f;
    SchemaCompiler c;
    ASSIGN_OR_RETURN(int32_t root, c.CompileCalls(tools->get_array(), parallel->get_bool()));
    ASSIGN_OR_RETURN(f.grammar, c.Finish(root));
    Cache().Put(f.spec, f.grammar);
    return f;
  }
  if (t != "json_schema") {
    return InvalidArgument(fmt::format("response_format type '{}' is not supported (text, json_object, json_schema)", t));
  }
  const json::value* js = o.if_contains("json_schema");
  if (js == nullptr || !js->is_object()) return InvalidArgument("'response_format.json_schema' must be an object");
  const json::value* schema = js->get_object().if_contains("schema");
  if (schema == nullptr) return InvalidArgument("'response_format.json_schema.schema' is required");
  json::object canonical;
  canonical["type"] = "json_schema";
  canonical["json_schema"] = json::object{{"schema", *schema}};
  f.spec = json::serialize(canonical);
  if ((f.grammar = Cache().Get(f.spec))) return f;
  SchemaCompiler c;
  ASSIGN_OR_RETURN(int32_t root, c.CompileDocument(*schema, "schema"));
  ASSIGN_OR_RETURN(f.grammar, c.Finish(root));
  Cache().Put(f.spec, f.grammar);
  return f;
}

}  // namespace

Result<ResponseFormat> CompileResponseFormat(const json::value& v) { return Compile(v, /*internal=*/false); }

Result<ResponseFormat> CompileResponseFormatSpec(std::string_view spec) {
  Result<json::value> v = ParseJson(spec, "response_format");
  if (!v.ok()) return v.status();
  return Compile(*v, /*internal=*/true);
}

}  // namespace crescent::server
