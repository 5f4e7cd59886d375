// AnswerExtractor (see answer_extractor.h): a one-pass brace matcher for \boxed{...} and a PCRE2
// last-match scan for user regexes.
#include "coordinator/aggregation/answer_extractor.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rami::aggregation {
namespace {

constexpr std::string_view kThinkEnd = "</think>";
constexpr std::string_view kBoxed = "\\boxed";
constexpr std::string_view kText = "\\text";

// ASCII whitespace, as Python's str.strip() sees it within ASCII. (Debian's Abseil has its own
// string_view type, so absl::StripAsciiWhitespace does not take std::string_view.)
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

// Position of the first non-space byte at or after `pos`.
size_t SkipSpaces(std::string_view text, size_t pos) {
  while (pos < text.size() && IsSpace(text[pos])) ++pos;
  return pos;
}

// One past the '}' that closes the '{' at text[open], or npos when it never closes. A
// backslash escapes the next byte (LaTeX's \{ \} \\ are characters, not grouping).
size_t MatchBrace(std::string_view text, size_t open) {
  int64_t depth = 0;
  for (size_t i = open; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '{') {
      ++depth;
    } else if (text[i] == '}' && --depth == 0) {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// The next position to search from after a match [start, end): an empty match moves on by one
// UTF-8 character so the scan always advances and never splits a character.
size_t NextSearchOffset(std::string_view text, size_t start, size_t end) {
  if (end > start) return end;
  size_t next = end + 1;
  while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
  return next;
}

}  // namespace

std::string NormalizeAnswer(std::string_view answer) {
  answer = Trim(answer);
  if (answer.starts_with(kText)) {
    const size_t open = SkipSpaces(answer, kText.size());
    if (open < answer.size() && answer[open] == '{' && MatchBrace(answer, open) == answer.size()) {
      answer = Trim(answer.substr(open + 1, answer.size() - open - 2));
    }
  }
  return std::string(answer);
}

std::string ExtractLastBoxed(std::string_view text) {
  const size_t think_end = text.rfind(kThinkEnd);
  if (think_end != std::string_view::npos) text.remove_prefix(think_end + kThinkEnd.size());

  // One pass with a stack of open braces (O(n) even for degenerate, never-closed repetitions
  // of "\boxed{"): the answer is the \boxed group that closes last. Nested boxes stay inside
  // their outer one, and an unterminated \boxed{ (a branch cut off mid-answer) never closes,
  // so an earlier complete one, or a complete one inside it, is used instead.
  struct Open {
    size_t pos;  // of the '{'
    bool boxed;  // opened by \boxed
  };
  std::vector<Open> open;
  std::string_view last;
  bool found = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      if (text.substr(i, kBoxed.size()) == kBoxed) {
        const size_t brace = SkipSpaces(text, i + kBoxed.size());
        if (brace < text.size() && text[brace] == '{') {
          open.push_back({brace, true});
          i = brace;
          continue;
        }
      }
      ++i;  // the escaped byte is a character, not a brace
    } else if (c == '{') {
      open.push_back({i, false});
    } else if (c == '}' && !open.empty()) {
      const Open group = open.back();
      open.pop_back();
      if (group.boxed) {
        last = text.substr(group.pos + 1, i - group.pos - 1);
        found = true;
      }
    }
  }
  return found ? NormalizeAnswer(last) : std::string();
}

struct AnswerExtractor::CompiledRegex {
  ~CompiledRegex() { pcre2_code_free(code); }
  pcre2_code* code = nullptr;
  uint32_t capture_count = 0;
};

absl::StatusOr<AnswerExtractor> AnswerExtractor::Create(std::string_view regex) {
  if (regex.empty()) return AnswerExtractor(nullptr);
  if (regex.size() > kMaxExtractorRegexBytes) {
    return absl::InvalidArgumentError(absl::StrCat("aggregation.extractor.regex is ", regex.size(),
                                                   " bytes; the limit is ",
                                                   kMaxExtractorRegexBytes));
  }
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return absl::InvalidArgumentError(
        absl::StrCat("aggregation.extractor.regex does not compile at offset ", error_offset, ": ",
                     reinterpret_cast<const char*>(message)));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort: the interpreter is the fallback
  auto compiled = std::make_shared<CompiledRegex>();
  compiled->code = code;
  pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &compiled->capture_count);
  return AnswerExtractor(std::move(compiled));
}

std::string AnswerExtractor::Extract(std::string_view text) const {
  if (regex_ == nullptr) return ExtractLastBoxed(text);

  // Match data is per call so one extractor serves many threads.
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(regex_->code, nullptr), &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  uint32_t options = 0;  // the first call validates the UTF-8 of the whole subject
  size_t begin = 0, end = 0;
  bool found = false;
  size_t offset = 0;
  while (offset <= text.size()) {
    const int rc =
        pcre2_match(regex_->code, subject, text.size(), offset, options, data.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    // Invalid UTF-8 or a match limit hit: a partial scan could name a wrong "last" match.
    if (rc < 0) return std::string();
    options |= PCRE2_NO_UTF_CHECK;
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t group = regex_->capture_count >= 1 ? 1 : 0;
    found = ovector[2 * group] != PCRE2_UNSET;
    if (found) {
      begin = ovector[2 * group];
      end = ovector[2 * group + 1];
    }
    offset = NextSearchOffset(text, ovector[0], ovector[1]);
  }
  return found ? NormalizeAnswer(text.substr(begin, end - begin)) : std::string();
}

}  // namespace rami::aggregation
