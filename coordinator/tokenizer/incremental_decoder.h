// Streams the text of generated tokens as they arrive: each call returns only complete UTF-8
// characters, holding back a multi-byte character split over tokens until it is complete.
// Decoding a window of recent tokens (not each token alone) keeps decoders with context right
// (e.g. SentencePiece's leading-space rules), so the concatenated output equals
// Tokenizer::Decode of all tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/tokenizer/tokenizer.h"

namespace rami::tokenizer {

class IncrementalDecoder {
 public:
  // `tokenizer` must outlive this object. `prompt_ids` (may be empty) gives context only: the
  // text of generated tokens is decoded as a continuation of them and never includes them.
  IncrementalDecoder(const Tokenizer* tokenizer, bool skip_special_tokens,
                     const std::vector<int32_t>& prompt_ids = {});

  // Adds one token; returns the newly complete text (possibly empty).
  std::string Step(int32_t id);

  // Returns whatever is still held back (an incomplete character becomes U+FFFD).
  std::string Finish();

 private:
  // Raw bytes of the tokens ids_[prefix_offset_, end).
  std::string DecodeWindow(size_t end) const;

  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_ = 0;  // start of the decode window
  size_t read_offset_ = 0;    // tokens before this have been emitted
};

}  // namespace rami::tokenizer
