#include "model/gguf_tokenizer.h"

#include <boost/json.hpp>

#include <map>
#include <set>

#include "base/json.h"
#include "model/gguf_tokenizer_parts.h"
#include "model/tokenizer_merges.h"

namespace crescent::model {

namespace json = boost::json;

namespace {

// llama.cpp's pre-tokenizer names and the Hugging Face split regex each stands for.
struct PreTokenizer {
  std::vector<std::string_view> names;  // the first is what the writer uses
  std::string_view regex;
  bool ignore_merges, add_bos, nfc;
};

const PreTokenizer kPre[] = {
    {{"llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral", "smaug-bpe", "dbrx"},
     R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     true, true, false},
    {{"qwen2", "deepseek-r1-qwen", "megrez"},
     R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     false, false, true},
    {{"gpt-2", "phi-2", "mpt", "olmo", "jais"}, R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
     false, false, false},
};

using namespace gguf_tok;  // NOLINT: the shared parts' names

}  // namespace

namespace gguf_tok {

json::object AddSpecialTokensTemplate(const std::string* bos, int64_t bos_id, const std::string* eos, int64_t eos_id) {
  auto special = [](const std::string& t, int type_id) {
    return json::object{{"SpecialToken", json::object{{"id", t}, {"type_id", type_id}}}};
  };
  auto seq = [](const char* id, int type_id) {
    return json::object{{"Sequence", json::object{{"id", id}, {"type_id", type_id}}}};
  };
  json::array single, pair;
  json::object tokens;
  if (bos) {
    single.push_back(special(*bos, 0));
    pair.push_back(special(*bos, 0));
    tokens[*bos] = json::object{{"id", *bos}, {"ids", json::array{bos_id}}, {"tokens", json::array{*bos}}};
  }
  single.push_back(seq("A", 0));
  pair.push_back(seq("A", 0));
  if (eos) {
    single.push_back(special(*eos, 0));
    pair.push_back(special(*eos, 0));
    tokens[*eos] = json::object{{"id", *eos}, {"ids", json::array{eos_id}}, {"tokens", json::array{*eos}}};
  }
  if (bos) pair.push_back(special(*bos, 1));
  pair.push_back(seq("B", 1));
  if (eos) pair.push_back(special(*eos, 1));
  return json::object{{"type", "TemplateProcessing"},
                      {"single", std::move(single)},
                      {"pair", std::move(pair)},
                      {"special_tokens", std::move(tokens)}};
}

std::string ConfigToken(const json::object& cfg, const char* key) {
  const json::value* v = cfg.if_contains(key);
  if (!v) return "";
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_object() && v->get_object().contains("content") && v->get_object().at("content").is_string()) {
    return std::string(v->get_object().at("content").get_string());
  }
  return "";
}

void AddSpecialTokenIds(const json::object& cfg, const std::vector<std::string>& tokens, GgufWriter& w,
                        TokenizerIds* out) {
  std::map<std::string, int64_t, std::less<>> ids;
  for (size_t i = 0; i < tokens.size(); ++i) ids.emplace(tokens[i], static_cast<int64_t>(i));
  for (auto [key, name] : {std::pair{"bos_token", "tokenizer.ggml.bos_token_id"},
                           std::pair{"eos_token", "tokenizer.ggml.eos_token_id"},
                           std::pair{"pad_token", "tokenizer.ggml.padding_token_id"},
                           std::pair{"unk_token", "tokenizer.ggml.unknown_token_id"}}) {
    const std::string text = ConfigToken(cfg, key);
    auto it = text.empty() ? ids.end() : ids.find(text);
    if (it == ids.end()) continue;
    w.AddU32(name, static_cast<uint32_t>(it->second));
    if (std::string_view(key) == "bos_token") out->bos = it->second;
    if (std::string_view(key) == "eos_token") out->eos = it->second;
  }
}

Result<std::vector<int64_t>> TokenTypes(const GgufFile& g, size_t n) {
  if (!g.Has("tokenizer.ggml.token_type")) return std::vector<int64_t>(n, kNormal);
  ASSIGN_OR_RETURN(const GgufArray* t, g.Array("tokenizer.ggml.token_type"));
  if (t->ints.size() != n) {
    return InvalidArgument(g.path() + ": tokenizer.ggml.token_type has " + std::to_string(t->size()) +
                           " entries for " + std::to_string(n) + " tokens");
  }
  return t->ints;
}

bool IsAddedType(int64_t type) { return type == kControl || type == kUserDefined || type == kUnknown; }

json::array AddedTokensOf(const std::vector<std::string>& tokens, const std::vector<int64_t>& types) {
  json::array added;
  std::set<std::string_view> seen;  // a text that repeats keeps its first id
  for (size_t id = 0; id < tokens.size(); ++id) {
    const int64_t type = types[id];
    if (!IsAddedType(type) || !seen.insert(tokens[id]).second) continue;
    added.push_back(json::object{{"id", id},          {"content", tokens[id]}, {"single_word", false},
                                 {"lstrip", false},   {"rstrip", false},       {"normalized", type == kUserDefined},
                                 {"special", type != kUserDefined}});
  }
  return added;
}

Result<bool> BoolOr(const GgufFile& g, const std::string& key, bool fallback) {
  if (!g.Has(key)) return fallback;
  ASSIGN_OR_RETURN(int64_t v, g.Int(key));
  return v != 0;
}

int64_t TokenIdOr(const GgufFile& g, const char* key, int64_t n) {
  auto v = g.Int(key);
  return v.ok() && *v >= 0 && *v < n ? *v : -1;
}

Result<TokenTable> TokenTableOf(const json::object& o) {
  std::map<int64_t, std::pair<std::string, int64_t>> by_id;  // id -> (text, type)
  for (const auto& kv : o.at("model").as_object().at("vocab").as_object()) {
    by_id[kv.value().to_number<int64_t>()] = {std::string(kv.key()), kNormal};
  }
  if (const json::value* a = o.if_contains("added_tokens"); a && a->is_array()) {
    for (const auto& t : a->get_array()) {
      const auto& to = t.as_object();
      const bool special = to.contains("special") && to.at("special").as_bool();
      by_id[to.at("id").to_number<int64_t>()] = {std::string(to.at("content").as_string()),
                                                 special ? kControl : kUserDefined};
    }
  }
  if (!by_id.empty() && (by_id.rbegin()->first >= (int64_t{1} << 24) || by_id.begin()->first < 0)) {
    return InvalidArgument("tokenizer.json: token ids out of range");
  }
  const int64_t n = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
  TokenTable t;
  t.tokens.resize(static_cast<size_t>(n));
  t.types.assign(static_cast<size_t>(n), static_cast<int32_t>(kUnused));
  for (int64_t i = 0; i < n; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      t.tokens[static_cast<size_t>(i)] = "[PAD" + std::to_string(i) + "]";
      continue;
    }
    t.tokens[static_cast<size_t>(i)] = it->second.first;
    t.types[static_cast<size_t>(i)] = static_cast<int32_t>(it->second.second);
  }
  return t;
}

AddedSpecials SpecialsAddedBy(const json::object& o) {
  // Added when the post-processor's template puts a special token before
  // (bos) or after (eos) the sequence.
  AddedSpecials a;
  const json::value* pp = o.if_contains("post_processor");
  if (!pp || !pp->is_object() || !pp->get_object().contains("type") ||
      pp->get_object().at("type") != "TemplateProcessing") {
    return a;
  }
  const json::value* single = pp->get_object().if_contains("single");
  if (!single || !single->is_array() || single->get_array().empty()) return a;
  const json::array& s = single->get_array();
  auto special = [](const json::value& v) { return v.is_object() && v.get_object().contains("SpecialToken"); };
  a.bos = special(s.front());
  a.eos = s.size() > 1 && special(s.back());
  return a;
}

}  // namespace gguf_tok

Result<TokenizerJson> GgufTokenizerJson(const GgufFile& g) {
  const std::string& w = g.path();
  ASSIGN_OR_RETURN(std::string model, g.String("tokenizer.ggml.model"));
  if (model == "llama") return SpmTokenizerJson(g);
  if (model != "gpt2") {
    return Status(StatusCode::kUnimplemented, w + ": tokenizer.ggml.model '" + model +
                                                  "' is not supported (gpt2: byte-level BPE, llama: SentencePiece)");
  }
  ASSIGN_OR_RETURN(const GgufArray* tokens, g.Array("tokenizer.ggml.tokens"));
  if (tokens->type != GgufType::kString) return InvalidArgument(w + ": tokenizer.ggml.tokens must be strings");
  const int64_t n = static_cast<int64_t>(tokens->strings.size());
  ASSIGN_OR_RETURN(std::vector<int64_t> types, TokenTypes(g, tokens->strings.size()));
  ASSIGN_OR_RETURN(const GgufArray* merges, g.Array("tokenizer.ggml.merges"));
  if (merges->type != GgufType::kString) return InvalidArgument(w + ": tokenizer.ggml.merges must be strings");
  std::string pre_name = "default";
  if (g.Has("tokenizer.ggml.pre")) {
    ASSIGN_OR_RETURN(pre_name, g.String("tokenizer.ggml.pre"));
  }
  const PreTokenizer* pre = nullptr;
  for (const auto& p : kPre) {
    for (auto name : p.names) {
      if (name == pre_name) pre = &p;
    }
  }
  if (!pre) {
    return Status(StatusCode::kUnimplemented, w + ": tokenizer.ggml.pre '" + pre_name +
                                                  "' is not supported (llama-bpe, qwen2, gpt-2 and their aliases)");
  }
  json::object vocab;
  json::array added = AddedTokensOf(tokens->strings, types);
  for (int64_t id = 0; id < n; ++id) {
    const std::string& tok = tokens->strings[static_cast<size_t>(id)];
    if (!IsAddedType(types[static_cast<size_t>(id)]) && !vocab.contains(tok)) vocab[tok] = id;  // first id wins
  }
  json::array merge_list;
  for (const std::string& m : merges->strings) {
    // "a b": split at the first space after the first character.
    const size_t sp = m.find(' ', 1);
    if (sp == std::string::npos) return InvalidArgument(w + ": merge '" + m + "' is not 'left right'");
    merge_list.push_back(json::string(m));
  }
  auto id_key = [&](const char* key) { return TokenIdOr(g, key, n); };
  const int64_t bos = id_key("tokenizer.ggml.bos_token_id"), eos = id_key("tokenizer.ggml.eos_token_id"),
                pad = id_key("tokenizer.ggml.padding_token_id");
  ASSIGN_OR_RETURN(bool add_bos, BoolOr(g, "tokenizer.ggml.add_bos_token", pre->add_bos));
  if (add_bos && bos < 0) return InvalidArgument(w + ": add_bos_token without a bos_token_id");

  json::object t;
  t["version"] = "1.0";
  t["added_tokens"] = std::move(added);
  t["normalizer"] = pre->nfc ? json::value(json::object{{"type", "NFC"}}) : json::value(nullptr);
  t["pre_tokenizer"] = json::object{
      {"type", "Sequence"},
      {"pretokenizers", json::array{json::object{{"type", "Split"},
                                                 {"pattern", json::object{{"Regex", pre->regex}}},
                                                 {"behavior", "Isolated"},
                                                 {"invert", false}},
                                    json::object{{"type", "ByteLevel"},
                                                 {"add_prefix_space", false},
                                                 {"trim_offsets", false},
                                                 {"use_regex", false}}}}};
  if (add_bos) {
    t["post_processor"] = AddSpecialTokensTemplate(&tokens->strings[static_cast<size_t>(bos)], bos, nullptr, -1);
  } else {
    t["post_processor"] = json::object{
        {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  }
  t["decoder"] = json::object{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  t["model"] = json::object{{"type", "BPE"},          {"dropout", nullptr},       {"unk_token", nullptr},
                            {"fuse_unk", false},      {"byte_fallback", false},   {"ignore_merges", pre->ignore_merges},
                            {"vocab", std::move(vocab)}, {"merges", std::move(merge_list)}};

  json::object c;
  c["clean_up_tokenization_spaces"] = false;  // llama.cpp does not clean up
  c["add_bos_token"] = add_bos;
  if (bos >= 0) c["bos_token"] = tokens->strings[static_cast<size_t>(bos)];
  if (eos >= 0) c["eos_token"] = tokens->strings[static_cast<size_t>(eos)];
  if (pad >= 0) c["pad_token"] = tokens->strings[static_cast<size_t>(pad)];
  if (g.Has("tokenizer.chat_template")) {
    ASSIGN_OR_RETURN(std::string ct, g.String("tokenizer.chat_template"));
    c["chat_template"] = ct;
  }
  return TokenizerJson{json::serialize(t), json::serialize(c)};
}

namespace {
Result<TokenizerIds> AddTokenizer(std::string_view tokenizer_json, std::string_view config_json, GgufWriter& w);
}  // namespace

Result<TokenizerIds> AddTokenizerToGguf(std::string_view tokenizer_json, std::string_view config_json, GgufWriter& w) {
  // The JSON accessors below throw on a field of the wrong kind: one error.
  try {
    return AddTokenizer(tokenizer_json, config_json, w);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("tokenizer.json: not a tokenizer GGUF can hold (") + e.what() + ")");
  }
}

namespace {
Result<TokenizerIds> AddTokenizer(std::string_view tokenizer_json, std::string_view config_json, GgufWriter& w) {
  ASSIGN_OR_RETURN(json::value root, ParseJson(tokenizer_json, "tokenizer.json"));
  json::value cfg_root = json::object();
  if (!config_json.empty()) {
    ASSIGN_OR_RETURN(cfg_root, ParseJson(config_json, "tokenizer_config.json"));
  }
  if (!root.is_object() || !cfg_root.is_object()) return InvalidArgument("tokenizer.json: expected an object");
  const json::object& o = root.get_object();
  const json::value* model = o.if_contains("model");
  if (!model || !model->is_object() || !model->get_object().contains("vocab") ||
      (model->get_object().contains("type") && model->get_object().at("type") != "BPE")) {
    return Unimplemented("tokenizer.json: only BPE models can be written to GGUF");
  }
  if (IsSpmTokenizerJson(o)) return AddSpmTokenizer(o, cfg_root.get_object(), w);
  // The split regex names the pre-tokenizer.
  const std::string pre_text = json::serialize(o.contains("pre_tokenizer") ? o.at("pre_tokenizer") : json::value());
  const PreTokenizer* pre = nullptr;
  for (const auto& p : kPre) {
    if (pre_text.find(json::serialize(json::value(p.regex))) != std::string::npos &&
        pre_text.find("ByteLevel") != std::string::npos) {
      pre = &p;
    }
  }
  if (!pre) return Unimplemented("tokenizer.json: its pre-tokenizer is not one GGUF names (Llama 3, Qwen2, GPT-2)");
  ASSIGN_OR_RETURN(TokenTable table, TokenTableOf(o));
  std::vector<std::string>& tokens = table.tokens;
  ASSIGN_OR_RETURN(auto pairs, ParseMerges(model->get_object().at("merges").as_array()));
  std::vector<std::string> merges;
  merges.reserve(pairs.size());
  for (const auto& [l, r] : pairs) merges.push_back(l + " " + r);
  const json::object& cfg = cfg_root.get_object();
  const bool add_bos = SpecialsAddedBy(o).bos;
  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddString("tokenizer.ggml.pre", pre->names[0]);
  w.AddStrings("tokenizer.ggml.tokens", tokens);  // moved into the result below
  w.AddI32s("tokenizer.ggml.token_type", table.types);
  w.AddStrings("tokenizer.ggml.merges", merges);
  TokenizerIds out;
  AddSpecialTokenIds(cfg, tokens, w, &out);
  w.AddBool("tokenizer.ggml.add_bos_token", add_bos);
  if (const json::value* ct = cfg.if_contains("chat_template"); ct && ct->is_string()) {
    w.AddString("tokenizer.chat_template", ct->get_string());
  }
  out.tokens = std::move(tokens);
  return out;
}
}  // namespace

}  // namespace crescent::model
