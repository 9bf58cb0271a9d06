// The merges of a tokenizer.json BPE model, in either form Hugging Face
// writes them ("left right" strings, or [left, right] pairs), read the one way
// the tokenizer, the GGUF writer and its SentencePiece half all need.
// Thread-safety: a function of its argument.
#pragma once

#include <boost/json/value.hpp>

#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace crescent::model {

// InvalidArgument for a string without a space or an entry of another shape;
// a string's right side ends at its second space, as the reference reads it.
Result<std::vector<std::pair<std::string, std::string>>> ParseMerges(const boost::json::array& merges);

}  // namespace crescent::model
