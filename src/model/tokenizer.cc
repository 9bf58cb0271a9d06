#include "model/tokenizer.h"

#include "model/gguf_model.h"
#include "model/gguf_tokenizer.h"

#include <boost/json.hpp>

#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "base/file.h"
#include "base/json.h"
#include "model/bpe.h"
#include "model/decoder.h"
#include "model/normalizer.h"
#include "model/pretokenizer.h"
#include "model/tokenizer_added_tokens.h"
#include "model/tokenizer_merges.h"
#include "model/tokenizer_unicode.h"

namespace crescent::model {

namespace {
// Ids past this are refused: the largest vocabularies are ~262K tokens, and the
// id tables are sized by the largest id (a 600M id once cost 2 GB and 14 s).
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;
}  // namespace


namespace json = boost::json;

namespace {

constexpr std::string_view kSpiece = "\xE2\x96\x81";  // "▁"
// Words (for SentencePiece-style models without a pre-tokenizer: whole sections) up
// to this size are cached; the cache is dropped when it holds kMaxCacheBytes.
constexpr size_t kMaxCachedWord = 1024;
constexpr size_t kMaxCacheBytes = size_t{32} << 20;

struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
using WordCache = std::unordered_map<std::string, std::vector<int32_t>, StrHash, std::equal_to<>>;

// The reference's clean_up_tokenization.
std::string CleanUpTokenization(std::string s) {
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    size_t pos = 0;
    std::string out;
    size_t last = 0;
    bool any = false;
    while ((pos = s.find(from, last)) != std::string::npos) {
      any = true;
      out.append(s, last, pos - last);
      out.append(to);
      last = pos + from.size();
    }
    if (any) {
      out.append(s, last, std::string::npos);
      s = std::move(out);
    }
  }
  return s;
}

// tokenizer_config.json's bos_token etc.: a string or an AddedToken object.
std::string ConfigToken(const json::object* cfg, std::string_view key) {
  if (!cfg) return "";
  const json::value* v = cfg->if_contains(json::string_view(key.data(), key.size()));
  if (!v) return "";
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_object()) {
    const json::value* c = v->get_object().if_contains("content");
    if (c && c->is_string()) return std::string(c->get_string());
  }
  return "";
}

}  // namespace

struct Tokenizer::Impl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Decoder> decoder;
  std::optional<BpeModel> bpe;
  std::vector<AddedToken> added;
  std::unordered_set<std::string> added_contents;
  AddedTokenSplitter splitter;

  std::vector<std::string> id_to_token;  // tokenizer.json spelling; "" for holes
  std::vector<bool> id_known;
  std::unordered_map<std::string, int32_t, StrHash, std::equal_to<>> token_to_id;
  std::unordered_set<std::string> special_strings;
  std::vector<bool> special_id;

  // Post-processor: ids before and after the sequence when add_special_tokens.
  std::vector<int32_t> prefix_ids, suffix_ids;
  bool fuse_unk = false;
  int32_t unk_id = -1;
  std::string unk_token;
  bool cleanup = true;
  bool llama_non_legacy = false;
  int32_t spiece_id = -1;

  std::string bos_token, eos_token, pad_token, chat_template;
  int32_t bos_id = -1, eos_id = -1, pad_id = -1;

  mutable std::mutex cache_mu;
  mutable WordCache cache;       // GUARDED_BY(cache_mu)
  mutable size_t cache_bytes = 0;  // GUARDED_BY(cache_mu)

  int32_t Lookup(std::string_view t) const {
    auto it = token_to_id.find(t);
    return it == token_to_id.end() ? -1 : it->second;
  }
  void EncodeSection(std::string_view text, int section_index, WordCache* cache, PieceList* list,
                     std::vector<int32_t>* out) const;
  std::vector<int32_t> EncodeText(std::string_view text) const;
};

// REQUIRES: cache_mu held when c != nullptr.
void Tokenizer::Impl::EncodeSection(std::string_view text, int section_index, WordCache* c, PieceList* list,
                                    std::vector<int32_t>* out) const {
  std::string normalized;
  if (normalizer) {
    normalized.assign(text);
    Status s = normalizer->Normalize(&normalized);
    if (!s.ok()) {
      // ICU failures are not expected on valid UTF-8; fall back to the raw text.
      normalized.assign(text);
    }
    text = normalized;
  }
  if (text.empty()) return;
  list->Clear();
  list->pieces.push_back(text);
  if (pre_tokenizer) pre_tokenizer->Apply(list, section_index);
  size_t first = out->size();
  for (std::string_view word : list->pieces) {
    if (c && word.size() <= kMaxCachedWord) {
      auto it = c->find(word);
      if (it != c->end()) {
        out->insert(out->end(), it->second.begin(), it->second.end());
        continue;
      }
      size_t before = out->size();
      bpe->EncodeWord(word, out);
      if (cache_bytes >= kMaxCacheBytes) {
        c->clear();
        cache_bytes = 0;
      }
      c->emplace(std::string(word), std::vector<int32_t>(out->begin() + static_cast<ptrdiff_t>(before), out->end()));
      cache_bytes += 64 + word.size() + (out->size() - before) * sizeof(int32_t);
    } else {
      bpe->EncodeWord(word, out);
    }
  }
  if (fuse_unk && unk_id >= 0) {
    size_t w = first;
    for (size_t r = first; r < out->size(); ++r) {
      if ((*out)[r] == unk_id && w > first && (*out)[w - 1] == unk_id) continue;
      (*out)[w++] = (*out)[r];
    }
    out->resize(w);
  }
}

std::vector<int32_t> Tokenizer::Impl::EncodeText(std::string_view text) const {
  std::vector<int32_t> ids;
  thread_local std::vector<AddedTokenSplitter::Section> sections;
  thread_local PieceList list;
  splitter.Split(text, &sections);
  for (size_t i = 0; i < sections.size(); ++i) {
    if (sections[i].token < 0) continue;
    const AddedToken& t = added[static_cast<size_t>(sections[i].token)];
    if (t.lstrip && i > 0) sections[i - 1].text = TrimJsEnd(sections[i - 1].text);
    if (t.rstrip && i + 1 < sections.size()) sections[i + 1].text = TrimJsStart(sections[i + 1].text);
  }
  std::unique_lock<std::mutex> lock(cache_mu, std::try_to_lock);
  WordCache* c = lock.owns_lock() ? &cache : nullptr;
  for (size_t i = 0; i < sections.size(); ++i) {
    const auto& s = sections[i];
    if (s.text.empty()) continue;
    if (s.token >= 0) {
      const AddedToken& t = added[static_cast<size_t>(s.token)];
      if (s.text == t.content) {
        ids.push_back(t.id);
        continue;
      }
      int32_t other = Lookup(s.text);  // trimmed by a neighbour's lstrip/rstrip
      if (other >= 0 && added_contents.count(std::string(s.text))) {
        ids.push_back(other);
        continue;
      }
    }
    EncodeSection(s.text, static_cast<int>(i), c, &list, &ids);
  }
  return ids;
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Result<Tokenizer> Tokenizer::FromDirectory(const std::string& dir) {
  ASSIGN_OR_RETURN(auto gguf, FindGgufModel(dir));
  if (gguf) {
    // Only the first part of a split set carries the metadata.
    ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(gguf->front()));
    ASSIGN_OR_RETURN(TokenizerJson tj, GgufTokenizerJson(g));
    Result<Tokenizer> t = FromJson(tj.tokenizer_json, tj.config_json);
    if (!t.ok()) return t.status().WithContext(g.path());
    return t;
  }
  std::string tj = JoinPath(dir, "tokenizer.json");
  if (!FileExists(tj)) return NotFound(tj + ": no such file (the model folder needs a Hugging Face tokenizer.json)");
  ASSIGN_OR_RETURN(std::string tokenizer_json, ReadFileToString(tj));
  std::string config_json;
  std::string cj = JoinPath(dir, "tokenizer_config.json");
  if (FileExists(cj)) {
    ASSIGN_OR_RETURN(config_json, ReadFileToString(cj));
  }
  Result<Tokenizer> t = FromJson(tokenizer_json, config_json);
  if (!t.ok()) return t.status().WithContext(dir);
  return t;
}

Result<Tokenizer> Tokenizer::FromJson(std::string_view tokenizer_json, std::string_view config_json) {
  ASSIGN_OR_RETURN(json::value root, ParseJson(tokenizer_json, "tokenizer.json"));
  json::value cfg_root;
  if (!config_json.empty()) {
    ASSIGN_OR_RETURN(cfg_root, ParseJson(config_json, "tokenizer_config.json"));
  }
  const json::object* cfg = cfg_root.is_object() ? &cfg_root.get_object() : nullptr;
  if (!root.is_object()) return InvalidArgument("tokenizer.json: expected an object");
  const json::object& obj = root.get_object();
  auto impl = std::make_unique<Impl>();
  static const json::value kNull;
  auto field = [&](const char* k) -> const json::value& {
    const json::value* v = obj.if_contains(k);
    return v ? *v : kNull;
  };

  // Config-level options the reference honours.
  if (cfg) {
    JsonReader cr(cfg_root, "tokenizer_config.json");
    if (cr.BoolOr("remove_space", false)) return Unimplemented("tokenizer_config.json: remove_space is not supported");
    if (cr.BoolOr("do_lowercase_and_remove_accent", false)) {
      return Unimplemented("tokenizer_config.json: do_lowercase_and_remove_accent is not supported");
    }
    impl->cleanup = cr.BoolOr("clean_up_tokenization_spaces", true);
    std::string cls = cr.StringOr("tokenizer_class", "");
    if (cls.size() > 4 && cls.compare(cls.size() - 4, 4, "Fast") == 0) cls.resize(cls.size() - 4);
    if (cls == "LlamaTokenizer" && !cr.BoolOr("legacy", true)) impl->llama_non_legacy = true;
    if (cr.Has("chat_template")) {
      const json::value& ct = *cfg->if_contains("chat_template");
      if (ct.is_string()) {
        impl->chat_template = std::string(ct.get_string());
      } else if (ct.is_array()) {
        // A list of named templates: use "default".
        for (const auto& e : ct.get_array()) {
          if (e.is_object() && e.get_object().if_contains("name") && e.get_object().at("name") == "default") {
            const json::value* t = e.get_object().if_contains("template");
            if (t && t->is_string()) impl->chat_template = std::string(t->get_string());
          }
        }
      }
    }
    RETURN_IF_ERROR(cr.status());
  }

  ASSIGN_OR_RETURN(impl->normalizer, MakeNormalizer(field("normalizer")));
  ASSIGN_OR_RETURN(impl->pre_tokenizer, MakePreTokenizer(field("pre_tokenizer")));
  if (impl->llama_non_legacy) {
    impl->normalizer.reset();
    impl->pre_tokenizer = MakeMetaspacePreTokenizer(std::string(kSpiece), true, "first");
  }

  // Model.
  const json::value& model = field("model");
  if (!model.is_object()) return InvalidArgument("tokenizer.json: missing 'model'");
  JsonReader mr(model, "tokenizer.json: model");
  std::string type = mr.StringOr("type", "");
  if (type.empty() && model.get_object().if_contains("merges")) type = "BPE";
  if (type != "BPE") return Unimplemented("tokenizer.json: unsupported model type '" + type + "' (only BPE is supported)");
  if (!mr.StringOr("continuing_subword_prefix", "").empty() || !mr.StringOr("end_of_word_suffix", "").empty()) {
    return Unimplemented("tokenizer.json: BPE continuing_subword_prefix/end_of_word_suffix are not supported");
  }
  BpeOptions opt;
  opt.byte_level = impl->pre_tokenizer && impl->pre_tokenizer->byte_level();
  opt.byte_fallback = mr.BoolOr("byte_fallback", false);
  opt.ignore_merges = mr.BoolOr("ignore_merges", false);
  impl->fuse_unk = mr.BoolOr("fuse_unk", false);
  impl->unk_token = mr.StringOr("unk_token", "");
  RETURN_IF_ERROR(mr.status());
  const json::value* vocab_v = model.get_object().if_contains("vocab");
  const json::value* merges_v = model.get_object().if_contains("merges");
  if (!vocab_v || !vocab_v->is_object()) return InvalidArgument("tokenizer.json: model.vocab must be an object");
  if (!merges_v || !merges_v->is_array()) return InvalidArgument("tokenizer.json: model.merges must be an array");
  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(vocab_v->get_object().size());
  int32_t max_id = -1;
  for (const auto& kv : vocab_v->get_object()) {
    if (!kv.value().is_int64() && !kv.value().is_uint64()) {
      return InvalidArgument("tokenizer.json: model.vocab values must be integers");
    }
    const std::optional<int64_t> id_or = ExactInt64(kv.value());
    const int64_t id = id_or.value_or(-1);
    if (id < 0 || id > kMaxTokenId) {
      return InvalidArgument("tokenizer.json: vocab id " +
                             (id_or ? std::to_string(id) : json::serialize(kv.value())) + " out of range [0, " +
                             std::to_string(kMaxTokenId) + "]");
    }
    vocab.emplace_back(std::string(kv.key()), static_cast<int32_t>(id));
    max_id = std::max(max_id, static_cast<int32_t>(id));
  }
  ASSIGN_OR_RETURN(auto merges, ParseMerges(merges_v->get_array()));

  // Vocabulary and added tokens (added tokens override, as in the reference).
  const json::value& added_v = field("added_tokens");
  if (added_v.is_array()) {
    for (const json::value& a : added_v.get_array()) {
      JsonReader ar(a, "tokenizer.json: added_tokens");
      AddedToken t;
      t.content = ar.String("content");
      const int64_t id = ar.Int("id");
      t.lstrip = ar.BoolOr("lstrip", false);
      t.rstrip = ar.BoolOr("rstrip", false);
      t.normalized = ar.BoolOr("normalized", false);
      t.special = ar.BoolOr("special", false);
      t.single_word = ar.BoolOr("single_word", false);
      RETURN_IF_ERROR(ar.status());
      if (id < 0 || id > kMaxTokenId) {
        return InvalidArgument("tokenizer.json: added token id " + std::to_string(id) + " out of range [0, " +
                               std::to_string(kMaxTokenId) + "]");
      }
      t.id = static_cast<int32_t>(id);
      max_id = std::max(max_id, t.id);
      impl->added.push_back(std::move(t));
    }
  }
  impl->id_to_token.assign(static_cast<size_t>(max_id + 1), "");
  impl->id_known.assign(static_cast<size_t>(max_id + 1), false);
  impl->special_id.assign(static_cast<size_t>(max_id + 1), false);
  impl->token_to_id.reserve(vocab.size() + impl->added.size());
  for (const auto& [text, id] : vocab) {
    impl->id_to_token[static_cast<size_t>(id)] = text;
    impl->id_known[static_cast<size_t>(id)] = true;
    impl->token_to_id[text] = id;
  }
  for (const AddedToken& t : impl->added) {
    impl->id_to_token[static_cast<size_t>(t.id)] = t.content;
    impl->id_known[static_cast<size_t>(t.id)] = true;
    impl->token_to_id[t.content] = t.id;
    impl->added_contents.insert(t.content);
    if (t.special) impl->special_strings.insert(t.content);
  }
  if (cfg) {
    const json::value* extra = cfg->if_contains("additional_special_tokens");
    if (extra && extra->is_array()) {
      for (const auto& e : extra->get_array()) {
        if (e.is_string()) impl->special_strings.insert(std::string(e.get_string()));
        if (e.is_object() && e.get_object().if_contains("content") && e.get_object().at("content").is_string()) {
          impl->special_strings.insert(std::string(e.get_object().at("content").get_string()));
        }
      }
    }
  }
  for (size_t id = 0; id < impl->id_to_token.size(); ++id) {
    impl->special_id[id] = impl->id_known[id] && impl->special_strings.count(impl->id_to_token[id]) > 0;
  }
  impl->splitter = AddedTokenSplitter(impl->added);
  impl->unk_id = impl->unk_token.empty() ? -1 : impl->Lookup(impl->unk_token);
  opt.unk_id = impl->unk_id;
  ASSIGN_OR_RETURN(BpeModel bpe, BpeModel::Build(vocab, merges, opt));
  impl->bpe.emplace(std::move(bpe));
  impl->spiece_id = impl->Lookup(kSpiece);

  // Post-processor.
  const json::value& pp = field("post_processor");
  std::vector<const json::value*> processors;
  if (pp.is_object()) {
    JsonReader pr(pp, "tokenizer.json: post_processor");
    std::string ptype = pr.String("type");
    RETURN_IF_ERROR(pr.status());
    if (ptype == "Sequence") {
      const json::value* list = pp.get_object().if_contains("processors");
      if (list && list->is_array()) {
        for (const auto& p : list->get_array()) processors.push_back(&p);
      }
    } else {
      processors.push_back(&pp);
    }
  }
  for (const json::value* p : processors) {
    JsonReader pr(*p, "tokenizer.json: post_processor");
    std::string ptype = pr.String("type");
    RETURN_IF_ERROR(pr.status());
    if (ptype == "ByteLevel") continue;
    if (ptype != "TemplateProcessing") {
      return Unimplemented("tokenizer.json: unsupported post_processor type '" + ptype + "'");
    }
    const json::value* single = p->get_object().if_contains("single");
    if (!single || !single->is_array()) return InvalidArgument("tokenizer.json: TemplateProcessing without 'single'");
    impl->prefix_ids.clear();
    impl->suffix_ids.clear();
    bool seen_sequence = false;
    for (const auto& item : single->get_array()) {
      if (!item.is_object()) continue;
      if (item.get_object().if_contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      const json::value* st = item.get_object().if_contains("SpecialToken");
      if (!st || !st->is_object() || !st->get_object().if_contains("id")) continue;
      std::string tok(st->get_object().at("id").as_string());
      int32_t id = impl->Lookup(tok);
      if (id < 0) return InvalidArgument("tokenizer.json: post_processor names unknown token '" + tok + "'");
      (seen_sequence ? impl->suffix_ids : impl->prefix_ids).push_back(id);
    }
  }

  // Decoder.
  ASSIGN_OR_RETURN(impl->decoder, MakeDecoder(field("decoder"), &impl->added_contents));

  impl->bos_token = ConfigToken(cfg, "bos_token");
  impl->eos_token = ConfigToken(cfg, "eos_token");
  impl->pad_token = ConfigToken(cfg, "pad_token");
  if (impl->pad_token.empty()) impl->pad_token = impl->eos_token;
  impl->bos_id = impl->bos_token.empty() ? -1 : impl->Lookup(impl->bos_token);
  impl->eos_id = impl->eos_token.empty() ? -1 : impl->Lookup(impl->eos_token);
  impl->pad_id = impl->pad_token.empty() ? -1 : impl->Lookup(impl->pad_token);
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::string clean;
  if (!IsValidUtf8(text)) {
    clean = DecodeUtf8Lossy(text);
    text = clean;
  }
  std::vector<int32_t> ids;
  if (impl_->llama_non_legacy && !text.empty()) {
    // The reference's non-legacy Llama path: "▁" + text with "▁" turned into spaces,
    // then drop a lone leading "▁" before a special token.
    std::string t(kSpiece);
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, kSpiece.size(), kSpiece) == 0) {
        t.push_back(' ');
        i += kSpiece.size();
      } else {
        t.push_back(text[i++]);
      }
    }
    ids = impl_->EncodeText(t);
    if (ids.size() > 1 && ids[0] == impl_->spiece_id && IsSpecial(ids[1])) ids.erase(ids.begin());
  } else {
    ids = impl_->EncodeText(text);
  }
  if (add_special_tokens && (!impl_->prefix_ids.empty() || !impl_->suffix_ids.empty())) {
    ids.insert(ids.begin(), impl_->prefix_ids.begin(), impl_->prefix_ids.end());
    ids.insert(ids.end(), impl_->suffix_ids.begin(), impl_->suffix_ids.end());
  }
  return ids;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_token.size() || !impl_->id_known[static_cast<size_t>(id)]) {
      continue;
    }
    if (skip_special_tokens && impl_->special_id[static_cast<size_t>(id)]) continue;
    tokens.push_back(impl_->id_to_token[static_cast<size_t>(id)]);
  }
  std::string text;
  if (impl_->decoder) {
    impl_->decoder->DecodeChain(&tokens);
    for (const auto& t : tokens) text += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) text.push_back(' ');
      text += tokens[i];
    }
  }
  if (impl_->cleanup) text = CleanUpTokenization(std::move(text));
  return text;
}

int32_t Tokenizer::bos_id() const { return impl_->bos_id; }
int32_t Tokenizer::eos_id() const { return impl_->eos_id; }
int32_t Tokenizer::pad_id() const { return impl_->pad_id; }
const std::string& Tokenizer::bos_token() const { return impl_->bos_token; }
const std::string& Tokenizer::eos_token() const { return impl_->eos_token; }
int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_to_token.size()); }
bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special_id.size() && impl_->special_id[static_cast<size_t>(id)];
}
int32_t Tokenizer::TokenToId(std::string_view token) const { return impl_->Lookup(token); }
const std::string& Tokenizer::IdToToken(int32_t id) const {
  static const std::string kEmpty;
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_token.size()) return kEmpty;
  return impl_->id_to_token[static_cast<size_t>(id)];
}
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
bool Tokenizer::cleans_up_spaces() const { return impl_->cleanup; }

}  // namespace crescent::model
