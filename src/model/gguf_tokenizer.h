// Tokenizers in GGUF metadata, to and from Hugging Face's tokenizer.json, so a
// GGUF model runs through the one tokenizer crescent has (model/tokenizer.h).
//
// Read (GgufTokenizerJson): tokenizer.ggml.model "gpt2" (byte-level BPE:
// tokens, merges "a b", token_type, pre) and "llama" (SentencePiece: tokens,
// scores, token_type with <0xXX> byte tokens; merges are derived from the
// scores as Hugging Face's converter derives them). tokenizer.ggml.pre names
// the split regex as llama.cpp does (llama-bpe, qwen2, gpt-2/default); an
// unknown name is an error naming it. Token types: 1 normal, 2 unknown,
// 3 control (special added tokens), 4 user-defined (added, not special),
// 5 unused, 6 byte. bos/eos/padding ids, add_bos_token and
// tokenizer.chat_template go to the tokenizer_config.json half.
// clean_up_tokenization_spaces is false, as llama.cpp decodes.
//
// Write (AddTokenizerToGguf): a byte-level BPE tokenizer.json whose split
// regex is one of the above (Llama 3, Qwen2/3, GPT-2) and its
// tokenizer_config.json, as llama.cpp's converter writes them.
// Thread-safety: functions of their arguments.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"

namespace crescent::model {

struct TokenizerJson {
  std::string tokenizer_json;  // tokenizer.json text
  std::string config_json;     // tokenizer_config.json text
};

Result<TokenizerJson> GgufTokenizerJson(const GgufFile& g);

// What AddTokenizerToGguf wrote: the bos/eos ids it found (-1 for none) and
// the token texts.
struct TokenizerIds {
  int64_t bos = -1, eos = -1;
  std::vector<std::string> tokens;
  std::string text(int64_t id) const { return id >= 0 && id < static_cast<int64_t>(tokens.size()) ? tokens[id] : ""; }
};

Result<TokenizerIds> AddTokenizerToGguf(std::string_view tokenizer_json, std::string_view config_json, GgufWriter& w);

}  // namespace crescent::model
