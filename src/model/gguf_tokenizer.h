// Tokenizers in GGUF metadata, to and from Hugging Face's tokenizer.json, so a
// GGUF model runs through the one tokenizer crescent has (model/tokenizer.h).
//
// Read (GgufTokenizerJson): tokenizer.ggml.model "gpt2" (byte-level BPE:
// tokens, merges "a b", token_type, pre), the tokenizers of Llama 3, Qwen2/3
// and GPT-2 style models. tokenizer.ggml.pre names the split regex as
// llama.cpp does (llama-bpe, qwen2, gpt-2 and their aliases; a missing pre is
// llama.cpp's "default", which is refused like any other unknown name).
// tokenizer.ggml.model "llama" (SentencePiece BPE: Llama 2, Mistral,
// TinyLlama): pieces, scores and types; the merges are derived from the
// scores as Hugging Face's converter derives them (gguf_tokenizer_spm.cc),
// spaces become "▁" with one prefixed (add_space_prefix, default true) and
// after every special token, unknown characters fall back to <0xNN> pieces.
// Other models (bert, t5, rwkv) are refused with Unimplemented. Token types:
// 1 normal, 2 unknown, 3 control (special added tokens), 4 user-defined
// (added, not special), 5 unused, 6 byte. bos/eos/padding/unknown ids,
// add_bos_token/add_eos_token and tokenizer.chat_template go to the
// tokenizer_config.json half; a token text that repeats keeps its first id.
// clean_up_tokenization_spaces is false, as llama.cpp decodes.
//
// Write (AddTokenizerToGguf): a byte-level BPE tokenizer.json whose split
// regex is one of the above (Llama 3, Qwen2/3, GPT-2), or a SentencePiece
// BPE one as Hugging Face converts them (byte_fallback, a normalizer of
// Prepend("▁") and Replace(" ", "▁"), no pre-tokenizer: Llama 2, Mistral),
// with its tokenizer_config.json, as llama.cpp's converter writes them. A
// SentencePiece piece scores minus the rank of the first merge that makes it,
// so reading back gives the same merges in the same order when they were
// every split of the pieces in LlamaConverter's order (Llama 2's, Mistral's).
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
