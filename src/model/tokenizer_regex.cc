#include "model/tokenizer_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "base/logging.h"

namespace crescent::model {

namespace {

// JavaScript's \s, spelled for PCRE2, without the brackets.
constexpr std::string_view kJsSpace =
    "\\t\\n\\x0B\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}\\x{FEFF}";
constexpr std::string_view kJsDigit = "0-9";
constexpr std::string_view kJsWord = "A-Za-z0-9_";

void ReplaceAll(std::string* s, std::string_view from, std::string_view to) {
  size_t pos = 0;
  while ((pos = s->find(from, pos)) != std::string::npos) {
    s->replace(pos, from.size(), to);
    pos += to.size();
  }
}

}  // namespace

std::string TranslateJsRegex(std::string_view js_pattern) {
  std::string p(js_pattern);
  // The reference's own rewrites (createPattern in transformers.js).
  ReplaceAll(&p, "(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))");
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[++i];
      std::string_view set;
      bool negated = false;
      switch (e) {
        case 's': set = kJsSpace; break;
        case 'S': set = kJsSpace; negated = true; break;
        case 'd': set = kJsDigit; break;
        case 'D': set = kJsDigit; negated = true; break;
        case 'w': set = kJsWord; break;
        case 'W': set = kJsWord; negated = true; break;
        case '#': case '&': case '~':
          out.push_back(e);  // needless escapes the reference strips
          continue;
        default:
          out.push_back('\\');
          out.push_back(e);
          continue;
      }
      if (in_class && !negated) {
        out.append(set);
      } else if (in_class) {
        // A negated shorthand inside a class: keep PCRE2's (close enough, unused by
        // real tokenizers).
        out.push_back('\\');
        out.push_back(e);
      } else {
        out.append(negated ? "[^" : "[");
        out.append(set);
        out.push_back(']');
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      if (i + 1 < p.size() && p[i + 1] == '^') out.push_back(p[++i]);
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

Regex::Regex() = default;
Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

Result<Regex> Regex::Compile(std::string_view js_pattern, bool literal) {
  Regex r;
  r.pattern_ = literal ? std::string(js_pattern) : TranslateJsRegex(js_pattern);
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK;
  if (literal) options = PCRE2_UTF | PCRE2_LITERAL;
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(r.pattern_.data()), r.pattern_.size(),
                                   options, &err, &err_off, nullptr);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    return InvalidArgument("regex '" + std::string(js_pattern) + "': " + reinterpret_cast<char*>(buf) +
                           " at offset " + std::to_string(err_off));
  }
  r.impl_ = std::make_unique<Impl>();
  r.impl_->code = code;
  r.impl_->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return r;
}

void Regex::ForEachMatch(std::string_view text, const std::function<void(size_t, size_t)>& on_match) const {
  // One match-data block per thread keeps the hot path allocation-free; the
  // unique_ptr frees it when the thread exits (server io threads come and go).
  struct FreeMatchData {
    void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
  };
  thread_local std::unique_ptr<pcre2_match_data, FreeMatchData> md_owner(pcre2_match_data_create(4, nullptr));
  pcre2_match_data* md = md_owner.get();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr)
                        : pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      // The JIT stack (or a default limit) ran out on a pathological input: retry
      // this match with the interpreter and generous limits.
      struct FreeContext {
        void operator()(pcre2_match_context* c) const { pcre2_match_context_free(c); }
      };
      thread_local std::unique_ptr<pcre2_match_context, FreeContext> mc([] {
        pcre2_match_context* c = pcre2_match_context_create(nullptr);
        pcre2_set_heap_limit(c, 4u << 20);  // KiB
        pcre2_set_match_limit(c, ~0u);
        return c;
      }());
      rc = pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, mc.get());
      if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
        LOG_WARNING("tokenizer regex failed ({}) at offset {} of {} bytes", rc, pos, text.size());
      }
    }
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    on_match(b, e);
    if (e > b) {
      pos = e;
    } else {
      if (e >= text.size()) break;
      pos = e + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
}

}  // namespace crescent::model
