#include "model/jinja_parser.h"

#include <cstdlib>
#include <initializer_list>

namespace crescent::model::jinja {

namespace {

using T = TokenType;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& t) : t_(t) {}

  Result<std::vector<NodePtr>> Program() {
    std::vector<NodePtr> body;
    while (cur_ < t_.size()) {
      ASSIGN_OR_RETURN(NodePtr n, Any());
      body.push_back(std::move(n));
    }
    return body;
  }

 private:
  Status Fail(const std::string& m) const { return InvalidArgument("chat template: " + m); }

  // Nesting: every recursive rule (a block, an expression in parentheses,
  // not/-/+, a call) and every further link of a left-leaning chain (a + b +
  // ..., a.b.c, x|f|g) counts one level while it is being parsed, so the AST
  // is at most about twice kMaxDepth deep and neither this parser nor the
  // interpreter's recursion can run out of stack on any template.
  static constexpr int kMaxDepth = 128;
  int depth_ = 0;
  class Nest {
   public:
    explicit Nest(int& d, int n = 1) : d_(d), n_(n) { d_ += n; }
    ~Nest() { d_ -= n_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;
    void More() { ++d_, ++n_; }

   private:
    int& d_;
    int n_;
  };
  Status Deep() const {
    return depth_ > kMaxDepth ? Fail("nested deeper than " + std::to_string(kMaxDepth) +
                                     " levels (blocks, parentheses, chains of operators, filters or members)")
                              : Status::Ok();
  }
  bool Is(std::initializer_list<T> types) const {
    size_t k = 0;
    for (T type : types) {
      if (cur_ + k >= t_.size() || t_[cur_ + k].type != type) return false;
      ++k;
    }
    return true;
  }
  bool IsIdent(std::string_view name, size_t off = 0) const {
    return cur_ + off < t_.size() && t_[cur_ + off].type == T::kIdentifier && t_[cur_ + off].value == name;
  }
  bool IsStatement(std::initializer_list<std::string_view> names) const {
    if (!(cur_ + 1 < t_.size() && t_[cur_].type == T::kOpenStatement && t_[cur_ + 1].type == T::kIdentifier)) return false;
    for (auto n : names) {
      if (t_[cur_ + 1].value == n) return true;
    }
    return false;
  }
  Status Expect(T type, const char* what) {
    if (cur_ >= t_.size() || t_[cur_].type != type) {
      return Fail(std::string("Parser Error: ") + what + (cur_ < t_.size() ? " near '" + t_[cur_].value + "'" : " at end"));
    }
    ++cur_;
    return Status::Ok();
  }
  Status ExpectIdent(std::string_view name) {
    if (!IsIdent(name)) return Fail("Expected " + std::string(name));
    ++cur_;
    return Status::Ok();
  }
  static NodePtr Make(NodeType t) { return std::make_unique<Node>(t); }

  Result<NodePtr> Any() {
    Nest nest(depth_);
    RETURN_IF_ERROR(Deep());
    if (cur_ >= t_.size()) return Fail("unexpected end of template");
    const Token& tok = t_[cur_];
    switch (tok.type) {
      case T::kComment: {
        ++cur_;
        NodePtr n = Make(NodeType::kComment);
        n->str = tok.value;
        return n;
      }
      case T::kText: {
        ++cur_;
        NodePtr n = Make(NodeType::kString);
        n->str = tok.value;
        return n;
      }
      case T::kOpenStatement: return Statement();
      case T::kOpenExpression: {
        ++cur_;
        ASSIGN_OR_RETURN(NodePtr e, Expression());
        RETURN_IF_ERROR(Expect(T::kCloseExpression, "Expected closing expression token"));
        return e;
      }
      default: return Fail("Unexpected token '" + tok.value + "'");
    }
  }

  Status Block(std::vector<NodePtr>* out, std::initializer_list<std::string_view> until) {
    while (!IsStatement(until)) {
      if (cur_ >= t_.size()) {
        std::string names;
        for (auto u : until) names += (names.empty() ? "" : "/") + std::string(u);
        return Fail("missing {% " + names + " %}");
      }
      ASSIGN_OR_RETURN(NodePtr n, Any());
      out->push_back(std::move(n));
    }
    return Status::Ok();
  }

  Result<NodePtr> Statement() {
    RETURN_IF_ERROR(Expect(T::kOpenStatement, "Expected opening statement token"));
    if (cur_ >= t_.size() || t_[cur_].type != T::kIdentifier) return Fail("Unknown statement");
    std::string name = t_[cur_].value;
    ++cur_;
    if (name == "set") return Set();
    if (name == "if") {
      ASSIGN_OR_RETURN(NodePtr n, If());
      RETURN_IF_ERROR(Expect(T::kOpenStatement, "Expected {% token"));
      RETURN_IF_ERROR(ExpectIdent("endif"));
      RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected %} token"));
      return n;
    }
    if (name == "for") {
      ASSIGN_OR_RETURN(NodePtr n, For());
      RETURN_IF_ERROR(Expect(T::kOpenStatement, "Expected {% token"));
      RETURN_IF_ERROR(ExpectIdent("endfor"));
      RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected %} token"));
      return n;
    }
    if (name == "macro") {
      ASSIGN_OR_RETURN(NodePtr n, Macro());
      RETURN_IF_ERROR(Expect(T::kOpenStatement, "Expected {% token"));
      RETURN_IF_ERROR(ExpectIdent("endmacro"));
      RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected %} token"));
      return n;
    }
    if (name == "break" || name == "continue") {
      RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
      return Make(name == "break" ? NodeType::kBreak : NodeType::kContinue);
    }
    return Unimplemented("chat template: unsupported statement {% " + name + " %}");
  }

  Result<NodePtr> Set() {
    NodePtr n = Make(NodeType::kSet);
    ASSIGN_OR_RETURN(n->a, ExpressionSequence(false));
    if (Is({T::kEquals})) {
      ++cur_;
      ASSIGN_OR_RETURN(n->b, ExpressionSequence(false));
    } else {
      RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected %} token"));
      RETURN_IF_ERROR(Block(&n->body, {"endset"}));
      RETURN_IF_ERROR(Expect(T::kOpenStatement, "Expected {% token"));
      RETURN_IF_ERROR(ExpectIdent("endset"));
    }
    RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
    return n;
  }

  Result<NodePtr> If() {
    NodePtr n = Make(NodeType::kIf);
    ASSIGN_OR_RETURN(n->a, Expression());
    RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
    RETURN_IF_ERROR(Block(&n->body, {"elif", "else", "endif"}));
    if (IsStatement({"elif"})) {
      cur_ += 2;
      ASSIGN_OR_RETURN(NodePtr e, If());
      n->alt.push_back(std::move(e));
    } else if (IsStatement({"else"})) {
      cur_ += 2;
      RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
      RETURN_IF_ERROR(Block(&n->alt, {"endif"}));
    }
    return n;
  }

  Result<NodePtr> Macro() {
    NodePtr n = Make(NodeType::kMacro);
    ASSIGN_OR_RETURN(NodePtr name, Primary());
    if (name->type != NodeType::kIdentifier) return Fail("Expected identifier following macro statement");
    n->str = name->str;
    ASSIGN_OR_RETURN(n->list, Args(/*parameters=*/true));
    RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
    RETURN_IF_ERROR(Block(&n->body, {"endmacro"}));
    return n;
  }

  Result<NodePtr> For() {
    NodePtr n = Make(NodeType::kFor);
    ASSIGN_OR_RETURN(n->a, ExpressionSequence(true));
    if (n->a->type != NodeType::kIdentifier && n->a->type != NodeType::kTuple) {
      return Fail("Expected identifier/tuple for the loop variable");
    }
    if (!IsIdent("in")) return Fail("Expected `in` keyword following loop variable");
    ++cur_;
    ASSIGN_OR_RETURN(n->b, Expression());
    RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
    RETURN_IF_ERROR(Block(&n->body, {"endfor", "else"}));
    if (IsStatement({"else"})) {
      cur_ += 2;
      RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
      RETURN_IF_ERROR(Block(&n->alt, {"endfor"}));
    }
    return n;
  }

  Result<NodePtr> ExpressionSequence(bool primary) {
    std::vector<NodePtr> items;
    ASSIGN_OR_RETURN(NodePtr first, primary ? Primary() : Expression());
    items.push_back(std::move(first));
    bool tuple = Is({T::kComma});
    while (tuple) {
      ++cur_;
      ASSIGN_OR_RETURN(NodePtr e, primary ? Primary() : Expression());
      items.push_back(std::move(e));
      if (!Is({T::kComma})) break;
    }
    if (!tuple) return std::move(items[0]);
    NodePtr t = Make(NodeType::kTuple);
    t->list = std::move(items);
    return t;
  }

  Result<NodePtr> Expression() {
    Nest nest(depth_);
    RETURN_IF_ERROR(Deep());
    return IfExpression();
  }

  Result<NodePtr> IfExpression() {
    ASSIGN_OR_RETURN(NodePtr a, Or());
    if (IsIdent("if")) {
      ++cur_;
      ASSIGN_OR_RETURN(NodePtr test, Or());
      if (IsIdent("else")) {
        ++cur_;
        ASSIGN_OR_RETURN(NodePtr f, IfExpression());
        NodePtr n = Make(NodeType::kTernary);
        n->a = std::move(test);
        n->b = std::move(a);
        n->c = std::move(f);
        return n;
      }
      NodePtr n = Make(NodeType::kSelect);
      n->a = std::move(a);
      n->b = std::move(test);
      return n;
    }
    return a;
  }

  NodePtr Binary(std::string op, NodePtr l, NodePtr r) {
    NodePtr n = Make(NodeType::kBinary);
    n->str = std::move(op);
    n->a = std::move(l);
    n->b = std::move(r);
    return n;
  }

  Result<NodePtr> Or() {
    ASSIGN_OR_RETURN(NodePtr l, And());
    Nest chain(depth_, 0);
    while (IsIdent("or")) {
      chain.More();
      RETURN_IF_ERROR(Deep());
      ++cur_;
      ASSIGN_OR_RETURN(NodePtr r, And());
      l = Binary("or", std::move(l), std::move(r));
    }
    return l;
  }
  Result<NodePtr> And() {
    ASSIGN_OR_RETURN(NodePtr l, Not());
    Nest chain(depth_, 0);
    while (IsIdent("and")) {
      chain.More();
      RETURN_IF_ERROR(Deep());
      ++cur_;
      ASSIGN_OR_RETURN(NodePtr r, Not());
      l = Binary("and", std::move(l), std::move(r));
    }
    return l;
  }
  Result<NodePtr> Not() {
    if (IsIdent("not")) {
      ++cur_;
      Nest nest(depth_);
      RETURN_IF_ERROR(Deep());
      ASSIGN_OR_RETURN(NodePtr arg, Not());
      NodePtr n = Make(NodeType::kUnary);
      n->str = "not";
      n->a = std::move(arg);
      return n;
    }
    return Comparison();
  }
  Result<NodePtr> Comparison() {
    ASSIGN_OR_RETURN(NodePtr l, Additive());
    Nest chain(depth_, 0);
    while (true) {
      chain.More();
      RETURN_IF_ERROR(Deep());
      std::string op;
      if (IsIdent("not") && IsIdent("in", 1)) {
        op = "not in";
        cur_ += 2;
      } else if (IsIdent("in")) {
        op = "in";
        ++cur_;
      } else if (Is({T::kComparison})) {
        op = t_[cur_++].value;
      } else {
        break;
      }
      ASSIGN_OR_RETURN(NodePtr r, Additive());
      l = Binary(op, std::move(l), std::move(r));
    }
    return l;
  }
  Result<NodePtr> Additive() {
    ASSIGN_OR_RETURN(NodePtr l, Multiplicative());
    Nest chain(depth_, 0);
    while (Is({T::kAdditive})) {
      chain.More();
      RETURN_IF_ERROR(Deep());
      std::string op = t_[cur_++].value;
      ASSIGN_OR_RETURN(NodePtr r, Multiplicative());
      l = Binary(op, std::move(l), std::move(r));
    }
    return l;
  }
  Result<NodePtr> Multiplicative() {
    ASSIGN_OR_RETURN(NodePtr l, Power());
    Nest chain(depth_, 0);
    while (Is({T::kMultiplicative})) {
      chain.More();
      RETURN_IF_ERROR(Deep());
      std::string op = t_[cur_++].value;
      ASSIGN_OR_RETURN(NodePtr r, Power());
      l = Binary(op, std::move(l), std::move(r));
    }
    return l;
  }
  Result<NodePtr> Power() {
    ASSIGN_OR_RETURN(NodePtr l, Test());
    Nest chain(depth_, 0);
    while (Is({T::kExponentiation})) {
      chain.More();
      RETURN_IF_ERROR(Deep());
      std::string op = t_[cur_++].value;
      ASSIGN_OR_RETURN(NodePtr r, Test());
      l = Binary(op, std::move(l), std::move(r));
    }
    return l;
  }
  Result<NodePtr> Test() {
    ASSIGN_OR_RETURN(NodePtr operand, Filter());
    Nest chain(depth_, 0);
    while (IsIdent("is")) {
      chain.More();
      RETURN_IF_ERROR(Deep());
      ++cur_;
      bool negate = IsIdent("not");
      if (negate) ++cur_;
      ASSIGN_OR_RETURN(NodePtr test, Primary());
      if (test->type != NodeType::kIdentifier) return Fail("Expected identifier for the test");
      NodePtr n = Make(NodeType::kTest);
      n->a = std::move(operand);
      n->str = test->str;
      n->flag = negate;
      operand = std::move(n);
    }
    return operand;
  }
  Result<NodePtr> Filter() {
    ASSIGN_OR_RETURN(NodePtr operand, UnarySign());
    Nest chain(depth_, 0);
    while (Is({T::kPipe})) {
      chain.More();
      RETURN_IF_ERROR(Deep());
      ++cur_;
      ASSIGN_OR_RETURN(NodePtr filter, Primary());
      if (filter->type != NodeType::kIdentifier) return Fail("Expected identifier for the filter");
      if (Is({T::kOpenParen})) {
        ASSIGN_OR_RETURN(filter, Call(std::move(filter)));
      }
      NodePtr n = Make(NodeType::kFilter);
      n->a = std::move(operand);
      n->b = std::move(filter);
      operand = std::move(n);
    }
    return operand;
  }
  Result<NodePtr> UnarySign() {
    if (cur_ < t_.size() && (t_[cur_].type == T::kUnary || t_[cur_].type == T::kAdditive) &&
        (t_[cur_].value == "-" || t_[cur_].value == "+")) {
      std::string op = t_[cur_++].value;
      Nest nest(depth_);
      RETURN_IF_ERROR(Deep());
      ASSIGN_OR_RETURN(NodePtr arg, UnarySign());
      NodePtr n = Make(NodeType::kUnary);
      n->str = op;
      n->a = std::move(arg);
      return n;
    }
    return CallMember();
  }
  Result<NodePtr> CallMember() {
    ASSIGN_OR_RETURN(NodePtr p, Primary());
    ASSIGN_OR_RETURN(NodePtr m, Member(std::move(p)));
    if (Is({T::kOpenParen})) return Call(std::move(m));
    return m;
  }
  Result<NodePtr> Call(NodePtr callee) {
    Nest nest(depth_);
    RETURN_IF_ERROR(Deep());
    NodePtr n = Make(NodeType::kCall);
    n->a = std::move(callee);
    ASSIGN_OR_RETURN(n->list, Args(false));
    ASSIGN_OR_RETURN(n, Member(std::move(n)));
    if (Is({T::kOpenParen})) return Call(std::move(n));
    return n;
  }
  Result<std::vector<NodePtr>> Args(bool parameters) {
    RETURN_IF_ERROR(Expect(T::kOpenParen, "Expected opening parenthesis for arguments list"));
    std::vector<NodePtr> args;
    bool saw_keyword = false;
    while (!Is({T::kCloseParen})) {
      if (cur_ >= t_.size()) return Fail("Expected closing parenthesis for arguments list");
      bool kw_spread = Is({T::kExponentiation});
      bool spread = Is({T::kMultiplicative}) && t_[cur_].value == "*";
      if (parameters && (kw_spread || spread)) return Fail("Argument unpacking is not allowed in parameter declarations");
      if (kw_spread || spread) {
        ++cur_;
        NodePtr n = Make(kw_spread ? NodeType::kKwSpread : NodeType::kSpread);
        ASSIGN_OR_RETURN(n->a, Expression());
        args.push_back(std::move(n));
        if (Is({T::kComma})) ++cur_;
        continue;
      }
      ASSIGN_OR_RETURN(NodePtr arg, Expression());
      if (Is({T::kEquals})) {
        ++cur_;
        if (arg->type != NodeType::kIdentifier) return Fail("Expected identifier for keyword argument");
        NodePtr kw = Make(NodeType::kKwArg);
        kw->str = arg->str;
        ASSIGN_OR_RETURN(kw->a, Expression());
        arg = std::move(kw);
      }
      if (parameters && arg->type != NodeType::kIdentifier && arg->type != NodeType::kKwArg) {
        return Fail("Expected identifier for parameter declaration");
      }
      if (arg->type == NodeType::kKwArg) {
        saw_keyword = true;
      } else if (saw_keyword) {
        return Fail(parameters ? "Non-default argument follows default argument"
                               : "Positional arguments must come before keyword arguments");
      }
      args.push_back(std::move(arg));
      if (Is({T::kComma})) ++cur_;
    }
    ++cur_;
    return args;
  }
  Result<NodePtr> MemberArgs() {
    std::vector<NodePtr> slices;
    bool is_slice = false;
    while (!Is({T::kCloseSquareBracket})) {
      if (cur_ >= t_.size()) return Fail("Expected closing square bracket");
      if (Is({T::kColon})) {
        slices.push_back(nullptr);
        ++cur_;
        is_slice = true;
      } else {
        ASSIGN_OR_RETURN(NodePtr e, Expression());
        slices.push_back(std::move(e));
        if (Is({T::kColon})) {
          ++cur_;
          is_slice = true;
        }
      }
    }
    if (slices.empty()) return Fail("Expected at least one argument for member/slice expression");
    if (!is_slice) return std::move(slices[0]);
    if (slices.size() > 3) return Fail("Expected 0-3 arguments for slice expression");
    NodePtr n = Make(NodeType::kSlice);
    if (slices.size() > 0) n->a = std::move(slices[0]);
    if (slices.size() > 1) n->b = std::move(slices[1]);
    if (slices.size() > 2) n->c = std::move(slices[2]);
    return n;
  }
  Result<NodePtr> Member(NodePtr object) {
    Nest chain(depth_, 0);
    while (Is({T::kDot}) || Is({T::kOpenSquareBracket})) {
      chain.More();
      RETURN_IF_ERROR(Deep());
      bool computed = t_[cur_].type == T::kOpenSquareBracket;
      ++cur_;
      NodePtr prop;
      if (computed) {
        ASSIGN_OR_RETURN(prop, MemberArgs());
        RETURN_IF_ERROR(Expect(T::kCloseSquareBracket, "Expected closing square bracket"));
      } else {
        ASSIGN_OR_RETURN(prop, Primary());
        if (prop->type != NodeType::kIdentifier && prop->type != NodeType::kInt) {
          return Fail("Expected identifier or integer following dot operator");
        }
      }
      NodePtr n = Make(NodeType::kMember);
      n->a = std::move(object);
      n->b = std::move(prop);
      n->flag = computed;
      object = std::move(n);
    }
    return object;
  }
  Result<NodePtr> Primary() {
    if (cur_ >= t_.size()) return Fail("Unexpected end of template");
    const Token& tok = t_[cur_++];
    switch (tok.type) {
      case T::kNumericLiteral: {
        if (tok.value.find('.') != std::string::npos) {
          NodePtr n = Make(NodeType::kFloat);
          n->f = std::strtod(tok.value.c_str(), nullptr);
          return n;
        }
        NodePtr n = Make(NodeType::kInt);
        n->i = std::strtoll(tok.value.c_str(), nullptr, 10);
        return n;
      }
      case T::kStringLiteral: {
        NodePtr n = Make(NodeType::kString);
        n->str = tok.value;
        while (Is({T::kStringLiteral})) n->str += t_[cur_++].value;
        return n;
      }
      case T::kIdentifier: {
        NodePtr n = Make(NodeType::kIdentifier);
        n->str = tok.value;
        return n;
      }
      case T::kOpenParen: {
        ASSIGN_OR_RETURN(NodePtr e, ExpressionSequence(false));
        RETURN_IF_ERROR(Expect(T::kCloseParen, "Expected closing parenthesis"));
        return e;
      }
      case T::kOpenSquareBracket: {
        NodePtr n = Make(NodeType::kArray);
        while (!Is({T::kCloseSquareBracket})) {
          if (cur_ >= t_.size()) return Fail("Expected closing square bracket");
          ASSIGN_OR_RETURN(NodePtr e, Expression());
          n->list.push_back(std::move(e));
          if (Is({T::kComma})) ++cur_;
        }
        ++cur_;
        return n;
      }
      case T::kOpenCurlyBracket: {
        NodePtr n = Make(NodeType::kObjectLiteral);
        while (!Is({T::kCloseCurlyBracket})) {
          if (cur_ >= t_.size()) return Fail("Expected closing curly bracket");
          ASSIGN_OR_RETURN(NodePtr k, Expression());
          RETURN_IF_ERROR(Expect(T::kColon, "Expected colon between key and value in object literal"));
          ASSIGN_OR_RETURN(NodePtr v, Expression());
          n->list.push_back(std::move(k));
          n->list.push_back(std::move(v));
          if (Is({T::kComma})) ++cur_;
        }
        ++cur_;
        return n;
      }
      default: return Fail("Unexpected token '" + tok.value + "'");
    }
  }

  const std::vector<Token>& t_;
  size_t cur_ = 0;
};

}  // namespace

Result<std::vector<NodePtr>> Parse(const std::vector<Token>& tokens) { return Parser(tokens).Program(); }

}  // namespace crescent::model::jinja
