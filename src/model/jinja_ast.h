// The Jinja syntax tree and tokens shared by the lexer, parser and interpreter
// (jinja_lexer.h, jinja_parser.h, jinja_interpreter.h). Node shapes follow
// @huggingface/jinja's AST so the interpreter can mirror its evaluation rules.
// Ownership: a Node owns its children. Immutable after parsing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace crescent::model::jinja {

enum class TokenType {
  kText, kNumericLiteral, kStringLiteral, kIdentifier, kEquals, kOpenParen, kCloseParen, kOpenStatement,
  kCloseStatement, kOpenExpression, kCloseExpression, kOpenSquareBracket, kCloseSquareBracket, kOpenCurlyBracket,
  kCloseCurlyBracket, kComma, kDot, kColon, kPipe, kAdditive, kMultiplicative, kExponentiation, kComparison,
  kUnary, kComment,
};

struct Token {
  TokenType type;
  std::string value;
};

enum class NodeType {
  // statements
  kIf, kFor, kSet, kMacro, kBreak, kContinue, kComment,
  // expressions
  kInt, kFloat, kString, kArray, kTuple, kObjectLiteral, kIdentifier, kMember, kCall, kUnary, kBinary, kFilter,
  kTest, kSelect, kTernary, kSlice, kKwArg, kSpread, kKwSpread,
};

// Field use by type:
//   kIf: a=test, body, alt          kFor: a=loopvar, b=iterable, body, alt (else)
//   kSet: a=assignee, b=value|null, body      kMacro: str=name, list=params, body
//   kMember: a=object, b=property, flag=computed      kCall: a=callee, list=args
//   kUnary: str=op, a     kBinary: str=op, a, b     kFilter: a=operand, b=filter (kIdentifier|kCall)
//   kTest: a=operand, str=test, flag=negate      kSelect: a=value, b=test
//   kTernary: a=cond, b=if true, c=if false      kSlice: a,b,c = start,stop,step (each may be null)
//   kKwArg: str=key, a=value    kSpread/kKwSpread: a     kArray/kTuple: list
//   kObjectLiteral: list = key0, value0, key1, value1, ...
//   kInt: i   kFloat: f   kString/kIdentifier/kComment: str
struct Node {
  NodeType type;
  std::string str;
  int64_t i = 0;
  double f = 0;
  bool flag = false;
  std::unique_ptr<Node> a, b, c;
  std::vector<std::unique_ptr<Node>> list, body, alt;
  explicit Node(NodeType t) : type(t) {}
};

using NodePtr = std::unique_ptr<Node>;

}  // namespace crescent::model::jinja
