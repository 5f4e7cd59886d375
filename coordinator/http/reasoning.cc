// ReasoningSplitter: a three-state scan (start, inside <think>, after it) over streamed text.
#include "coordinator/http/reasoning.h"

#include <algorithm>

namespace rami::http {
namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

// Length of the longest suffix of `text` that is a proper prefix of `tag`.
size_t PartialTag(std::string_view text, std::string_view tag) {
  for (size_t k = std::min(text.size(), tag.size() - 1); k > 0; --k) {
    if (text.substr(text.size() - k) == tag.substr(0, k)) return k;
  }
  return 0;
}

}  // namespace

ReasoningSplitter::ReasoningSplitter(bool starts_inside)
    : mode_(starts_inside ? Mode::kReasoning : Mode::kStart) {}

bool ReasoningSplitter::OpensReasoning(std::string_view prompt) {
  const size_t open = prompt.rfind(kOpen);
  if (open == std::string_view::npos) return false;
  const size_t close = prompt.rfind(kClose);
  return close == std::string_view::npos || close < open;
}

ReasoningPiece ReasoningSplitter::Feed(std::string_view text) {
  ReasoningPiece out;
  pending_.append(text);
  if (mode_ == Mode::kStart) {
    // Leading whitespace before the tag belongs to neither part.
    const size_t first = pending_.find_first_not_of(" \n\r\t");
    const std::string_view rest =
        first == std::string::npos ? std::string_view() : std::string_view(pending_).substr(first);
    if (rest.size() < kOpen.size() && kOpen.substr(0, rest.size()) == rest) return out;  // wait
    if (rest.substr(0, kOpen.size()) == kOpen) {
      pending_ = std::string(rest.substr(kOpen.size()));
      mode_ = Mode::kReasoning;
    } else {
      mode_ = Mode::kContent;
    }
  }
  if (mode_ == Mode::kReasoning) {
    const size_t close = pending_.find(kClose);
    if (close == std::string::npos) {
      const size_t keep = PartialTag(pending_, kClose);
      out.reasoning = pending_.substr(0, pending_.size() - keep);
      pending_.erase(0, pending_.size() - keep);
      return out;
    }
    out.reasoning = pending_.substr(0, close);
    pending_.erase(0, close + kClose.size());
    mode_ = Mode::kContent;
  }
  out.content = std::move(pending_);
  pending_.clear();
  return out;
}

ReasoningPiece ReasoningSplitter::Finish() {
  ReasoningPiece out;
  (mode_ == Mode::kReasoning ? out.reasoning : out.content) = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace rami::http
