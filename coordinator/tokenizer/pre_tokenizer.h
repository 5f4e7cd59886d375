// Pre-tokenizers from tokenizer.json ("pre_tokenizer"): Split (regex or string, with HF's five
// delimiter behaviors), ByteLevel (GPT-2 regex and byte mapping), Metaspace (SentencePiece's
// '▁'), Digits, Punctuation, WhitespaceSplit and Sequence. They cut a normalized piece of text
// into the words that BPE sees.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace rami::tokenizer {

// One piece of text on its way to the model. `at_origin` is true when the piece starts at
// offset 0 of the original input (Metaspace's prepend_scheme "first" needs to know).
struct TextPiece {
  std::string text;
  bool at_origin = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their splits; empty pieces are dropped, as in HF.
  virtual void PreTokenize(std::vector<TextPiece>* pieces) const = 0;
};

// Builds the pre-tokenizer described by `config`; null JSON gives a null pointer.
absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& config,
                                                               const std::string& where);

}  // namespace rami::tokenizer
