// Jinja lexer: template text -> tokens, exactly as @huggingface/jinja tokenizes
// (with lstrip_blocks and trim_blocks on, as transformers.js renders chat
// templates): "{%-"/"-%}" whitespace control, comments, string escapes, and the
// rule that "-1" after an operator is a negative literal.
// Thread-safety: a pure function.
#pragma once

#include <string_view>
#include <vector>

#include "base/status.h"
#include "model/jinja_ast.h"

namespace crescent::model::jinja {

// The reference's preprocess(): drop one trailing newline, lstrip_blocks,
// trim_blocks, and remove {% generation %} markers.
std::string Preprocess(std::string_view source);
Result<std::vector<Token>> Tokenize(std::string_view source);

}  // namespace crescent::model::jinja
