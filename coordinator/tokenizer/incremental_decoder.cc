// Incremental detokenization (see incremental_decoder.h).
#include "coordinator/tokenizer/incremental_decoder.h"

#include <algorithm>

#include "coordinator/tokenizer/utf8.h"

namespace rami::tokenizer {
namespace {
// Context tokens kept before the emitted position: enough for any decoder rule we support.
constexpr size_t kContextTokens = 4;
}  // namespace

IncrementalDecoder::IncrementalDecoder(const Tokenizer* tokenizer, bool skip_special_tokens,
                                       const std::vector<int32_t>& prompt_ids)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {
  const size_t keep = std::min(prompt_ids.size(), kContextTokens);
  ids_.assign(prompt_ids.end() - static_cast<std::ptrdiff_t>(keep), prompt_ids.end());
  prefix_offset_ = 0;
  read_offset_ = ids_.size();
}

std::string IncrementalDecoder::DecodeWindow(size_t end) const {
  return tokenizer_->DecodeBytes(ids_.data() + prefix_offset_, end - prefix_offset_, skip_special_);
}

std::string IncrementalDecoder::Step(int32_t id) {
  ids_.push_back(id);
  // HF's ByteFallback decodes a run of <0xXX> tokens as a group (all U+FFFD if the group is
  // not valid UTF-8), so a run is only final once a different token follows.
  if (tokenizer_->IsByteFallbackToken(id)) return "";
  const std::string prev = DecodeWindow(read_offset_);
  const std::string full = DecodeWindow(ids_.size());
  // Hold every new token while the text ends inside a character (or nothing new appeared).
  if (full.size() <= prev.size() || Utf8IncompleteTail(full) > 0) return "";
  std::string out = Utf8Lossy(std::string_view(full).substr(prev.size()));
  // Slide the window: the tokens just emitted become the context of the next step.
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  if (prefix_offset_ > 4 * kContextTokens) {
    const size_t drop = prefix_offset_ - kContextTokens;
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(drop));
    prefix_offset_ -= drop;
    read_offset_ -= drop;
  }
  return out;
}

std::string IncrementalDecoder::Finish() {
  const std::string prev = DecodeWindow(read_offset_);
  const std::string full = DecodeWindow(ids_.size());
  read_offset_ = prefix_offset_ = ids_.size();
  if (full.size() <= prev.size()) return "";
  return Utf8Lossy(std::string_view(full).substr(prev.size()));
}

}  // namespace rami::tokenizer
