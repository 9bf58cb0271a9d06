// IncrementalDetokenizer: turns a stream of generated token ids into text deltas
// for streaming (SSE). Concatenating every delta of Push and Finish gives exactly
// Tokenizer::Decode of all ids, and no delta ends inside a UTF-8 character:
//
//   - a trailing U+FFFD (bytes of a character still arriving, e.g. byte-fallback
//     <0xE4><0xB8> before <0xAD>) is held back until the character completes;
//   - with the reference's clean_up_tokenization (Llama 3), a space within the last
//     three bytes is held back, since " ." or " n't" may still rewrite it.
//
// Cost: each Push decodes only the ids since the last point where everything was
// emitted (vLLM's prefix/read offsets), diffing against the decode of the already
// emitted window, so a stream costs O(total tokens x window).
//
//   ids:  [ ... emitted ... | prefix_ .. read_ ) [ read_ .. end )
//                            decode(prefix_, read_) = base text, already emitted
//
// Ownership: holds a pointer to the Tokenizer, which must outlive it.
// Thread-safety: one stream, one thread; distinct instances are independent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace crescent::model {

class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer* tokenizer, bool skip_special_tokens = false);

  // Adds one generated id; returns the text now safe to show (often "").
  std::string Push(int32_t id);
  // Ends the stream: returns whatever was held back.
  std::string Finish();
  const std::vector<int32_t>& ids() const { return ids_; }

 private:
  // Bytes of `text` safe to emit now.
  size_t SafeLength(const std::string& text) const;
  std::string DecodeRange(size_t begin, size_t end) const;

  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_ = 0, read_ = 0;  // window start; end of the fully emitted part
  std::string base_;              // DecodeRange(prefix_, read_)
  size_t emitted_past_base_ = 0;  // bytes after base_ emitted while the window grew
  std::string emitted_;           // everything emitted (used to resync; see .cc)
};

}  // namespace crescent::model
