// What the GGUF tokenizer reader and writer share between the byte-level BPE
// half (gguf_tokenizer.cc) and the SentencePiece half (gguf_tokenizer_spm.cc):
// llama.cpp's token types, the post-processor that adds bos (and eos), and the
// special-token names of a tokenizer_config.json. Internal to model/.
// Thread-safety: functions of their arguments.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <string>
#include <vector>

#include "base/status.h"
#include "model/gguf.h"
#include "model/gguf_tokenizer.h"
#include "model/gguf_writer.h"

namespace crescent::model::gguf_tok {

// tokenizer.ggml.token_type values, as llama.cpp writes them.
enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// Hugging Face's TemplateProcessing for "bos? A eos?" (and its pair form);
// a ByteLevel-free no-op template when neither is added.
boost::json::object AddSpecialTokensTemplate(const std::string* bos, int64_t bos_id, const std::string* eos,
                                             int64_t eos_id);

// The token text of a tokenizer_config.json entry ("<s>" or {"content": "<s>"}); "" for none.
std::string ConfigToken(const boost::json::object& cfg, const char* key);

// Writes tokenizer.ggml.{bos,eos,padding,unknown}_token_id for the config's
// bos/eos/pad/unk tokens found among `tokens` (the first id of a repeated
// text); returns bos and eos in `out`.
void AddSpecialTokenIds(const boost::json::object& cfg, const std::vector<std::string>& tokens, GgufWriter& w,
                        TokenizerIds* out);

// A tokenizer.json's vocab and added tokens by id (an id missing between
// them becomes an unused "[PADn]"); added tokens are kControl when special,
// else kUserDefined. Throws (caught by AddTokenizerToGguf) on the wrong shape.
struct TokenTable {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
};
Result<TokenTable> TokenTableOf(const boost::json::object& root);

// Whether the post-processor adds bos before and eos after a sequence.
struct AddedSpecials {
  bool bos = false, eos = false;
};
AddedSpecials SpecialsAddedBy(const boost::json::object& root);

// The token types array (every entry checked against the token count), or
// all kNormal when the file has none.
Result<std::vector<int64_t>> TokenTypes(const GgufFile& g, size_t n);

// Control, user-defined and unknown tokens are Hugging Face's added tokens
// (special but for user-defined, which are normalized).
bool IsAddedType(int64_t type);
boost::json::array AddedTokensOf(const std::vector<std::string>& tokens, const std::vector<int64_t>& types);

// A flag at `key` (any integer or bool type), `fallback` when absent.
Result<bool> BoolOr(const GgufFile& g, const std::string& key, bool fallback);

// The integer id at `key` when it names a token, else -1.
int64_t TokenIdOr(const GgufFile& g, const char* key, int64_t n);

// SentencePiece half (gguf_tokenizer_spm.cc).
Result<TokenizerJson> SpmTokenizerJson(const GgufFile& g);
// True when tokenizer.json is a SentencePiece BPE as Hugging Face converts
// them (byte_fallback, "▁" for spaces through the normalizer).
bool IsSpmTokenizerJson(const boost::json::object& root);
Result<TokenizerIds> AddSpmTokenizer(const boost::json::object& root, const boost::json::object& cfg, GgufWriter& w);

}  // namespace crescent::model::gguf_tok
