// Python str helpers (see jinja_strings.h).
#include "coordinator/chat/jinja_strings.h"

#include "absl/strings/ascii.h"

namespace rami::jinja {

std::string PyStrip(const std::string& s, const Value& chars, bool left, bool right) {
  auto strip = [&](char c) {
    return chars.is_string() ? chars.AsString().find(c) != std::string::npos : IsPySpace(c);
  };
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e && strip(s[b])) ++b;
  }
  if (right) {
    while (e > b && strip(s[e - 1])) --e;
  }
  return s.substr(b, e - b);
}

std::string PyCapitalize(const std::string& s) {
  std::string out = absl::AsciiStrToLower(s);
  if (!out.empty()) out[0] = absl::ascii_toupper(out[0]);
  return out;
}

std::string PyTitle(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    if (absl::ascii_isalpha(c)) {
      c = start ? absl::ascii_toupper(c) : absl::ascii_tolower(c);
      start = false;
    } else {
      start = true;
    }
  }
  return out;
}

}  // namespace rami::jinja
