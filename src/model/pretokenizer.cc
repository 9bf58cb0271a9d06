#include "model/pretokenizer.h"

#include <boost/json.hpp>

#include "base/json.h"
#include "model/tokenizer_regex.h"

namespace crescent::model {

namespace json = boost::json;

namespace {

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void Apply(PieceList* list, int section_index) const override {
    for (const auto& s : steps_) s->Apply(list, section_index);
  }
  bool byte_level() const override { return !steps_.empty() && steps_.back()->byte_level(); }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

enum class SplitMode { kIsolate, kRemove, kMatchesOnly };

// Splits each piece on `regex`; kIsolate keeps both the gaps and the matches (the
// reference's regexSplit), kRemove keeps only the gaps, kMatchesOnly only matches.
void SplitPieces(const Regex& regex, SplitMode mode, PieceList* list) {
  list->scratch.clear();
  for (std::string_view piece : list->pieces) {
    size_t prev = 0;
    regex.ForEachMatch(piece, [&](size_t b, size_t e) {
      if (mode != SplitMode::kMatchesOnly && prev < b) list->scratch.push_back(piece.substr(prev, b - prev));
      if (mode != SplitMode::kRemove && e > b) list->scratch.push_back(piece.substr(b, e - b));
      prev = e;
    });
    if (mode != SplitMode::kMatchesOnly && prev < piece.size()) list->scratch.push_back(piece.substr(prev));
  }
  list->pieces.swap(list->scratch);
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex regex, SplitMode mode) : regex_(std::move(regex)), mode_(mode) {}
  void Apply(PieceList* list, int) const override { SplitPieces(regex_, mode_, list); }

 private:
  Regex regex_;
  SplitMode mode_;
};

// GPT-2's split, as the reference writes it (no case-insensitive group).
constexpr std::string_view kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, Regex regex, bool use_regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)), use_regex_(use_regex) {}
  void Apply(PieceList* list, int) const override {
    if (add_prefix_space_) {
      for (auto& p : list->pieces) {
        if (p.empty() || p[0] != ' ') {
          std::string s;
          s.reserve(p.size() + 1);
          s.push_back(' ');
          s.append(p);
          list->owned.push_back(std::move(s));
          p = list->owned.back();
        }
      }
    }
    if (use_regex_) SplitPieces(regex_, SplitMode::kMatchesOnly, list);
  }
  bool byte_level() const override { return true; }

 private:
  bool add_prefix_space_;
  Regex regex_;
  bool use_regex_;
};

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, bool add_prefix_space, std::string scheme)
      : replacement_(std::move(replacement)), add_prefix_space_(add_prefix_space), scheme_(std::move(scheme)) {}
  void Apply(PieceList* list, int section_index) const override {
    for (auto& p : list->pieces) {
      std::string s;
      s.reserve(p.size() + 8);
      bool starts_with_rep = p.substr(0, 1) == " " ||
                             (!replacement_.empty() && p.substr(0, replacement_.size()) == replacement_);
      if (add_prefix_space_ && !starts_with_rep &&
          (scheme_ == "always" || (scheme_ == "first" && section_index == 0))) {
        s.append(replacement_);
      }
      for (char c : p) {
        if (c == ' ') {
          s.append(replacement_);
        } else {
          s.push_back(c);
        }
      }
      list->owned.push_back(std::move(s));
      p = list->owned.back();
    }
  }

 private:
  std::string replacement_;
  bool add_prefix_space_;
  std::string scheme_;
};

}  // namespace

std::unique_ptr<PreTokenizer> MakeMetaspacePreTokenizer(std::string replacement, bool add_prefix_space,
                                                        std::string prepend_scheme) {
  return std::make_unique<MetaspacePreTokenizer>(std::move(replacement), add_prefix_space, std::move(prepend_scheme));
}

Result<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const json::value& config) {
  if (config.is_null()) return std::unique_ptr<PreTokenizer>();
  JsonReader r(config, "tokenizer.json: pre_tokenizer");
  std::string type = r.String("type");
  RETURN_IF_ERROR(r.status());
  if (type == "Sequence") {
    const json::value* list = r.object()->if_contains("pretokenizers");
    if (!list || !list->is_array()) return InvalidArgument("tokenizer.json: pre_tokenizer Sequence without 'pretokenizers'");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const json::value& v : list->get_array()) {
      ASSIGN_OR_RETURN(auto p, MakePreTokenizer(v));
      if (!p) continue;
      if (!steps.empty() && steps.back()->byte_level()) {
        return Unimplemented("tokenizer.json: a pre-tokenizer after ByteLevel is not supported");
      }
      steps.push_back(std::move(p));
    }
    return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(steps)));
  }
  if (type == "Split") {
    bool invert = r.BoolOr("invert", false);
    std::string behavior = r.StringOr("behavior", "Isolated");
    const json::value* pat = r.Object("pattern", false);
    RETURN_IF_ERROR(r.status());
    JsonReader pr(*pat, "tokenizer.json: pre_tokenizer Split pattern");
    Result<Regex> regex = InvalidArgument("no pattern");
    if (pr.Has("String")) {
      std::string s = pr.String("String");
      RETURN_IF_ERROR(pr.status());
      regex = Regex::Compile(s, /*literal=*/true);
    } else {
      std::string s = pr.String("Regex");
      RETURN_IF_ERROR(pr.status());
      regex = Regex::Compile(s);
    }
    if (!regex.ok()) return regex.status();
    for (char& c : behavior) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    SplitMode mode = invert ? SplitMode::kMatchesOnly
                            : (behavior == "removed" ? SplitMode::kRemove : SplitMode::kIsolate);
    return std::unique_ptr<PreTokenizer>(new SplitPreTokenizer(std::move(regex).value(), mode));
  }
  if (type == "ByteLevel") {
    bool add_prefix_space = r.BoolOr("add_prefix_space", false);
    bool use_regex = r.BoolOr("use_regex", true);
    RETURN_IF_ERROR(r.status());
    ASSIGN_OR_RETURN(Regex regex, Regex::Compile(kGpt2Pattern));
    return std::unique_ptr<PreTokenizer>(new ByteLevelPreTokenizer(add_prefix_space, std::move(regex), use_regex));
  }
  if (type == "Metaspace") {
    std::string replacement = r.StringOr("replacement", "\xE2\x96\x81");
    bool add_prefix_space = r.BoolOr("add_prefix_space", false);
    std::string scheme = r.StringOr("prepend_scheme", "always");
    if (r.Has("str_rep")) replacement = r.String("str_rep");
    RETURN_IF_ERROR(r.status());
    return MakeMetaspacePreTokenizer(std::move(replacement), add_prefix_space, std::move(scheme));
  }
  return Unimplemented("tokenizer.json: unsupported pre_tokenizer type '" + type + "'");
}

}  // namespace crescent::model
