// BpeModel: byte-pair encoding of one pre-tokenized word into token ids.
//
// Two flavours share the merge loop:
//   byte-level (GPT-2 / Llama 3 / Qwen / DeepSeek): a word's initial symbols are its
//     raw bytes; vocabulary and merges, stored in tokenizer.json through GPT-2's
//     byte-to-unicode alphabet, are translated back to raw bytes at load, so no
//     per-call remapping happens;
//   SentencePiece-style (Llama 2 / Mistral / Gemma): initial symbols are code points;
//     a final symbol missing from the vocabulary becomes its <0xXX> byte tokens
//     (byte_fallback) or the unknown token.
// Merges are applied lowest rank first, leftmost first among equal ranks (the
// reference's order), through a heap over adjacent pairs: O(n log n) for the long
// whole-line words of the SentencePiece models.
//
//   symbols:  [h][e][l][l][o]   pair ranks in a hash map (left<<32|right) -> (rank, merged)
//   heap:     (rank, left index) ; stale entries are skipped when popped
//
// Thread-safety: immutable after Build; EncodeWord may run on many threads (its
// scratch buffers are thread_local).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"

namespace crescent::model {

struct BpeOptions {
  bool byte_level = false;     // symbols are raw bytes (strings below are byte-level encoded)
  bool byte_fallback = false;  // unknown symbols -> <0xXX> tokens
  bool ignore_merges = false;  // a word that is itself in the vocabulary is emitted as is
  int32_t unk_id = -1;         // -1: none
};

class BpeModel {
 public:
  // `vocab` maps token text (as in tokenizer.json) to id; `merges` lists pairs in
  // rank order.
  static Result<BpeModel> Build(const std::vector<std::pair<std::string, int32_t>>& vocab,
                                const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options);

  // Appends the ids of `word` (raw bytes when byte-level) to *out.
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;

  // The id of a word (raw bytes when byte-level), or -1.
  int32_t Lookup(std::string_view word) const;
  const BpeOptions& options() const { return options_; }

 private:
  // Open-addressing map (left<<32|right) -> (rank<<32|merged): one probe, usually
  // one cache miss, per pair lookup.
  class PairMap {
   public:
    void Reserve(size_t n);
    // Keeps the first value inserted for a key.
    void Insert(uint64_t key, uint64_t value);
    bool Find(uint64_t key, uint64_t* value) const;

   private:
    static constexpr uint64_t kEmpty = ~0ull;
    static size_t Hash(uint64_t k) { return static_cast<size_t>((k ^ (k >> 29)) * 0x9E3779B97F4A7C15ull >> 17); }
    std::vector<std::pair<uint64_t, uint64_t>> slots_;
    size_t mask_ = 0;
  };
  struct StrHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  int32_t SymbolOf(std::string_view text) const;
  void EmitSymbol(int32_t sym, std::string_view text, std::vector<int32_t>* out) const;

  BpeOptions options_;
  // Symbols: every vocabulary entry, plus merge parts/results missing from the
  // vocabulary (they get ids past the vocabulary and vocab_id -1).
  std::unordered_map<std::string, int32_t, StrHash, std::equal_to<>> symbol_of_;
  std::vector<int32_t> vocab_id_;       // [symbol] -> token id or -1
  std::vector<std::string> extra_text_;  // [symbol - first_extra_] -> text
  int32_t first_extra_ = 0;
  // (left symbol << 32 | right symbol) -> (rank << 32 | merged symbol)
  PairMap merges_;
  // SentencePiece-style: code point -> symbol for single-character symbols below
  // kDirectCodePoints (one array read instead of a string hash per character).
  static constexpr char32_t kDirectCodePoints = 0x30000;
  std::vector<int32_t> cp_symbol_;
  int32_t byte_symbol_[256];    // byte-level: raw byte -> symbol
  int32_t byte_fallback_[256];  // <0xXX> token ids, -1 when absent
};

// GPT-2's byte <-> unicode alphabet: the code point that stands for each byte.
char32_t ByteToUnicode(uint8_t b);
// Decodes a byte-level string into raw bytes; false if a character is outside the
// alphabet.
bool ByteLevelToBytes(std::string_view text, std::string* bytes);

}  // namespace crescent::model
