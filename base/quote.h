// Quote: a client's text inside an error message — at most kMaxQuotedBytes, cut at a UTF-8
// boundary and marked with "…", so a huge input (a 3 MB model name, a template) never makes a
// huge error (gRPC refuses status messages over its metadata limit, and the real error would
// be lost).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace rami {

inline constexpr size_t kMaxQuotedBytes = 200;

inline std::string Quote(std::string_view text, size_t max_bytes = kMaxQuotedBytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "…";
}

}  // namespace rami
