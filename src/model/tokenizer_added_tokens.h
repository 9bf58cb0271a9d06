// AddedTokenSplitter: finds added/special tokens in raw text before any
// normalization, leftmost-longest, the way the reference's DictionarySplitter does,
// so "<|im_start|>" or "<s>" in the input become their ids and the text between them
// goes through the normal pipeline.
// Thread-safety: immutable after construction.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace crescent::model {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
  bool single_word = false;
};

class AddedTokenSplitter {
 public:
  AddedTokenSplitter() = default;
  explicit AddedTokenSplitter(const std::vector<AddedToken>& tokens);

  // One section of the input: plain text, or the index of the added token matched.
  struct Section {
    std::string_view text;
    int32_t token = -1;  // index into the token list, -1 for plain text
  };
  void Split(std::string_view text, std::vector<Section>* out) const;

 private:
  // Byte trie: node -> children keyed (node << 8 | byte).
  std::unordered_map<uint64_t, int32_t> edges_;
  std::vector<int32_t> terminal_;  // [node] -> token index or -1
  bool first_byte_[256] = {};
};

}  // namespace crescent::model
