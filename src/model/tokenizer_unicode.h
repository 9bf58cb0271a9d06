// UTF-8 helpers for the tokenizer: code point iteration, lossy decoding with the
// WHATWG rules (what JavaScript's TextDecoder does, so our output matches the
// reference byte for byte), JavaScript's notion of whitespace (String.trim), and
// Unicode normalization forms through ICU.
// Thread-safety: free functions on values; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace crescent::model {

// Decodes the code point at text[*pos] and advances *pos. Invalid or truncated
// sequences yield U+FFFD and advance by one byte.
char32_t NextCodePoint(std::string_view text, size_t* pos);
void AppendUtf8(std::string* out, char32_t cp);

// Bytes -> valid UTF-8, replacing each maximal invalid subpart by U+FFFD exactly as
// the WHATWG "utf-8 decode" does. With strip_bom, a leading EF BB BF is dropped
// (TextDecoder's default).
std::string DecodeUtf8Lossy(std::string_view bytes, bool strip_bom = false);
bool IsValidUtf8(std::string_view bytes);

// JavaScript's WhiteSpace + LineTerminator set (what /\s/ and String.trim use).
bool IsJsWhitespace(char32_t cp);
std::string_view TrimJsStart(std::string_view s);
std::string_view TrimJsEnd(std::string_view s);

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
// REQUIRES: text is valid UTF-8.
Result<std::string> NormalizeUnicode(std::string_view text, NormalForm form);
// JavaScript's String.prototype.toLowerCase (locale-independent full mapping).
std::string JsToLower(std::string_view text);
std::string JsToUpper(std::string_view text);

}  // namespace crescent::model
