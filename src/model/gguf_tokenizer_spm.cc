// SentencePiece tokenizers in GGUF (tokenizer.ggml.model "llama": Llama 2,
// Mistral, TinyLlama) to and from the tokenizer.json Hugging Face's
// LlamaConverter writes for them.
//
// A GGUF holds the pieces, their scores and types, not merges. SentencePiece's
// BPE merges the adjacent pair whose joined piece scores highest; Hugging
// Face's BPE merges the pair of lowest rank. The converter ranks every split
// of every piece into two pieces of the vocabulary by the joined piece's
// score (descending; ties by the order of the pieces, then by the two halves'
// ids), which gives the same merges, and so does this reader. The writer goes
// the other way: a piece scores minus the rank of the first merge that makes
// it, so reading back gives the merges it was given (exactly, for a
// tokenizer.json whose merges are every split of its pieces in the order
// Hugging Face's LlamaConverter wrote them; checked on Llama 2's). A normal
// piece no merge makes scores below every merge; control, byte, unknown and
// unused pieces score 0, as llama.cpp's converter writes them. (Newer
// converters order the splits of one piece by their halves' lengths and
// leave special tokens out; such files read back with those merges in the
// order above.)
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "model/gguf_tokenizer_parts.h"
#include "model/tokenizer_merges.h"

namespace crescent::model::gguf_tok {

namespace json = boost::json;

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

bool IsByteToken(std::string_view t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return t.size() == 6 && t.substr(0, 3) == "<0x" && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

json::object ReplaceStep(std::string_view from, std::string_view to) {
  return json::object{{"type", "Replace"}, {"pattern", json::object{{"String", from}}}, {"content", to}};
}

// Pieces longer than this make no merges (SentencePiece's own pieces are at
// most 16 characters; a file of ever longer pieces would otherwise ask for
// merges cubic in its size), and a file whose merges pass kMaxMerges is refused.
constexpr size_t kMaxMergedPiece = 256;
constexpr size_t kMaxMerges = size_t{1} << 24;

// Every split of every piece into two pieces, ranked as the converter ranks them.
Result<json::array> MergesOf(const std::vector<std::string>& tokens, const std::vector<double>& scores) {
  std::unordered_map<std::string_view, int64_t> id;
  id.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) id.emplace(tokens[i], static_cast<int64_t>(i));
  struct Merge {
    double score;
    int64_t left, right;
  };
  std::vector<Merge> merges, local;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string_view piece = tokens[i];
    if (id.at(piece) != static_cast<int64_t>(i) || piece.size() > kMaxMergedPiece) continue;  // a repeated piece counts once
    local.clear();
    for (size_t k = 1; k < piece.size(); ++k) {
      if ((static_cast<unsigned char>(piece[k]) & 0xC0) == 0x80) continue;  // split at characters
      auto l = id.find(piece.substr(0, k)), r = id.find(piece.substr(k));
      if (l != id.end() && r != id.end()) local.push_back({scores[i], l->second, r->second});
    }
    std::sort(local.begin(), local.end(),
              [](const Merge& a, const Merge& b) { return a.left != b.left ? a.left < b.left : a.right < b.right; });
    merges.insert(merges.end(), local.begin(), local.end());
    if (merges.size() > kMaxMerges) {
      return ResourceExhausted("tokenizer.ggml.tokens: more than " + std::to_string(kMaxMerges) +
                               " merges derive from these pieces");
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.score > b.score; });
  json::array out;
  out.reserve(merges.size());
  for (const Merge& m : merges) {
    out.push_back(json::array{json::string(tokens[static_cast<size_t>(m.left)]),
                              json::string(tokens[static_cast<size_t>(m.right)])});
  }
  return out;
}

// The steps of a normalizer (itself, or a Sequence's).
std::vector<const json::value*> NormalizerSteps(const json::value& norm) {
  std::vector<const json::value*> steps;
  const json::object& o = norm.as_object();
  if (o.contains("type") && o.at("type") == "Sequence" && o.contains("normalizers") &&
      o.at("normalizers").is_array()) {
    for (const auto& s : o.at("normalizers").get_array()) steps.push_back(&s);
  } else {
    steps.push_back(&norm);
  }
  return steps;
}


}  // namespace

Result<TokenizerJson> SpmTokenizerJson(const GgufFile& g) {
  const std::string& w = g.path();
  ASSIGN_OR_RETURN(const GgufArray* tokens, g.Array("tokenizer.ggml.tokens"));
  if (tokens->type != GgufType::kString) return InvalidArgument(w + ": tokenizer.ggml.tokens must be strings");
  const std::vector<std::string>& pieces = tokens->strings;
  const int64_t n = static_cast<int64_t>(pieces.size());
  if (n == 0) return InvalidArgument(w + ": tokenizer.ggml.tokens is empty");
  ASSIGN_OR_RETURN(std::vector<int64_t> types, TokenTypes(g, pieces.size()));
  std::vector<double> scores(pieces.size(), 0.0);
  if (g.Has("tokenizer.ggml.scores")) {
    ASSIGN_OR_RETURN(const GgufArray* s, g.Array("tokenizer.ggml.scores"));
    if (s->type != GgufType::kF32 && s->type != GgufType::kF64) {
      return InvalidArgument(w + ": tokenizer.ggml.scores must be floats");
    }
    if (s->floats.size() != pieces.size()) {
      return InvalidArgument(w + ": tokenizer.ggml.scores has " + std::to_string(s->size()) + " entries for " +
                             std::to_string(n) + " tokens");
    }
    scores = s->floats;
    for (size_t i = 0; i < scores.size(); ++i) {
      if (!std::isfinite(scores[i])) {
        return InvalidArgument(w + ": tokenizer.ggml.scores[" + std::to_string(i) + "] is not a finite number");
      }
    }
  }
  ASSIGN_OR_RETURN(bool add_bos, BoolOr(g, "tokenizer.ggml.add_bos_token", true));
  ASSIGN_OR_RETURN(bool add_eos, BoolOr(g, "tokenizer.ggml.add_eos_token", false));
  ASSIGN_OR_RETURN(bool add_space_prefix, BoolOr(g, "tokenizer.ggml.add_space_prefix", true));
  const int64_t bos = TokenIdOr(g, "tokenizer.ggml.bos_token_id", n), eos = TokenIdOr(g, "tokenizer.ggml.eos_token_id", n),
                pad = TokenIdOr(g, "tokenizer.ggml.padding_token_id", n);
  int64_t unk = TokenIdOr(g, "tokenizer.ggml.unknown_token_id", n);
  for (int64_t i = 0; i < n && unk < 0; ++i) {
    if (types[static_cast<size_t>(i)] == kUnknown) unk = i;
  }
  if (add_bos && bos < 0) return InvalidArgument(w + ": add_bos_token without a bos_token_id");
  if (add_eos && eos < 0) return InvalidArgument(w + ": add_eos_token without an eos_token_id");

  ASSIGN_OR_RETURN(json::array merges, MergesOf(pieces, scores));
  json::object vocab;  // every piece, as the converter keeps them (the unknown one included)
  for (int64_t id = 0; id < n; ++id) {
    if (!vocab.contains(pieces[static_cast<size_t>(id)])) vocab[pieces[static_cast<size_t>(id)]] = id;
  }
  auto text = [&](int64_t id) -> const std::string* { return id >= 0 ? &pieces[static_cast<size_t>(id)] : nullptr; };

  json::object t;
  t["version"] = "1.0";
  t["added_tokens"] = AddedTokensOf(pieces, types);
  json::object replace = ReplaceStep(" ", kSpace);
  t["normalizer"] = add_space_prefix ? json::value(json::object{
                                           {"type", "Sequence"},
                                           {"normalizers", json::array{json::object{{"type", "Prepend"}, {"prepend", kSpace}},
                                                                       std::move(replace)}}})
                                     : json::value(std::move(replace));
  t["pre_tokenizer"] = nullptr;
  t["post_processor"] = add_bos || add_eos ? json::value(AddSpecialTokensTemplate(add_bos ? text(bos) : nullptr, bos,
                                                                                  add_eos ? text(eos) : nullptr, eos))
                                           : json::value(nullptr);
  json::array decoders{ReplaceStep(kSpace, " "), json::object{{"type", "ByteFallback"}}, json::object{{"type", "Fuse"}}};
  if (add_space_prefix) decoders.push_back(json::object{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  t["decoder"] = json::object{{"type", "Sequence"}, {"decoders", std::move(decoders)}};
  t["model"] = json::object{{"type", "BPE"},
                            {"dropout", nullptr},
                            {"unk_token", unk >= 0 ? json::value(pieces[static_cast<size_t>(unk)]) : json::value(nullptr)},
                            {"fuse_unk", true},
                            {"byte_fallback", true},
                            {"ignore_merges", false},
                            {"vocab", std::move(vocab)},
                            {"merges", std::move(merges)}};

  json::object c;
  c["clean_up_tokenization_spaces"] = false;  // llama.cpp does not clean up
  c["add_bos_token"] = add_bos;
  c["add_eos_token"] = add_eos;
  c["legacy"] = true;  // llama.cpp prefixes a space after every special token, as legacy Llama does
  if (bos >= 0) c["bos_token"] = *text(bos);
  if (eos >= 0) c["eos_token"] = *text(eos);
  if (pad >= 0) c["pad_token"] = *text(pad);
  if (unk >= 0) c["unk_token"] = *text(unk);
  if (g.Has("tokenizer.chat_template")) {
    ASSIGN_OR_RETURN(std::string ct, g.String("tokenizer.chat_template"));
    c["chat_template"] = ct;
  }
  return TokenizerJson{json::serialize(t), json::serialize(c)};
}

bool IsSpmTokenizerJson(const json::object& root) {
  // byte_fallback and spaces made "▁" by the normalizer (Prepend optional),
  // nothing splitting before the model.
  const json::object& model = root.at("model").as_object();
  const json::value* fallback = model.if_contains("byte_fallback");
  if (!fallback || !fallback->is_bool() || !fallback->get_bool()) return false;
  const json::value* pre = root.if_contains("pre_tokenizer");
  if (pre && !pre->is_null()) return false;
  const json::value* norm = root.if_contains("normalizer");
  if (!norm || !norm->is_object()) return false;
  const json::value replace = ReplaceStep(" ", kSpace);
  for (const json::value* s : NormalizerSteps(*norm)) {
    if (*s == replace) return true;
  }
  return false;
}

Result<TokenizerIds> AddSpmTokenizer(const json::object& root, const json::object& cfg, GgufWriter& w) {
  const json::object& model = root.at("model").as_object();
  // Only Prepend("▁") and Replace(" ", "▁") normalize; anything else would be lost.
  const json::value& norm = root.at("normalizer");
  bool add_space_prefix = false;
  for (const json::value* s : NormalizerSteps(norm)) {
    const json::object& o = s->as_object();
    if (o.contains("type") && o.at("type") == "Prepend" && o.contains("prepend") && o.at("prepend") == json::value(kSpace)) {
      add_space_prefix = true;
    } else if (*s != json::value(ReplaceStep(" ", kSpace))) {
      return Unimplemented("tokenizer.json: a SentencePiece normalizer step GGUF cannot hold: " + json::serialize(*s));
    }
  }
  ASSIGN_OR_RETURN(TokenTable table, TokenTableOf(root));
  const std::string unk = model.contains("unk_token") && model.at("unk_token").is_string()
                              ? std::string(model.at("unk_token").get_string())
                              : "";
  // Scores: minus the rank of the first merge making the piece.
  std::unordered_map<std::string, int64_t> first_rank;
  ASSIGN_OR_RETURN(auto pairs, ParseMerges(model.at("merges").as_array()));
  const int64_t rank = static_cast<int64_t>(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) first_rank.emplace(pairs[i].first + pairs[i].second, static_cast<int64_t>(i));
  const size_t n = table.tokens.size();
  if (static_cast<size_t>(rank) + n > (size_t{1} << 24)) {
    return InvalidArgument("tokenizer.json: " + std::to_string(rank) + " merges and " + std::to_string(n) +
                           " tokens are more ranks than an f32 score tells apart");
  }
  std::vector<float> scores(n, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    const std::string& t = table.tokens[i];
    int32_t& type = table.types[i];
    if (type == kNormal && IsByteToken(t)) type = kByte;
    if (!unk.empty() && t == unk) type = kUnknown;
    if (type != kNormal && type != kUserDefined) continue;  // control, byte, unknown, unused: 0
    auto it = first_rank.find(t);
    scores[i] = -static_cast<float>(it != first_rank.end() ? it->second : rank + static_cast<int64_t>(i));
  }
  const AddedSpecials specials = SpecialsAddedBy(root);
  w.AddString("tokenizer.ggml.model", "llama");
  w.AddStrings("tokenizer.ggml.tokens", table.tokens);
  w.AddF32s("tokenizer.ggml.scores", scores);
  w.AddI32s("tokenizer.ggml.token_type", table.types);
  TokenizerIds out;
  AddSpecialTokenIds(cfg, table.tokens, w, &out);
  if (!unk.empty() && !cfg.contains("unk_token")) {
    auto it = std::find(table.tokens.begin(), table.tokens.end(), unk);
    if (it != table.tokens.end()) w.AddU32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(it - table.tokens.begin()));
  }
  w.AddBool("tokenizer.ggml.add_bos_token", specials.bos);
  w.AddBool("tokenizer.ggml.add_eos_token", specials.eos);
  w.AddBool("tokenizer.ggml.add_space_prefix", add_space_prefix);
  if (const json::value* ct = cfg.if_contains("chat_template"); ct && ct->is_string()) {
    w.AddString("tokenizer.chat_template", ct->get_string());
  }
  out.tokens = std::move(table.tokens);
  return out;
}

}  // namespace crescent::model::gguf_tok
