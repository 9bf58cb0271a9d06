// Structured output's requests: OpenAI's response_format compiled into an
// engine::JsonGrammar (json_grammar.h says what the grammar accepts).
//
//   {"type": "text"}                      no constraint
//   {"type": "json_object"}               any JSON object
//   {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}, "strict": ...}}
//
// The JSON Schema subset: type (object, array, string, number, integer,
// boolean, null, or a list of them), properties, required,
// additionalProperties (false, true or a schema; with declared properties
// only those are produced), items, minItems, maxItems, minLength, maxLength,
// minimum, maximum, exclusiveMinimum, exclusiveMaximum, enum, const, anyOf,
// oneOf (as anyOf: the branches real clients send are disjoint), allOf of one
// schema, $ref into #/$defs, #/definitions or # (recursion allowed), and the
// annotations (title, description, default, examples, ...), which change
// nothing. A keyword that constrains values in a way the grammar cannot
// honour (pattern, format, multipleOf, uniqueItems, prefixItems, not,
// if/then/else, min/maxProperties, ...) or an unknown type is an error naming
// it and where it is: the server answers 400, never a silently looser output.
// Compiled grammars are cached by their text (the same schema shares its
// token masks across requests). Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace boost::json {
class value;
}

namespace crescent::engine {
class JsonGrammar;
}

namespace crescent::server {

struct ResponseFormat {
  std::shared_ptr<const engine::JsonGrammar> grammar;  // null: plain text
  std::string spec;  // the response_format as JSON text: what a prefill/decode split carries
};

// `v` is the request's response_format value.
Result<ResponseFormat> CompileResponseFormat(const boost::json::value& v);
// From ResponseFormat::spec (a prefill or decode instance).
Result<ResponseFormat> CompileResponseFormatSpec(std::string_view spec);

}  // namespace crescent::server
