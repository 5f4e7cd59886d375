// A compiled PCRE2 regular expression (UTF + UCP, JIT when available) with the find-all
// iteration the Hugging Face pre-tokenizers use. The pattern is the Oniguruma source from
// tokenizer.json; the constructs those files use (\p{..}, (?i:..), lookahead) mean the same
// in PCRE2.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace rami::tokenizer {

class Regex {
 public:
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Byte ranges [start, end) of the successive non-overlapping matches in `text`; an empty
  // match advances the search by one character, as Oniguruma's find_iter does.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

  // Replaces every match with `replacement` (literal text).
  std::string ReplaceAll(std::string_view text, std::string_view replacement) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

}  // namespace rami::tokenizer
