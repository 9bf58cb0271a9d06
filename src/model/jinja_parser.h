// Jinja parser: tokens -> syntax tree, mirroring @huggingface/jinja's grammar and
// operator precedence (ternary < or < and < not < comparison/in < + - ~ < * / // %
// < ** < is-test < | filter < unary sign < call/member). Supported statements:
// if/elif/else, for (with else, loop variables, tuple unpacking, inline if
// filtering), set (expression and block forms, namespace attributes), macro,
// break, continue, comments. Anything else ({% include %}, {% call %},
// {% filter %}, ...) is an error naming the construct.
// Thread-safety: a pure function.
#pragma once

#include <vector>

#include "base/status.h"
#include "model/jinja_ast.h"

namespace crescent::model::jinja {

// The program: a list of statements (text is a kString node).
Result<std::vector<NodePtr>> Parse(const std::vector<Token>& tokens);

}  // namespace crescent::model::jinja
