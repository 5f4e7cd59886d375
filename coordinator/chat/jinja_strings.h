// Python str semantics shared by the lexer, the filters and the str methods of rami's Jinja
// interpreter: whitespace, strip, capitalize and title. ASCII only, like the rest of the
// interpreter's case handling (chat templates apply them to role names and keywords).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/chat/jinja_limits.h"
#include "coordinator/chat/jinja_value.h"

namespace rami::jinja {

// Python's str.isspace for one byte: what jinja2's lexer and str.split() treat as space.
inline bool IsPySpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// The first `needle` in `s` at or after `from` (npos if none), in linear time (glibc's
// two-way memmem): std::string::find is quadratic on inputs like "aaa…a".find("aa…ab"), which
// a client's message and a template's needle could form.
size_t FindIn(std::string_view s, std::string_view needle, size_t from = 0);

// str.strip / lstrip / rstrip: removes the characters of `chars` (a string), or whitespace
// when `chars` is none or undefined, from the chosen ends.
std::string PyStrip(const std::string& s, const Value& chars, bool left, bool right);

// s.replace(old, repl) (every occurrence; an empty `old` leaves s as is), its size computed
// and charged to `budget` before it is built.
absl::StatusOr<Value> PyReplace(const std::string& s, const std::string& old,
                                const std::string& repl, RenderBudget* budget);

// str.capitalize: first character upper case, the rest lower case.
std::string PyCapitalize(const std::string& s);

// str.title: each letter that follows a non-letter upper case, the other letters lower case.
std::string PyTitle(const std::string& s);

}  // namespace rami::jinja
