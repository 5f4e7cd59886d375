// Python str helpers (see jinja_strings.h).
#include "coordinator/chat/jinja_strings.h"

#include <string.h>

#include "absl/strings/ascii.h"
#include "base/status_macros.h"

namespace rami::jinja {

size_t FindIn(std::string_view s, std::string_view needle, size_t from) {
  if (from > s.size()) return std::string_view::npos;
  if (needle.empty()) return from;
  const void* at = memmem(s.data() + from, s.size() - from, needle.data(), needle.size());
  return at == nullptr ? std::string_view::npos
                       : static_cast<size_t>(static_cast<const char*>(at) - s.data());
}

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

absl::StatusOr<Value> PyReplace(const std::string& s, const std::string& old,
                                const std::string& repl, RenderBudget* budget) {
  if (old.empty()) return Value::String(s);
  uint64_t count = 0;
  for (size_t at = FindIn(s, old); at != std::string::npos; at = FindIn(s, old, at + old.size()))
    ++count;
  RAMI_RETURN_IF_ERROR(budget->ChargeSteps(s.size() / 64));
  RAMI_RETURN_IF_ERROR(budget->ChargeString(
      SaturatingAdd(s.size() - count * old.size(), SaturatingMul(count, repl.size()))));
  std::string out;
  size_t start = 0;
  for (size_t at = FindIn(s, old); at != std::string::npos; at = FindIn(s, old, at + old.size())) {
    out.append(s, start, at - start);
    out += repl;
    start = at + old.size();
  }
  out.append(s, start);
  return Value::String(std::move(out));
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
