// UTF-8 helpers shared by the tokenizer: code point iteration, lossy decoding that matches
// Rust's String::from_utf8_lossy, incomplete-tail detection for streaming, and the few Unicode
// character classes (via utf8proc) that Hugging Face tokenizers consult.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rami::tokenizer {

// Length in bytes of the (possibly invalid) UTF-8 sequence starting at s[i]: 1 for an
// invalid lead byte or a truncated sequence, so iteration always advances.
size_t Utf8CharLen(std::string_view s, size_t i);

// Decodes the code point at s[i] (assumed valid UTF-8; returns U+FFFD otherwise).
char32_t Utf8Decode(std::string_view s, size_t i, size_t* len);

// Start of the character that ends just before byte `end` (> 0): the lead byte found by
// stepping back over continuation bytes.
size_t Utf8PrevCharStart(std::string_view s, size_t end);

// Appends the UTF-8 encoding of `cp` to `out`.
void Utf8Append(char32_t cp, std::string* out);

// Replaces every maximal invalid subsequence with U+FFFD, exactly like Rust's
// String::from_utf8_lossy (which Hugging Face decoders use).
std::string Utf8Lossy(std::string_view bytes);

// True when `bytes` is valid UTF-8.
bool Utf8Valid(std::string_view bytes);

// Number of trailing bytes that form a valid but incomplete UTF-8 sequence (0..3): bytes a
// streaming decoder must hold back until the next token completes the character.
size_t Utf8IncompleteTail(std::string_view bytes);

// Unicode classes with Rust's definitions: char::is_whitespace (White_Space property) and
// char::is_alphanumeric (Alphabetic or Numeric, approximated by general categories L*/N*).
bool IsUnicodeWhitespace(char32_t cp);
bool IsUnicodeAlphanumeric(char32_t cp);

// Bytes of IsUnicodeWhitespace characters at the start of `s`, and the offset where the run of
// them that ends `s` starts (s.size() when `s` does not end in whitespace): HF's strip rules.
size_t LeadingWhitespaceBytes(std::string_view s);
size_t TrailingWhitespaceStart(std::string_view s);

}  // namespace rami::tokenizer
