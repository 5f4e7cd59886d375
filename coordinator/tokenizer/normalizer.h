// Normalizers from tokenizer.json ("normalizer"): NFC/NFD/NFKC/NFKD, Lowercase, Prepend,
// Replace, Strip and Sequence. Each rewrites one piece of input text (HF applies the
// normalizer to each piece left between added tokens, not to the whole input).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace rami::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void Normalize(std::string* text) const = 0;
};

// Builds the normalizer described by `config` (a tokenizer.json "normalizer" object); null
// JSON gives a null pointer (no normalization). `where` names the field for error messages.
absl::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const nlohmann::json& config,
                                                           const std::string& where);

}  // namespace rami::tokenizer
