// PreTokenizer: splits a normalized text section into the words BPE runs on,
// following tokenizer.json's "pre_tokenizer" as the reference (transformers.js)
// interprets it. Supported: Sequence, Split (String or Regex pattern; invert;
// "Removed" drops delimiters, every other behavior isolates them, as the reference
// does), ByteLevel (optional GPT-2 regex and prefix space; the byte-to-unicode
// mapping itself is folded into the BPE model, which works on raw bytes), Metaspace.
// Unknown types are refused at load time.
//
// Pieces are string_views into either the caller's text or PieceList::owned, so
// splitting a section allocates nothing but the piece vectors.
// Thread-safety: immutable after construction; Apply may run on many threads.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace boost::json {
class value;
}

namespace crescent::model {

struct PieceList {
  std::vector<std::string_view> pieces;
  std::vector<std::string_view> scratch;
  std::deque<std::string> owned;  // text created by a step (Metaspace, prefix space)
  void Clear() {
    pieces.clear();
    scratch.clear();
    owned.clear();
  }
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces list->pieces by their parts. `section_index` is the section's index
  // among the added-token split (Metaspace's prepend_scheme "first" needs it).
  virtual void Apply(PieceList* list, int section_index) const = 0;
  // True when the pipeline ends in ByteLevel: BPE then works on raw bytes.
  virtual bool byte_level() const { return false; }
};

Result<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const boost::json::value& config);

// The Metaspace pre-tokenizer the reference substitutes for LlamaTokenizer with
// legacy=false.
std::unique_ptr<PreTokenizer> MakeMetaspacePreTokenizer(std::string replacement, bool add_prefix_space,
                                                        std::string prepend_scheme);

}  // namespace crescent::model
