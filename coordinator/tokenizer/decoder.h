// Decoders from tokenizer.json ("decoder"): ByteLevel, Metaspace, Replace, ByteFallback, Fuse,
// Strip and Sequence. They turn token strings back into text. Pieces are carried as raw bytes
// so that a caller streaming tokens can hold back an incomplete UTF-8 character; the final
// text is made valid with Utf8Lossy, as HF does.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace rami::tokenizer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token pieces in place (HF's decode_chain). `keep_partial_tail`: a streaming
  // caller asks ByteFallback to leave a trailing, still-incomplete character as raw bytes
  // instead of replacing it with U+FFFD.
  virtual void DecodeChain(std::vector<std::string>* pieces, bool keep_partial_tail) const = 0;
};

// Builds the decoder described by `config`; null JSON gives a null pointer (pieces are then
// joined with spaces, as in HF).
absl::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const nlohmann::json& config,
                                                     const std::string& where);

}  // namespace rami::tokenizer
