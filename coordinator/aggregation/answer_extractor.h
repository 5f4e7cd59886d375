// AnswerExtractor: reads the final answer out of a branch's text so branches can vote. Default:
// the last balanced \boxed{...} after the last </think>; or the last match of a user regex.
// Definitions, with examples, in docs/aggregation.md §1.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"

namespace rami::aggregation {

// A longer pattern is rejected up front: no real answer format needs one, and it bounds the
// compile cost a request can impose on the coordinator.
inline constexpr size_t kMaxExtractorRegexBytes = 4096;

// The default extraction, exposed for tests and tools: the content of the last complete
// \boxed{...} in `text` (after the last </think> when there is one), normalised by
// NormalizeAnswer; "" when there is none.
std::string ExtractLastBoxed(std::string_view text);

// Trims ASCII whitespace, then unwraps one whole-answer \text{...} (so \boxed{\text{B}} and
// \boxed{B} vote together), trimming again. Nothing else: answers compare as strings.
std::string NormalizeAnswer(std::string_view answer);

// Immutable and cheap to copy (the compiled regex is shared); Extract is thread-safe.
class AnswerExtractor {
 public:
  // `regex` empty → the default \boxed extraction. Otherwise a PCRE2 pattern compiled once in
  // UTF + UCP mode (\d, \w, \b are Unicode-aware, as in the tokenizer). A pattern that does
  // not compile, or is over kMaxExtractorRegexBytes, gives InvalidArgument naming
  // "aggregation.extractor.regex" (with PCRE2's message and offset).
  static absl::StatusOr<AnswerExtractor> Create(std::string_view regex);

  // The branch's answer, normalised by NormalizeAnswer; "" when the text has none. In regex
  // mode: the last non-overlapping match, its first capture group when the pattern has one
  // ("" when that group did not take part), else the whole match. Text that is not valid
  // UTF-8, or a match that exceeds PCRE2's match limit, gives "" (never an error: a branch's
  // text is not a request field).
  std::string Extract(std::string_view text) const;

  bool uses_regex() const { return regex_ != nullptr; }

 private:
  struct CompiledRegex;  // PCRE2 code + match context; defined in the .cc (keeps pcre2.h out)
  explicit AnswerExtractor(std::shared_ptr<const CompiledRegex> regex) : regex_(std::move(regex)) {}

  std::shared_ptr<const CompiledRegex> regex_;  // null in the default \boxed mode
};

}  // namespace rami::aggregation
