#include "model/decoder.h"

#include <boost/json.hpp>

#include "base/json.h"
#include "model/bpe.h"
#include "model/tokenizer_regex.h"
#include "model/tokenizer_unicode.h"

namespace crescent::model {

namespace json = boost::json;

namespace {

// Every occurrence of `from` (non-empty) in *s replaced by `to`.
void ReplaceAllIn(std::string* s, std::string_view from, std::string_view to) {
  size_t pos = s->find(from);
  if (pos == std::string::npos) return;
  std::string out;
  out.reserve(s->size());
  size_t last = 0;
  while (pos != std::string::npos) {
    out.append(*s, last, pos - last);
    out.append(to);
    last = pos + from.size();
    pos = s->find(from, last);
  }
  out.append(*s, last, std::string::npos);
  s->swap(out);
}

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& s : steps_) s->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

class ByteLevelDecoder : public Decoder {
 public:
  explicit ByteLevelDecoder(const std::unordered_set<std::string>* added) : added_(added) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    auto flush = [&] {
      if (!bytes.empty()) out.push_back(DecodeUtf8Lossy(bytes, /*strip_bom=*/false));
      bytes.clear();
    };
    std::string raw;
    for (std::string& t : *tokens) {
      if (added_ && added_->count(t)) {
        flush();
        out.push_back(std::move(t));
        continue;
      }
      // Characters outside the byte alphabet become byte 0, as in the reference.
      size_t i = 0;
      while (i < t.size()) {
        size_t b = i;
        NextCodePoint(t, &i);
        if (ByteLevelToBytes(std::string_view(t).substr(b, i - b), &raw)) {
          bytes += raw;
        } else {
          bytes.push_back('\0');
        }
      }
    }
    flush();
    tokens->swap(out);
  }

 private:
  const std::unordered_set<std::string>* added_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    if (from_.empty()) return;
    for (std::string& t : *tokens) ReplaceAllIn(&t, from_, to_);
  }

 private:
  std::string from_, to_;
};

int HexByteToken(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int h = hex(t[3]), l = hex(t[4]);
  // parseInt("1g", 16) is 1 in JavaScript: a bad second digit keeps the first.
  if (h < 0) return -1;
  return l < 0 ? h : h * 16 + l;
}

class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    auto flush = [&] {
      if (!bytes.empty()) out.push_back(DecodeUtf8Lossy(bytes, /*strip_bom=*/true));
      bytes.clear();
    };
    for (std::string& t : *tokens) {
      int b = HexByteToken(t);
      if (b >= 0) {
        bytes.push_back(static_cast<char>(b));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens->swap(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const auto& t : *tokens) all += t;
    tokens->assign(1, std::move(all));
  }
};

// Strips up to `start` leading and `stop` trailing copies of one character.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, int start, int stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    if (content_.empty()) return;
    for (std::string& t : *tokens) {
      size_t b = 0, e = t.size();
      for (int i = 0; i < start_ && t.compare(b, content_.size(), content_) == 0 && b < e; ++i) b += content_.size();
      for (int i = 0; i < stop_ && e >= b + content_.size() &&
                      t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++i) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  int start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool add_prefix_space)
      : replacement_(std::move(replacement)), add_prefix_space_(add_prefix_space) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      if (!replacement_.empty()) ReplaceAllIn(&t, replacement_, " ");
      if (add_prefix_space_ && i == 0 && !t.empty() && t[0] == ' ') t.erase(0, 1);
    }
  }

 private:
  std::string replacement_;
  bool add_prefix_space_;
};

}  // namespace

Result<std::unique_ptr<Decoder>> MakeDecoder(const json::value& config, const std::unordered_set<std::string>* added) {
  if (config.is_null()) return std::unique_ptr<Decoder>();
  JsonReader r(config, "tokenizer.json: decoder");
  std::string type = r.String("type");
  RETURN_IF_ERROR(r.status());
  if (type == "Sequence") {
    const json::value* list = r.object()->if_contains("decoders");
    if (!list || !list->is_array()) return InvalidArgument("tokenizer.json: decoder Sequence without 'decoders'");
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const json::value& v : list->get_array()) {
      ASSIGN_OR_RETURN(auto d, MakeDecoder(v, added));
      if (d) steps.push_back(std::move(d));
    }
    return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(steps)));
  }
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder(added));
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
  if (type == "Strip") {
    std::string content = r.String("content");
    int start = static_cast<int>(r.IntOr("start", 0)), stop = static_cast<int>(r.IntOr("stop", 0));
    RETURN_IF_ERROR(r.status());
    return std::unique_ptr<Decoder>(new StripDecoder(std::move(content), start, stop));
  }
  if (type == "Replace") {
    std::string content = r.String("content");
    const json::value* pat = r.Object("pattern", false);
    RETURN_IF_ERROR(r.status());
    JsonReader pr(*pat, "tokenizer.json: decoder Replace pattern");
    if (!pr.Has("String")) return Unimplemented("tokenizer.json: decoder Replace with a Regex pattern is not supported");
    std::string from = pr.String("String");
    RETURN_IF_ERROR(pr.status());
    return std::unique_ptr<Decoder>(new ReplaceDecoder(std::move(from), std::move(content)));
  }
  if (type == "Metaspace") {
    std::string replacement = r.StringOr("replacement", "\xE2\x96\x81");
    bool add_prefix_space = r.BoolOr("add_prefix_space", false);  // the reference's default
    RETURN_IF_ERROR(r.status());
    return std::unique_ptr<Decoder>(new MetaspaceDecoder(std::move(replacement), add_prefix_space));
  }
  return Unimplemented("tokenizer.json: unsupported decoder type '" + type + "'");
}

}  // namespace crescent::model
