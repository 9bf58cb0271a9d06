#include "model/normalizer.h"

#include <boost/json.hpp>

#include <vector>

#include "base/json.h"
#include "model/tokenizer_regex.h"
#include "model/tokenizer_unicode.h"

namespace crescent::model {

namespace json = boost::json;

namespace {

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  Status Normalize(std::string* text) const override {
    for (const auto& s : steps_) RETURN_IF_ERROR(s->Normalize(text));
    return Status::Ok();
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  Status Normalize(std::string* text) const override {
    if (form_ == NormalForm::kNfc) {
      // Below U+0300 nothing composes or changes under NFC: skip ICU for such text.
      bool simple = true;
      for (unsigned char c : *text) {
        if (c >= 0xCC) {
          simple = false;
          break;
        }
      }
      if (simple) return Status::Ok();
    }
    ASSIGN_OR_RETURN(*text, NormalizeUnicode(*text, form_));
    return Status::Ok();
  }

 private:
  NormalForm form_;
};

// Replace: a String pattern replaces every occurrence; a Regex pattern every match
// (JavaScript replaceAll semantics; `content` is inserted literally).
class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::string from, Regex regex, bool is_regex, std::string to)
      : from_(std::move(from)), regex_(std::move(regex)), is_regex_(is_regex), to_(std::move(to)) {}
  Status Normalize(std::string* text) const override {
    std::string out;
    size_t last = 0;
    if (is_regex_) {
      regex_.ForEachMatch(*text, [&](size_t b, size_t e) {
        out.append(*text, last, b - last);
        out.append(to_);
        last = e;
      });
    } else {
      if (from_.empty()) return Status::Ok();
      size_t pos = 0;
      while ((pos = text->find(from_, last)) != std::string::npos) {
        out.append(*text, last, pos - last);
        out.append(to_);
        last = pos + from_.size();
      }
    }
    if (last == 0 && out.empty()) return Status::Ok();
    out.append(*text, last, std::string::npos);
    *text = std::move(out);
    return Status::Ok();
  }

 private:
  std::string from_;
  Regex regex_;
  bool is_regex_;
  std::string to_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prefix_(std::move(p)) {}
  Status Normalize(std::string* text) const override {
    text->insert(0, prefix_);
    return Status::Ok();
  }

 private:
  std::string prefix_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  Status Normalize(std::string* text) const override {
    *text = JsToLower(*text);
    return Status::Ok();
  }
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  Status Normalize(std::string* text) const override {
    std::string_view v = *text;
    if (left_) v = TrimJsStart(v);
    if (right_) v = TrimJsEnd(v);
    *text = std::string(v);
    return Status::Ok();
  }

 private:
  bool left_, right_;
};

}  // namespace

Result<std::unique_ptr<Normalizer>> MakeNormalizer(const json::value& config) {
  if (config.is_null()) return std::unique_ptr<Normalizer>();
  JsonReader r(config, "tokenizer.json: normalizer");
  std::string type = r.String("type");
  RETURN_IF_ERROR(r.status());
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    const json::value* list = r.object()->if_contains("normalizers");
    if (!list || !list->is_array()) return InvalidArgument("tokenizer.json: normalizer Sequence without 'normalizers'");
    for (const json::value& v : list->get_array()) {
      ASSIGN_OR_RETURN(auto n, MakeNormalizer(v));
      if (n) steps.push_back(std::move(n));
    }
    return std::unique_ptr<Normalizer>(new SequenceNormalizer(std::move(steps)));
  }
  if (type == "NFC") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormalForm::kNfc));
  if (type == "NFD") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormalForm::kNfd));
  if (type == "NFKC") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormalForm::kNfkc));
  if (type == "NFKD") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormalForm::kNfkd));
  if (type == "Prepend") {
    std::string p = r.String("prepend");
    RETURN_IF_ERROR(r.status());
    return std::unique_ptr<Normalizer>(new PrependNormalizer(std::move(p)));
  }
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new LowercaseNormalizer());
  if (type == "Strip") {
    bool left = r.BoolOr("strip_left", true), right = r.BoolOr("strip_right", true);
    RETURN_IF_ERROR(r.status());
    return std::unique_ptr<Normalizer>(new StripNormalizer(left, right));
  }
  if (type == "Replace") {
    std::string content = r.String("content");
    const json::value* pat = r.Object("pattern", false);
    RETURN_IF_ERROR(r.status());
    JsonReader pr(*pat, "tokenizer.json: normalizer Replace pattern");
    if (pr.Has("String")) {
      std::string from = pr.String("String");
      RETURN_IF_ERROR(pr.status());
      return std::unique_ptr<Normalizer>(new ReplaceNormalizer(std::move(from), Regex(), false, std::move(content)));
    }
    std::string re = pr.String("Regex");
    RETURN_IF_ERROR(pr.status());
    ASSIGN_OR_RETURN(Regex regex, Regex::Compile(re));
    return std::unique_ptr<Normalizer>(new ReplaceNormalizer("", std::move(regex), true, std::move(content)));
  }
  return Unimplemented("tokenizer.json: unsupported normalizer type '" + type + "'");
}

}  // namespace crescent::model
