// Token masks for structured output: which tokens of the vocabulary may come
// next in a JsonGrammar state.
//
// TokenTable holds each token's text as it appears inside a sequence (the
// tokenizer's decoding of an ordinary anchor token followed by it, less the
// anchor's), sorted bytewise, with each entry's common prefix with the one
// before. Special tokens, empty ones and those that are not whole UTF-8
// characters (a piece of a character decodes to U+FFFD) are never allowed: a
// constrained output is made of whole characters.
// A mask walks the sorted table as a trie (a prefix the grammar refuses skips
// every token that shares it), so its cost follows what the grammar admits,
// not the vocabulary. Masks are cached per grammar and state (a state
// repeats: inside a string, between an object's members), at most
// kMaxCachedStates per grammar and kMaxCachedBytes in the process (past
// either, that grammar's cache starts again).
// The budget: with `budget` tokens left (this one included), a token is
// allowed only if the value can still be completed in budget - 1 more
// (MinBytesToComplete; every byte is a token in the tokenizers we load),
// so a generation that runs into max_tokens still ends in a complete value.
// Thread-safety: TokenTable is immutable; MaskFor locks the grammar's cache.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/json_grammar.h"
#include "base/thread_annotations.h"

namespace crescent::model {
class Tokenizer;
}

namespace crescent::engine {

class TokenTable {
 public:
  // `vocab`: the model's logits width (ids past the tokenizer's are never allowed).
  static std::unique_ptr<TokenTable> Build(const model::Tokenizer& tokenizer, int64_t vocab);
  // From texts directly (tests): texts[id]; "" is never allowed.
  static std::unique_ptr<TokenTable> FromTexts(const std::vector<std::string>& texts);

  TokenTable();
  int64_t vocab() const { return vocab_; }
  uint64_t id() const { return table_id_; }  // unique in the process (a cache's key, never an address)
  size_t size() const { return ids_.size(); }  // tokens that may ever be allowed
  const std::string& text(size_t i) const { return texts_[i]; }  // in sorted order
  int32_t id(size_t i) const { return ids_[i]; }
  int32_t lcp(size_t i) const { return lcp_[i]; }  // with entry i - 1 (0 for the first)
  size_t max_length() const { return max_len_; }
  // Whether some allowed token holds the character (a code point).
  bool Writes(uint32_t code_point) const { return chars_.contains(code_point); }
  // The text of token `id`, or null when it is never allowed.
  const std::string* TextOf(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= index_.size() || index_[id] < 0) return nullptr;
    return &texts_[static_cast<size_t>(index_[id])];
  }

 private:
  void Sort(std::vector<std::pair<std::string, int32_t>> entries);
  int64_t vocab_ = 0;
  uint64_t table_id_ = 0;
  std::vector<std::string> texts_;
  std::vector<int32_t> ids_, lcp_;
  std::vector<int32_t> index_;  // id -> entry (-1: never allowed)
  std::unordered_set<uint32_t> chars_;  // the code points the allowed tokens hold
  size_t max_len_ = 0;
};

struct GrammarMask {
  std::vector<uint64_t> bits;  // over [0, vocab): bit t set = token t allowed
  int64_t allowed = 0;         // tokens set
  int64_t max_after = 0;       // the largest MinBytesToComplete after an allowed token
  bool end_allowed = false;    // the value is complete here: the model's EOS may end it
  bool test(int32_t t) const { return (bits[static_cast<size_t>(t) >> 6] >> (t & 63)) & 1; }
};

struct JsonGrammar::MaskCache {
  static constexpr size_t kMaxCachedStates = 4096;
  static constexpr int64_t kMaxCachedBytes = int64_t{256} << 20;  // all grammars together
  ~MaskCache();
  void Clear();  // mu held
  Mutex mu;
  uint64_t table = 0;  // TokenTable::id() of the masks below
  std::unordered_map<std::string, std::shared_ptr<const GrammarMask>> masks;
  int64_t bytes = 0;  // of the masks held
  int64_t hits = 0, misses = 0;
};

// InvalidArgument naming the first enum value or property name with a
// character no allowed token writes (a vocabulary that has it only as byte
// pieces): such a value could never be produced.
Status CheckWritable(const JsonGrammar& grammar, const TokenTable& table);

// The tokens allowed after `state`; budget < 0: no limit.
std::shared_ptr<const GrammarMask> MaskFor(const JsonGrammar& grammar, const TokenTable& table, const JsonState& state,
                                           int64_t budget);
// The same, never cached (benchmarks).
std::shared_ptr<const GrammarMask> ComputeMask(const JsonGrammar& grammar, const TokenTable& table,
                                               const JsonState& state, int64_t budget);

}  // namespace crescent::engine
