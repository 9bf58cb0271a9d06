#include "model/jinja_lexer.h"

#include <array>

#include "model/tokenizer_unicode.h"

namespace crescent::model::jinja {

namespace {

bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Byte length of the JS whitespace character at s[i], or 0.
size_t SpaceAt(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  size_t j = i;
  char32_t cp = NextCodePoint(s, &j);
  return IsJsWhitespace(cp) ? j - i : 0;
}

bool StartsWith(std::string_view s, size_t i, std::string_view p) { return s.substr(i, p.size()) == p; }

// {%- generation -%} style markers the reference removes (with their whitespace
// control applied to the surrounding whitespace).
std::string RemoveGenerationTags(const std::string& src) {
  std::string out;
  size_t i = 0;
  while (true) {
    size_t open = src.find("{%", i);
    if (open == std::string::npos) break;
    size_t j = open + 2;
    bool lstrip = j < src.size() && src[j] == '-';
    if (lstrip) ++j;
    while (size_t n = SpaceAt(src, j)) j += n;
    if (StartsWith(src, j, "end")) j += 3;
    if (!StartsWith(src, j, "generation")) {
      out.append(src, i, open + 2 - i);
      i = open + 2;
      continue;
    }
    j += 10;
    while (size_t n = SpaceAt(src, j)) j += n;
    bool rstrip = j < src.size() && src[j] == '-';
    if (rstrip) ++j;
    if (!StartsWith(src, j, "%}")) {
      out.append(src, i, open + 2 - i);
      i = open + 2;
      continue;
    }
    j += 2;
    // Whitespace before the tag (back to the last non-space of what we copy).
    std::string before = src.substr(i, open - i);
    size_t keep = TrimJsEnd(before).size();
    out.append(before, 0, keep);
    if (!lstrip) out.append(before, keep, std::string::npos);
    size_t k = j;
    while (size_t n = SpaceAt(src, k)) k += n;
    if (!rstrip) out.append(src, j, k - j);
    i = k;
  }
  out.append(src, i, std::string::npos);
  return out;
}

}  // namespace

std::string Preprocess(std::string_view source) {
  std::string t(source);
  if (!t.empty() && t.back() == '\n') t.pop_back();
  // lstrip_blocks: /^[ \t]*({[#%-])/gm
  std::string a;
  a.reserve(t.size());
  bool line_start = true;
  for (size_t i = 0; i < t.size();) {
    if (line_start) {
      size_t j = i;
      while (j < t.size() && (t[j] == ' ' || t[j] == '\t')) ++j;
      if (j + 1 < t.size() && t[j] == '{' && (t[j + 1] == '#' || t[j + 1] == '%' || t[j + 1] == '-')) i = j;
      line_start = false;
      continue;
    }
    char c = t[i];
    a.push_back(c);
    ++i;
    if (c == '\n' || c == '\r') line_start = true;
    if (StartsWith(t, i - 1, "\xE2\x80\xA8") || StartsWith(t, i - 1, "\xE2\x80\xA9")) {
      a.append(t, i, 2);
      i += 2;
      line_start = true;
    }
  }
  // trim_blocks: /([#%-]})\n/g
  std::string b;
  b.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    b.push_back(a[i]);
    if (a[i] == '}' && i > 0 && (a[i - 1] == '#' || a[i - 1] == '%' || a[i - 1] == '-') && i + 1 < a.size() &&
        a[i + 1] == '\n' && b.size() >= 2) {
      ++i;  // drop the newline
    }
  }
  return RemoveGenerationTags(b);
}

Result<std::vector<Token>> Tokenize(std::string_view source) {
  static const std::array<std::pair<std::string_view, TokenType>, 27> kTable = {{
      {"{%", TokenType::kOpenStatement}, {"%}", TokenType::kCloseStatement},
      {"{{", TokenType::kOpenExpression}, {"}}", TokenType::kCloseExpression},
      {"(", TokenType::kOpenParen}, {")", TokenType::kCloseParen},
      {"{", TokenType::kOpenCurlyBracket}, {"}", TokenType::kCloseCurlyBracket},
      {"[", TokenType::kOpenSquareBracket}, {"]", TokenType::kCloseSquareBracket},
      {",", TokenType::kComma}, {".", TokenType::kDot}, {":", TokenType::kColon}, {"|", TokenType::kPipe},
      {"<=", TokenType::kComparison}, {">=", TokenType::kComparison}, {"==", TokenType::kComparison},
      {"!=", TokenType::kComparison}, {"<", TokenType::kComparison}, {">", TokenType::kComparison},
      {"+", TokenType::kAdditive}, {"-", TokenType::kAdditive}, {"~", TokenType::kAdditive},
      {"**", TokenType::kExponentiation}, {"*", TokenType::kMultiplicative},
      {"//", TokenType::kMultiplicative}, {"/", TokenType::kMultiplicative},
  }};
  const std::string src = Preprocess(source);
  const size_t n = src.size();
  std::vector<Token> tokens;
  size_t pos = 0;
  int curly = 0;
  auto fail = [](std::string m) { return InvalidArgument("chat template: " + m); };
  // consumeWhile with the reference's escape handling (used for strings and numbers).
  auto consume = [&](auto pred, std::string* out) -> Status {
    while (pos < n && pred(src[pos])) {
      if (src[pos] == '\\') {
        ++pos;
        if (pos >= n) return fail("Unexpected end of input");
        char e = src[pos++];
        if (e == 'x' || e == 'u') {
          size_t len = e == 'x' ? 2 : 4;
          std::string hex = src.substr(pos, len);
          unsigned v = 0;
          for (char h : hex) {
            int d = IsDigit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
            if (d < 0) return fail("Invalid hexadecimal escape sequence: \\" + std::string(1, e) + hex);
            v = v * 16 + static_cast<unsigned>(d);
          }
          if (hex.size() != len) return fail("Invalid hexadecimal escape sequence");
          AppendUtf8(out, v);
          pos += len;
          continue;
        }
        switch (e) {
          case 'n': out->push_back('\n'); break;
          case 't': out->push_back('\t'); break;
          case 'r': out->push_back('\r'); break;
          case 'b': out->push_back('\b'); break;
          case 'f': out->push_back('\f'); break;
          case 'v': out->push_back('\v'); break;
          case '\'': case '"': case '\\': out->push_back(e); break;
          default: return fail("Unexpected escaped character: " + std::string(1, e));
        }
        continue;
      }
      out->push_back(src[pos++]);
      if (pos >= n) return fail("Unexpected end of input");
    }
    return Status::Ok();
  };
  auto strip_trailing = [&] {
    if (!tokens.empty() && tokens.back().type == TokenType::kText) {
      tokens.back().value = std::string(TrimJsEnd(tokens.back().value));
      if (tokens.back().value.empty()) tokens.pop_back();
    }
  };
  auto skip_leading = [&] {
    while (size_t k = SpaceAt(src, pos)) pos += k;
  };
  while (pos < n) {
    bool after_close = tokens.empty() || tokens.back().type == TokenType::kCloseStatement ||
                       tokens.back().type == TokenType::kCloseExpression || tokens.back().type == TokenType::kComment;
    if (after_close) {
      size_t start = pos;
      while (pos < n && !(src[pos] == '{' && pos + 1 < n && (src[pos + 1] == '%' || src[pos + 1] == '{' || src[pos + 1] == '#'))) {
        ++pos;
      }
      if (pos > start) {
        tokens.push_back({TokenType::kText, src.substr(start, pos - start)});
        continue;
      }
    }
    if (StartsWith(src, pos, "{#")) {
      pos += 2;
      bool strip_before = pos < n && src[pos] == '-';
      if (strip_before) ++pos;
      std::string comment;
      while (!(pos + 1 < n && src[pos] == '#' && src[pos + 1] == '}')) {
        if (pos + 2 >= n) return fail("Missing end of comment tag");
        comment.push_back(src[pos++]);
      }
      bool strip_after = !comment.empty() && comment.back() == '-';
      if (strip_after) comment.pop_back();
      if (strip_before) strip_trailing();
      tokens.push_back({TokenType::kComment, comment});
      pos += 2;
      if (strip_after) skip_leading();
      continue;
    }
    if (StartsWith(src, pos, "{%-")) {
      strip_trailing();
      tokens.push_back({TokenType::kOpenStatement, "{%"});
      pos += 3;
      continue;
    }
    if (StartsWith(src, pos, "{{-")) {
      strip_trailing();
      tokens.push_back({TokenType::kOpenExpression, "{{"});
      curly = 0;
      pos += 3;
      continue;
    }
    skip_leading();
    if (StartsWith(src, pos, "-%}")) {
      tokens.push_back({TokenType::kCloseStatement, "%}"});
      pos += 3;
      skip_leading();
      continue;
    }
    if (StartsWith(src, pos, "-}}")) {
      tokens.push_back({TokenType::kCloseExpression, "}}"});
      pos += 3;
      skip_leading();
      continue;
    }
    if (pos >= n) return fail("Unexpected end of input");
    char c = src[pos];
    if (c == '-' || c == '+') {
      if (tokens.empty() || tokens.back().type == TokenType::kText) {
        return fail(std::string("Unexpected character: ") + c);
      }
      TokenType last = tokens.back().type;
      if (last != TokenType::kIdentifier && last != TokenType::kNumericLiteral && last != TokenType::kStringLiteral &&
          last != TokenType::kCloseParen && last != TokenType::kCloseSquareBracket) {
        ++pos;
        std::string num;
        while (pos < n && IsDigit(src[pos])) num.push_back(src[pos++]);
        if (!num.empty() && pos + 1 < n && src[pos] == '.' && IsDigit(src[pos + 1])) {
          ++pos;
          std::string frac;
          while (pos < n && IsDigit(src[pos])) frac.push_back(src[pos++]);
          num += "." + frac;
        }
        tokens.push_back({num.empty() ? TokenType::kUnary : TokenType::kNumericLiteral, std::string(1, c) + num});
        continue;
      }
    }
    bool matched = false;
    for (const auto& [seq, type] : kTable) {
      if (seq == "}}" && curly > 0) continue;
      if (StartsWith(src, pos, seq)) {
        tokens.push_back({type, std::string(seq)});
        if (type == TokenType::kOpenExpression) curly = 0;
        if (type == TokenType::kOpenCurlyBracket) ++curly;
        if (type == TokenType::kCloseCurlyBracket) --curly;
        pos += seq.size();
        matched = true;
        break;
      }
    }
    if (matched) continue;
    if (StartsWith(src, pos, "%")) {  // after "%}" in the table order: the modulo operator
      tokens.push_back({TokenType::kMultiplicative, "%"});
      ++pos;
      continue;
    }
    if (StartsWith(src, pos, "=")) {
      tokens.push_back({TokenType::kEquals, "="});
      ++pos;
      continue;
    }
    if (c == '\'' || c == '"') {
      ++pos;
      std::string s;
      RETURN_IF_ERROR(consume([c](char x) { return x != c; }, &s));
      tokens.push_back({TokenType::kStringLiteral, s});
      ++pos;
      continue;
    }
    if (IsDigit(c)) {
      std::string num;
      RETURN_IF_ERROR(consume(IsDigit, &num));
      if ((tokens.empty() || tokens.back().type != TokenType::kDot) && pos + 1 < n && src[pos] == '.' &&
          IsDigit(src[pos + 1])) {
        ++pos;
        std::string frac;
        RETURN_IF_ERROR(consume(IsDigit, &frac));
        num += "." + frac;
      }
      tokens.push_back({TokenType::kNumericLiteral, num});
      continue;
    }
    if (IsWordChar(c)) {
      std::string word;
      RETURN_IF_ERROR(consume(IsWordChar, &word));
      tokens.push_back({TokenType::kIdentifier, word});
      continue;
    }
    return fail(std::string("Unexpected character: ") + c);
  }
  return tokens;
}

}  // namespace crescent::model::jinja
