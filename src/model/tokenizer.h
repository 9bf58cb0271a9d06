// Tokenizer: text <-> token ids for a Hugging Face model folder, matching the
// reference implementation (transformers.js, which the tests run) id for id.
//
// Built from tokenizer.json (+ tokenizer_config.json for bos/eos, extra special
// tokens, cleanup and the chat template). Supported: BPE models, byte-level
// (Llama 3, Qwen2/3, DeepSeek-V3, GPT-2) and SentencePiece-style with byte fallback
// (Llama 2, Mistral, Gemma 3). The pipeline per Encode:
//
//   text ─ added-token split (leftmost-longest, lstrip/rstrip) ─┬─ token ─────────> id
//                                                              └─ section ─ normalizer
//        ─ pre-tokenizer (PCRE2 JIT) ─ BPE per word (cached) ─ ids ─ post-processor (BOS)
//
// Anything in tokenizer.json the pipeline cannot honour (an unknown model,
// normalizer, pre-tokenizer, decoder or post-processor type) is an error from
// FromDirectory/FromJson naming it; a tokenizer that loads tokenizes exactly.
//
// Ownership: move-only (Copy() is not offered; share a const Tokenizer instead).
// Thread-safety: all const methods may be called from many threads at once. The
// word cache is taken with try_lock; a thread that finds it busy encodes uncached.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace crescent::model {

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json; for a
  // GGUF model (model/gguf_model.h) the tokenizer in its metadata.
  static Result<Tokenizer> FromDirectory(const std::string& dir);
  // `config_json` may be empty (no tokenizer_config.json).
  static Result<Tokenizer> FromJson(std::string_view tokenizer_json, std::string_view config_json);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of `text` (invalid UTF-8 is first replaced by U+FFFD). Added and
  // special tokens written in the text become their ids. With add_special_tokens,
  // the post-processor's tokens (e.g. Llama 2's <s>) are added.
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens = true) const;

  // Text of `ids`; ids outside the vocabulary are skipped. With
  // skip_special_tokens, special tokens (e.g. <|eot_id|>) are dropped. Invalid
  // UTF-8 produced by byte tokens decodes to U+FFFD, as in the reference.
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // -1 when the model has no such token.
  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t pad_id() const;
  const std::string& bos_token() const;  // "" when none
  const std::string& eos_token() const;
  // One past the largest id (vocabulary plus added tokens).
  int32_t vocab_size() const;
  bool IsSpecial(int32_t id) const;
  // -1 when unknown.
  int32_t TokenToId(std::string_view token) const;
  // The token's text as tokenizer.json spells it; "" for an unknown id.
  const std::string& IdToToken(int32_t id) const;
  // tokenizer_config.json's chat_template ("" when absent).
  const std::string& chat_template() const;
  // Whether Decode applies the reference's clean_up_tokenization (" ." -> ".").
  bool cleans_up_spaces() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace crescent::model
