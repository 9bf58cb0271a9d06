// Regex: a compiled PCRE2 pattern (UTF + UCP, JIT when available) with the
// semantics of the JavaScript `u`-flag regexes that the reference tokenizers use.
// Patterns in tokenizer.json are written for Rust's regex/onig; the reference
// rewrites a few constructs for JavaScript, and we make the same rewrites, then
// pin \s, \d and \w to JavaScript's ASCII/whitespace definitions so PCRE2's Unicode
// classes cannot drift from the reference.
// Ownership: move-only. Thread-safety: a compiled Regex is immutable and may be used
// from many threads at once (each match call brings its own match data).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace crescent::model {

class Regex {
 public:
  // `literal` compiles the text as a plain string to find.
  static Result<Regex> Compile(std::string_view js_pattern, bool literal = false);
  Regex();
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_match(begin, end) for each successive non-overlapping match, in order,
  // like JavaScript's matchAll (an empty match advances one code point).
  // REQUIRES: text is valid UTF-8.
  void ForEachMatch(std::string_view text, const std::function<void(size_t, size_t)>& on_match) const;

  // The pattern after the JavaScript rewrites, as handed to PCRE2.
  const std::string& pcre_pattern() const { return pattern_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

// The rewrite Compile applies (exposed for tests).
std::string TranslateJsRegex(std::string_view js_pattern);

}  // namespace crescent::model
