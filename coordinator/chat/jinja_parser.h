// Parser of rami's Jinja interpreter: tokens -> statement tree. Rejects, at load time, any
// construct the interpreter does not implement (unknown tags, filters or tests, include,
// extends, import...), naming it and its line, so a template never renders half-right.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/chat/jinja_ast.h"
#include "coordinator/chat/jinja_lexer.h"

namespace rami::jinja {

absl::StatusOr<Body> Parse(const std::vector<Token>& tokens);

}  // namespace rami::jinja
