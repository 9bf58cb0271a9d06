#include "model/tokenizer_added_tokens.h"

namespace crescent::model {

AddedTokenSplitter::AddedTokenSplitter(const std::vector<AddedToken>& tokens) {
  terminal_.push_back(-1);  // root
  for (size_t t = 0; t < tokens.size(); ++t) {
    const std::string& s = tokens[t].content;
    if (s.empty()) continue;
    first_byte_[static_cast<unsigned char>(s[0])] = true;
    int32_t node = 0;
    for (unsigned char c : s) {
      uint64_t key = (static_cast<uint64_t>(node) << 8) | c;
      auto it = edges_.find(key);
      if (it == edges_.end()) {
        int32_t n = static_cast<int32_t>(terminal_.size());
        terminal_.push_back(-1);
        edges_.emplace(key, n);
        node = n;
      } else {
        node = it->second;
      }
    }
    // A later duplicate of the same content wins, as the reference's trie does.
    terminal_[static_cast<size_t>(node)] = static_cast<int32_t>(t);
  }
}

void AddedTokenSplitter::Split(std::string_view text, std::vector<Section>* out) const {
  out->clear();
  size_t start = 0, i = 0, n = text.size();
  while (i < n) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    int32_t node = 0, match = -1;
    size_t match_len = 0;
    for (size_t j = i; j < n; ++j) {
      auto it = edges_.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(text[j]));
      if (it == edges_.end()) break;
      node = it->second;
      if (terminal_[static_cast<size_t>(node)] >= 0) {
        match = terminal_[static_cast<size_t>(node)];
        match_len = j + 1 - i;
      }
    }
    if (match < 0) {
      ++i;
      continue;
    }
    if (i > start) out->push_back({text.substr(start, i - start), -1});
    out->push_back({text.substr(i, match_len), match});
    i += match_len;
    start = i;
  }
  if (start < n) out->push_back({text.substr(start), -1});
}

}  // namespace crescent::model
