// ReasoningSplitter: a reasoning model's output split into its reasoning — the <think> …
// </think> section — and its answer, incrementally as text streams (OpenAI-style
// `reasoning_content` beside `content`, as vLLM's and SGLang's reasoning parsers give). A tag
// split across two pieces is held back until it is whole. Everything after the first </think>
// is content; output that never closes its <think> is all reasoning.
#pragma once

#include <string>
#include <string_view>

namespace rami::http {

struct ReasoningPiece {
  std::string reasoning;
  std::string content;
};

class ReasoningSplitter {
 public:
  // `starts_inside`: the prompt already opened the section (a chat template that ends with
  // "<think>\n", as DeepSeek-R1's does), so the output begins in reasoning.
  explicit ReasoningSplitter(bool starts_inside);

  ReasoningPiece Feed(std::string_view text);
  ReasoningPiece Finish();  // what was held back

  // Whether `prompt` leaves a <think> section open (its last <think> is after its last
  // </think>).
  static bool OpensReasoning(std::string_view prompt);

 private:
  enum class Mode { kStart, kReasoning, kContent };
  Mode mode_;
  std::string pending_;  // text not yet assigned: a possible tag prefix
};

}  // namespace rami::http
