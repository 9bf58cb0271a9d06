// GCC 12 reports a false -Wrestrict inside std::string's operator+ (GCC bug
// 105329); string building here is ordinary.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include "model/jinja_interpreter.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "model/jinja_builtins.h"
#include "model/jinja_filters.h"

namespace crescent::model::jinja {

Value Environment::Lookup(const std::string& name) const {
  for (const Environment* e = this; e; e = e->parent_) {
    auto it = e->vars_.find(name);
    if (it != e->vars_.end()) return it->second;
  }
  return Value::Undefined();
}

namespace {

Status Err(const std::string& m) { return TemplateError(m); }

const std::set<std::string>& KnownFilters() {
  static const std::set<std::string> k = {
      "safe", "tojson", "list", "first", "last", "length", "reverse", "sort", "join", "string", "unique", "upper",
      "lower", "title", "capitalize", "trim", "indent", "int", "float", "abs", "items", "bool", "default",
      "selectattr", "rejectattr", "map", "replace", "get", "keys", "values"};
  return k;
}
const std::set<std::string>& KnownTests() {
  static const std::set<std::string> k = {"boolean", "callable", "odd", "even", "false", "true", "none", "string",
                                          "number", "integer", "iterable", "mapping", "sequence", "lower", "upper",
                                          "defined", "undefined", "equalto", "eq"};
  return k;
}

Status CheckNode(const Node* n) {
  if (!n) return Status::Ok();
  if (n->type == NodeType::kFilter) {
    const Node* f = n->b.get();
    std::string name = f->type == NodeType::kCall ? (f->a->type == NodeType::kIdentifier ? f->a->str : "?") : f->str;
    if (!KnownFilters().count(name)) return Unimplemented("chat template: unsupported filter '" + name + "'");
  }
  if (n->type == NodeType::kTest && !KnownTests().count(n->str)) {
    return Unimplemented("chat template: unsupported test '" + n->str + "'");
  }
  for (const Node* c : {n->a.get(), n->b.get(), n->c.get()}) RETURN_IF_ERROR(CheckNode(c));
  for (const auto* l : {&n->list, &n->body, &n->alt}) {
    for (const auto& c : *l) RETURN_IF_ERROR(CheckNode(c.get()));
  }
  return Status::Ok();
}

// Code points of a string, as JavaScript's Array.from(string) gives them.
class Interpreter {
 public:
  Result<std::string> Block(const std::vector<NodePtr>& stmts, Environment& env) {
    std::string out;
    for (const auto& s : stmts) {
      ASSIGN_OR_RETURN(Value v, Eval(*s, env));
      if (flow_ != Flow::kNormal) return out;
      if (v.kind == Kind::kNull || v.kind == Kind::kUndefined) continue;
      if (v.is_array() || v.is_object() || v.kind == Kind::kNamespace) {
        ASSIGN_OR_RETURN(std::string s, ToJson(v, JsonOptions{}, /*undefined_as_null=*/false));
        out += s;
      } else {
        out += v.ToString();
      }
    }
    return out;
  }
  bool pending_flow() const { return flow_ != Flow::kNormal; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  Flow flow_ = Flow::kNormal;
  int macro_depth_ = 0;  // macro calls in progress (a macro may call itself)

  Result<Value> Eval(const Node& n, Environment& env);
  Result<Value> EvalOpt(const Node* n, Environment& env) {
    if (!n) return Value::Undefined();
    return Eval(*n, env);
  }
  Status Args(const std::vector<NodePtr>& nodes, Environment& env, std::vector<Value>* pos, std::shared_ptr<Object>* kw);
  Result<Value> Binary(const Node& n, Environment& env);
  Result<Value> Member(const Node& n, Environment& env);
  Result<Value> Filter(const Value& operand, const Node& filter, Environment& env);
  Result<Value> For(const Node& n, Environment& env);
  Result<Value> Set(const Node& n, Environment& env);
  Result<Value> MakeMacro(const Node& n, Environment& env);
};

Status Interpreter::Args(const std::vector<NodePtr>& nodes, Environment& env, std::vector<Value>* pos,
                         std::shared_ptr<Object>* kw) {
  *kw = std::make_shared<Object>();
  for (const auto& a : nodes) {
    if (a->type == NodeType::kSpread) {
      ASSIGN_OR_RETURN(Value v, Eval(*a->a, env));
      if (!v.is_array()) return Err(std::string("Cannot unpack non-iterable type: ") + v.TypeName());
      for (const Value& x : *v.arr) pos->push_back(x);
    } else if (a->type != NodeType::kKwArg && a->type != NodeType::kKwSpread) {
      ASSIGN_OR_RETURN(Value v, Eval(*a, env));
      pos->push_back(std::move(v));
    }
  }
  for (const auto& a : nodes) {
    if (a->type == NodeType::kKwArg) {
      ASSIGN_OR_RETURN(Value v, Eval(*a->a, env));
      (*kw)->Set(a->str, std::move(v));
    } else if (a->type == NodeType::kKwSpread) {
      ASSIGN_OR_RETURN(Value v, Eval(*a->a, env));
      if (!v.is_object()) return Err("Argument after ** must be a mapping");
      for (const auto& [k, x] : v.obj->entries) (*kw)->Set(k, x);
    }
  }
  return Status::Ok();
}

Result<Value> Interpreter::Binary(const Node& n, Environment& env) {
  const std::string& op = n.str;
  ASSIGN_OR_RETURN(Value l, Eval(*n.a, env));
  if (op == "and") {
    if (!l.Truthy()) return l;
    return Eval(*n.b, env);
  }
  if (op == "or") {
    if (l.Truthy()) return l;
    return Eval(*n.b, env);
  }
  ASSIGN_OR_RETURN(Value r, Eval(*n.b, env));
  if (op == "==") return Value::Bool(LooseEquals(l, r));
  if (op == "!=") return Value::Bool(!LooseEquals(l, r));
  if (l.kind == Kind::kUndefined || r.kind == Kind::kUndefined) {
    if (r.kind == Kind::kUndefined && (op == "in" || op == "not in")) return Value::Bool(op == "not in");
    return Err("Cannot perform operation " + op + " on undefined values");
  }
  if (l.kind == Kind::kNull || r.kind == Kind::kNull) return Err("Cannot perform operation on null values");
  if (op == "~") return Value::Str(PayloadString(l) + PayloadString(r));
  auto numeric_like = [](const Value& v) { return v.is_number() || v.kind == Kind::kBool; };
  if (op == "**" && numeric_like(l) && numeric_like(r)) {
    double a = l.number(), b = r.number();
    if (a == 0 && b < 0) return Err("0.0 cannot be raised to a negative power");
    double res = std::pow(a, b);
    if (!std::isfinite(res)) return Err("Exponentiation result is not a finite real number");
    bool is_float = l.kind == Kind::kFloat || r.kind == Kind::kFloat || b < 0;
    if (!is_float && !(std::fabs(res) < 9.2e18)) return Err("integer overflow in '**'");
    return is_float ? Value::Float(res) : Value::Int(static_cast<int64_t>(res));
  }
  if (l.is_number() && r.is_number()) {
    bool is_float = l.kind == Kind::kFloat || r.kind == Kind::kFloat;
    double a = l.number(), b = r.number();
    // Integers are int64 (Python's are unbounded): a result past it is an
    // error, never a wrapped value.
    int64_t v = 0;
    if (op == "+") {
      if (is_float) return Value::Float(a + b);
      if (__builtin_add_overflow(l.i, r.i, &v)) return Err("integer overflow in '+'");
      return Value::Int(v);
    }
    if (op == "-") {
      if (is_float) return Value::Float(a - b);
      if (__builtin_sub_overflow(l.i, r.i, &v)) return Err("integer overflow in '-'");
      return Value::Int(v);
    }
    if (op == "*") {
      if (is_float) return Value::Float(a * b);
      if (__builtin_mul_overflow(l.i, r.i, &v)) return Err("integer overflow in '*'");
      return Value::Int(v);
    }
    if (op == "/") return Value::Float(a / b);
    if (op == "//") {
      if (is_float) return Value::Float(std::floor(a / b));
      if (r.i == 0) return Err("integer division by zero");
      if (r.i == -1) {
        if (l.i == INT64_MIN) return Err("integer overflow in '//'");
        return Value::Int(-l.i);
      }
      const int64_t q = l.i / r.i;
      return Value::Int((l.i % r.i != 0 && ((l.i < 0) != (r.i < 0))) ? q - 1 : q);  // floor
    }
    if (op == "%") {
      if (!is_float && r.i == -1) return Value::Int(0);  // INT64_MIN % -1 overflows in C++
      if (!is_float && r.i != 0) return Value::Int(l.i % r.i);
      return Value::Float(std::fmod(a, b));
    }
    if (op == "<") return Value::Bool(a < b);
    if (op == ">") return Value::Bool(a > b);
    if (op == ">=") return Value::Bool(a >= b);
    if (op == "<=") return Value::Bool(a <= b);
  } else if (l.is_array() && r.is_array()) {
    if (op == "+") {
      std::vector<Value> all = *l.arr;
      all.insert(all.end(), r.arr->begin(), r.arr->end());
      return Value::Array(std::move(all));
    }
  } else if (r.is_array()) {
    bool member = std::any_of(r.arr->begin(), r.arr->end(), [&](const Value& x) { return StrictEquals(x, l); });
    if (op == "in") return Value::Bool(member);
    if (op == "not in") return Value::Bool(!member);
  }
  if ((l.kind == Kind::kString || r.kind == Kind::kString) && op == "+") {
    return Value::Str(PayloadString(l) + PayloadString(r));
  }
  if (l.kind == Kind::kString && r.kind == Kind::kString) {
    if (op == "in") return Value::Bool(r.s.find(l.s) != std::string::npos);
    if (op == "not in") return Value::Bool(r.s.find(l.s) == std::string::npos);
  }
  if (l.kind == Kind::kString && r.is_object()) {
    bool has = r.obj->Find(l.s) != nullptr;
    if (op == "in") return Value::Bool(has);
    if (op == "not in") return Value::Bool(!has);
  }
  return Err("Unknown operator \"" + op + "\" between " + l.TypeName() + " and " + r.TypeName());
}

Result<Value> Interpreter::Member(const Node& n, Environment& env) {
  ASSIGN_OR_RETURN(Value obj, Eval(*n.a, env));
  Value prop;
  if (n.flag) {
    if (n.b->type == NodeType::kSlice) {
      if (!obj.is_array() && obj.kind != Kind::kString) return Err("Slice object must be an array or string");
      std::optional<int64_t> idx[3];
      const Node* parts[3] = {n.b->a.get(), n.b->b.get(), n.b->c.get()};
      for (int k = 0; k < 3; ++k) {
        ASSIGN_OR_RETURN(Value v, EvalOpt(parts[k], env));
        if (v.kind == Kind::kInt) {
          idx[k] = v.i;
        } else if (v.kind != Kind::kUndefined) {
          return Err("Slice indices must be integers");
        }
      }
      if (obj.is_array()) return Value::Array(SliceOf(*obj.arr, idx[0], idx[1], idx[2]));
      std::string out;
      for (const auto& cp : SliceOf(CodePoints(obj.s), idx[0], idx[1], idx[2])) out += cp;
      return Value::Str(out);
    }
    ASSIGN_OR_RETURN(prop, Eval(*n.b, env));
  } else if (n.b->type == NodeType::kInt) {
    prop = Value::Int(n.b->i);
  } else {
    prop = Value::Str(n.b->str);
  }
  if (obj.is_object() || obj.kind == Kind::kNamespace) {
    if (prop.kind != Kind::kString) return Err(std::string("Cannot access property with non-string: got ") + prop.TypeName());
    const Value* v = obj.obj->Find(prop.s);
    if (v) return *v;
    if (obj.kind == Kind::kObject || obj.kind == Kind::kKwArgs) return ObjectBuiltin(obj, prop.s);
    return Value::Undefined();
  }
  if (obj.is_array() || obj.kind == Kind::kString) {
    if (prop.kind == Kind::kInt) {
      if (obj.is_array()) {
        int64_t sz = static_cast<int64_t>(obj.arr->size()), k = prop.i < 0 ? sz + prop.i : prop.i;
        if (k < 0 || k >= sz) return Value::Undefined();
        return (*obj.arr)[static_cast<size_t>(k)];
      }
      auto cps = CodePoints(obj.s);
      int64_t sz = static_cast<int64_t>(cps.size()), k = prop.i < 0 ? sz + prop.i : prop.i;
      if (k < 0 || k >= sz) return Value::Undefined();
      return Value::Str(cps[static_cast<size_t>(k)]);
    }
    if (prop.kind == Kind::kString) {
      if (obj.is_array()) return prop.s == "length" ? Value::Int(static_cast<int64_t>(obj.arr->size())) : Value::Undefined();
      return StringBuiltin(obj, prop.s);
    }
    return Err(std::string("Cannot access property with non-string/non-number: got ") + prop.TypeName());
  }
  if (prop.kind != Kind::kString) return Err(std::string("Cannot access property with non-string: got ") + prop.TypeName());
  return Value::Undefined();
}

Result<Value> Interpreter::Filter(const Value& v, const Node& f, Environment& env) {
  if (f.type == NodeType::kIdentifier) return ApplyFilter(v, f.str, env);
  std::vector<Value> args;
  std::shared_ptr<Object> kw;
  RETURN_IF_ERROR(Args(f.list, env, &args, &kw));
  return ApplyFilter(v, f.a->str, std::move(args), kw, env);
}

Result<Value> Interpreter::Set(const Node& n, Environment& env) {
  Value rhs;
  if (n.b) {
    ASSIGN_OR_RETURN(rhs, Eval(*n.b, env));
  } else {
    ASSIGN_OR_RETURN(std::string s, Block(n.body, env));
    rhs = Value::Str(s);
  }
  const Node& lhs = *n.a;
  if (lhs.type == NodeType::kIdentifier) {
    env.Set(lhs.str, rhs);
  } else if (lhs.type == NodeType::kTuple) {
    if (!rhs.is_array()) return Err(std::string("Cannot unpack non-iterable type in set: ") + rhs.TypeName());
    if (rhs.arr->size() != lhs.list.size()) return Err("Wrong number of items to unpack in set");
    for (size_t k = 0; k < lhs.list.size(); ++k) {
      if (lhs.list[k]->type != NodeType::kIdentifier) return Err("Cannot unpack to non-identifier in set");
      env.Set(lhs.list[k]->str, (*rhs.arr)[k]);
    }
  } else if (lhs.type == NodeType::kMember) {
    ASSIGN_OR_RETURN(Value obj, Eval(*lhs.a, env));
    if (obj.kind != Kind::kNamespace) return Err("cannot assign attribute on non-namespace object");
    if (lhs.b->type != NodeType::kIdentifier) return Err("Cannot assign to member with non-identifier property");
    obj.obj->Set(lhs.b->str, rhs);
  } else {
    return Err("Invalid LHS inside assignment expression");
  }
  return Value::Null();
}

Result<Value> Interpreter::For(const Node& n, Environment& env) {
  Environment scope(&env);
  const Node* test = nullptr;
  Value iterable;
  if (n.b->type == NodeType::kSelect) {
    ASSIGN_OR_RETURN(iterable, Eval(*n.b->a, scope));
    test = n.b->b.get();
  } else {
    ASSIGN_OR_RETURN(iterable, Eval(*n.b, scope));
  }
  if (iterable.is_object()) {
    std::vector<Value> keys;
    for (const auto& e : iterable.obj->entries) keys.push_back(Value::Str(e.first));
    iterable = Value::Array(std::move(keys));
  }
  if (!iterable.is_array()) return Err(std::string("Expected iterable or object type in for loop: got ") + iterable.TypeName());
  const Node& var = *n.a;
  auto bind = [&](Environment& e, const Value& cur) -> Status {
    if (var.type == NodeType::kIdentifier) {
      e.Set(var.str, cur);
      return Status::Ok();
    }
    if (!cur.is_array()) return Err(std::string("Cannot unpack non-iterable type: ") + cur.TypeName());
    if (cur.arr->size() != var.list.size()) return Err("Wrong number of items to unpack");
    for (size_t k = 0; k < var.list.size(); ++k) {
      if (var.list[k]->type != NodeType::kIdentifier) return Err("Cannot unpack non-identifier type");
      e.Set(var.list[k]->str, (*cur.arr)[k]);
    }
    return Status::Ok();
  };
  std::vector<Value> items;
  for (const Value& cur : *iterable.arr) {
    if (test) {
      Environment loop_scope(&scope);
      RETURN_IF_ERROR(bind(loop_scope, cur));
      ASSIGN_OR_RETURN(Value t, Eval(*test, loop_scope));
      if (!t.Truthy()) continue;
    }
    items.push_back(cur);
  }
  std::string result;
  bool no_iteration = true;
  const int64_t len = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < len; ++i) {
    Value loop = Value::MakeObject();
    loop.obj->Set("index", Value::Int(i + 1));
    loop.obj->Set("index0", Value::Int(i));
    loop.obj->Set("revindex", Value::Int(len - i));
    loop.obj->Set("revindex0", Value::Int(len - i - 1));
    loop.obj->Set("first", Value::Bool(i == 0));
    loop.obj->Set("last", Value::Bool(i == len - 1));
    loop.obj->Set("length", Value::Int(len));
    loop.obj->Set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::Undefined());
    loop.obj->Set("nextitem", i < len - 1 ? items[static_cast<size_t>(i + 1)] : Value::Undefined());
    scope.Set("loop", loop);
    RETURN_IF_ERROR(bind(scope, items[static_cast<size_t>(i)]));
    ASSIGN_OR_RETURN(std::string body, Block(n.body, scope));
    if (flow_ == Flow::kContinue) {  // the iteration's text is dropped, as in the reference
      flow_ = Flow::kNormal;
      continue;
    }
    if (flow_ == Flow::kBreak) {
      flow_ = Flow::kNormal;
      break;
    }
    result += body;
    no_iteration = false;
  }
  if (no_iteration) {
    ASSIGN_OR_RETURN(std::string alt, Block(n.alt, scope));
    result += alt;
  }
  return Value::Str(result);
}

Result<Value> Interpreter::MakeMacro(const Node& n, Environment& env) {
  const Node* node = &n;
  env.Set(n.str, Value::Func([this, node](std::vector<Value>& args, Environment& caller) -> Result<Value> {
    // A macro that calls itself without end is an error, not a stack overflow.
    constexpr int kMaxMacroDepth = 64;
    if (macro_depth_ >= kMaxMacroDepth) return Err("macros nested deeper than 64 calls (unbounded recursion?)");
    ++macro_depth_;
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{macro_depth_};
    Environment scope(&caller);
    std::vector<Value> pos = args;
    std::shared_ptr<Object> kw = std::make_shared<Object>();
    if (!pos.empty() && pos.back().kind == Kind::kKwArgs) {
      kw = std::make_shared<Object>(*pos.back().obj);
      pos.pop_back();
    }
    std::vector<std::pair<std::string, const Node*>> defaults;
    for (size_t k = 0; k < node->list.size(); ++k) {
      const Node& p = *node->list[k];
      std::string name = p.type == NodeType::kKwArg ? p.str : p.str;
      Value v;
      bool have = false;
      if (k < pos.size()) {
        v = pos[k];
        have = true;
      } else if (const Value* x = kw->Find(name)) {
        v = *x;
        have = true;
        auto& e = kw->entries;
        e.erase(std::remove_if(e.begin(), e.end(), [&](const auto& kv) { return kv.first == name; }), e.end());
      }
      if (!have && p.type == NodeType::kKwArg) defaults.emplace_back(name, p.a.get());
      scope.Set(name, have ? v : Value::Undefined());
    }
    Value kwv = Value::MakeObject();
    kwv.obj = kw;
    scope.Set("kwargs", kwv);
    std::vector<Value> rest;
    for (size_t k = node->list.size(); k < pos.size(); ++k) rest.push_back(pos[k]);
    scope.Set("varargs", Value::Array(std::move(rest)));
    for (const auto& [name, expr] : defaults) {
      ASSIGN_OR_RETURN(Value v, Eval(*expr, scope));
      scope.Set(name, v);
    }
    ASSIGN_OR_RETURN(std::string s, Block(node->body, scope));
    return Value::Str(s);
  }));
  return Value::Null();
}

Result<Value> Interpreter::Eval(const Node& n, Environment& env) {
  switch (n.type) {
    case NodeType::kIf: {
      ASSIGN_OR_RETURN(Value t, Eval(*n.a, env));
      ASSIGN_OR_RETURN(std::string s, Block(t.Truthy() ? n.body : n.alt, env));
      return Value::Str(s);
    }
    case NodeType::kFor: return For(n, env);
    case NodeType::kSet: return Set(n, env);
    case NodeType::kMacro: return MakeMacro(n, env);
    case NodeType::kBreak: flow_ = Flow::kBreak; return Value::Null();
    case NodeType::kContinue: flow_ = Flow::kContinue; return Value::Null();
    case NodeType::kComment: return Value::Null();
    case NodeType::kInt: return Value::Int(n.i);
    case NodeType::kFloat: return Value::Float(n.f);
    case NodeType::kString: return Value::Str(n.str);
    case NodeType::kArray:
    case NodeType::kTuple: {
      std::vector<Value> items;
      for (const auto& c : n.list) {
        ASSIGN_OR_RETURN(Value v, Eval(*c, env));
        items.push_back(std::move(v));
      }
      return Value::Array(std::move(items), n.type == NodeType::kTuple ? Kind::kTuple : Kind::kArray);
    }
    case NodeType::kObjectLiteral: {
      Value o = Value::MakeObject();
      for (size_t k = 0; k + 1 < n.list.size(); k += 2) {
        ASSIGN_OR_RETURN(Value key, Eval(*n.list[k], env));
        if (key.kind != Kind::kString) return Err(std::string("Object keys must be strings: got ") + key.TypeName());
        ASSIGN_OR_RETURN(Value v, Eval(*n.list[k + 1], env));
        o.obj->Set(key.s, std::move(v));
      }
      return o;
    }
    case NodeType::kIdentifier: return env.Lookup(n.str);
    case NodeType::kCall: {
      std::vector<Value> args;
      std::shared_ptr<Object> kw;
      RETURN_IF_ERROR(Args(n.list, env, &args, &kw));
      if (!kw->entries.empty()) {
        Value kwv = Value::MakeObject(Kind::kKwArgs);
        kwv.obj = kw;
        args.push_back(std::move(kwv));
      }
      ASSIGN_OR_RETURN(Value fn, Eval(*n.a, env));
      if (fn.kind != Kind::kFunction) {
        return Err(std::string("Cannot call something that is not a function: got ") + fn.TypeName());
      }
      return (*fn.fn)(args, env);
    }
    case NodeType::kMember: return Member(n, env);
    case NodeType::kUnary: {
      ASSIGN_OR_RETURN(Value a, Eval(*n.a, env));
      if (n.str == "not") return Value::Bool(!a.Truthy());
      double sign = n.str == "-" ? -1 : 1;
      if (a.kind == Kind::kFloat) return Value::Float(sign * a.f);
      if (a.kind == Kind::kInt) {
        if (sign < 0 && a.i == INT64_MIN) return Err("integer overflow in unary '-'");
        return Value::Int(static_cast<int64_t>(sign) * a.i);
      }
      if (a.kind == Kind::kBool) return Value::Int(static_cast<int64_t>(sign) * (a.b ? 1 : 0));
      return Err("Unknown operator \"" + n.str + "\" for " + a.TypeName());
    }
    case NodeType::kBinary: return Binary(n, env);
    case NodeType::kFilter: {
      ASSIGN_OR_RETURN(Value operand, Eval(*n.a, env));
      return Filter(operand, *n.b, env);
    }
    case NodeType::kTest: {
      ASSIGN_OR_RETURN(Value operand, Eval(*n.a, env));
      ASSIGN_OR_RETURN(bool r, ApplyTest(n.str, operand));
      return Value::Bool(n.flag ? !r : r);
    }
    case NodeType::kSelect: {
      ASSIGN_OR_RETURN(Value t, Eval(*n.b, env));
      if (!t.Truthy()) return Value::Undefined();
      return Eval(*n.a, env);
    }
    case NodeType::kTernary: {
      ASSIGN_OR_RETURN(Value c, Eval(*n.a, env));
      return Eval(c.Truthy() ? *n.b : *n.c, env);
    }
    default: return Err("Unknown node type");
  }
}

}  // namespace

Status CheckSupported(const std::vector<NodePtr>& program) {
  for (const auto& n : program) RETURN_IF_ERROR(CheckNode(n.get()));
  return Status::Ok();
}

Result<std::string> Render(const std::vector<NodePtr>& program,
                           const std::vector<std::pair<std::string, Value>>& globals) {
  Environment root(nullptr);
  AddGlobals(&root);
  for (const auto& [k, v] : globals) root.Set(k, v);
  Interpreter interp;
  ASSIGN_OR_RETURN(std::string out, interp.Block(program, root));
  if (interp.pending_flow()) return Err("break or continue outside a loop");
  return out;
}

}  // namespace crescent::model::jinja
