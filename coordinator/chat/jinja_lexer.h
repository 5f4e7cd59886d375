// Lexer of rami's Jinja interpreter: splits template source into text and the tokens of
// {{ expressions }} and {% statements %}, applying Jinja's whitespace control exactly as
// jinja2 does ("-" / "+" markers, trim_blocks, lstrip_blocks, and dropping one trailing
// newline of the source). Comments {# #} are removed here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rami::jinja {

struct LexOptions {
  bool trim_blocks = false;
  bool lstrip_blocks = false;
  bool keep_trailing_newline = false;
};

struct Token {
  enum class Type {
    kText,
    kVarBegin,
    kVarEnd,
    kBlockBegin,
    kBlockEnd,
    kName,
    kString,
    kInt,
    kFloat,
    kOperator,
    kEnd
  };
  Type type;
  std::string text;  // text data, name, decoded string literal, number or operator
  int line;
};

absl::StatusOr<std::vector<Token>> Lex(std::string_view source, const LexOptions& options);

}  // namespace rami::jinja
