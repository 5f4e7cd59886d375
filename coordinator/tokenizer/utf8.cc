// UTF-8 helpers (see utf8.h).
#include "coordinator/tokenizer/utf8.h"

#include <utf8proc.h>

namespace rami::tokenizer {
namespace {

// Expected length of a sequence from its lead byte, 0 when the byte cannot start one.
int LeadLength(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

// Valid range of the second byte given the lead byte (RFC 3629 table), which is what makes
// "maximal subpart" replacement agree with Rust.
bool SecondByteOk(unsigned char lead, unsigned char c) {
  switch (lead) {
    case 0xE0:
      return c >= 0xA0 && c <= 0xBF;
    case 0xED:
      return c >= 0x80 && c <= 0x9F;
    case 0xF0:
      return c >= 0x90 && c <= 0xBF;
    case 0xF4:
      return c >= 0x80 && c <= 0x8F;
    default:
      return c >= 0x80 && c <= 0xBF;
  }
}

// Length of the longest valid prefix of a sequence starting at s[i] (1..4), and whether it
// is a complete character.
size_t ValidPrefix(std::string_view s, size_t i, bool* complete) {
  const auto lead = static_cast<unsigned char>(s[i]);
  const int need = LeadLength(lead);
  *complete = false;
  if (need == 0) return 0;
  if (need == 1) {
    *complete = true;
    return 1;
  }
  size_t n = 1;
  for (; n < static_cast<size_t>(need) && i + n < s.size(); ++n) {
    const auto c = static_cast<unsigned char>(s[i + n]);
    const bool ok = n == 1 ? SecondByteOk(lead, c) : (c >= 0x80 && c <= 0xBF);
    if (!ok) return n;
  }
  *complete = n == static_cast<size_t>(need);
  return n;
}

}  // namespace

size_t Utf8CharLen(std::string_view s, size_t i) {
  bool complete = false;
  const size_t n = ValidPrefix(s, i, &complete);
  return complete ? n : 1;
}

char32_t Utf8Decode(std::string_view s, size_t i, size_t* len) {
  bool complete = false;
  const size_t n = ValidPrefix(s, i, &complete);
  if (!complete) {
    *len = 1;
    return 0xFFFD;
  }
  *len = n;
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (n == 1) return b0;
  char32_t cp = b0 & (0xFF >> (n + 1));
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

size_t Utf8PrevCharStart(std::string_view s, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return start;
}

void Utf8Append(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    bool complete = false;
    const size_t n = ValidPrefix(bytes, i, &complete);
    if (complete) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");  // one U+FFFD per maximal invalid subpart
      i += n == 0 ? 1 : n;
    }
  }
  return out;
}

bool Utf8Valid(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    bool complete = false;
    const size_t n = ValidPrefix(bytes, i, &complete);
    if (!complete) return false;
    i += n;
  }
  return true;
}

size_t Utf8IncompleteTail(std::string_view bytes) {
  const size_t start = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t i = start; i < bytes.size(); ++i) {
    if (LeadLength(static_cast<unsigned char>(bytes[i])) < 2) continue;
    bool complete = false;
    const size_t n = ValidPrefix(bytes, i, &complete);
    if (!complete && i + n == bytes.size()) return n;
  }
  return 0;
}

bool IsUnicodeWhitespace(char32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool IsUnicodeAlphanumeric(char32_t cp) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

size_t LeadingWhitespaceBytes(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 0;
    if (!IsUnicodeWhitespace(Utf8Decode(s, i, &len))) break;
    i += len;
  }
  return i;
}

size_t TrailingWhitespaceStart(std::string_view s) {
  size_t start = s.size();
  while (start > 0) {
    const size_t k = Utf8PrevCharStart(s, start);
    size_t len = 0;
    if (!IsUnicodeWhitespace(Utf8Decode(s, k, &len))) break;
    start = k;
  }
  return start;
}

}  // namespace rami::tokenizer
